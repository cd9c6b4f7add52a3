"""Plugins as the trusted side knows them: what their jailed ``describe`` returned, validated.

A plugin (an entry point of group ``w2s_transfer.methods`` or a ``package.module:attr`` reference)
is never imported by the trusted process; nor is a built-in where the jail settings say ``builtins:
jail`` (it is known the same way, as a ``PluginMethod`` of origin ``builtin``). Its name,
description, params schema and validated params come from ``python -m methods.jail_worker describe``
run in the jail; its runs from ``... run`` in the jail. The trusted side checks everything that
comes back against :class:`PluginDescription` and reads only regular JSON files of bounded size.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from methods.code_cache import current_snapshot
from methods.exchange import PREDICTIONS_FILE, read_output_json, read_predictions
from methods.jail import printable
from methods.jail_runtime import PROJECT_PACKAGES, job_directories, pickle_job
from methods.jail_worker import DESCRIBE_FILE, ERROR_FILE, JOB_FILE, REQUEST_FILE
from methods.policy import Isolation, JailSettings, current_settings
from methods.untrusted import run_job
from transfer.sealed import MethodUnsupported, RungFacts, StudentData, StudentTrainer
from w2s_common.errors import InputError
from w2s_common.names import ARM_NAMES as RESERVED_NAMES
from w2s_common.names import VERDICT_NAMES, name_key, name_tokens
from w2s_common.validation import first_error

# Names a plugin may not take: arms of the results table and the built-ins (checked by the
# registry), so a plugin can never pass for the baseline or another arm; and words the reports
# use as answers, or a number, so that its name in a table or a sentence never reads as a verdict
# or a figure (attacker review 2026-12-05: a plugin named REAL showed as "## REAL: HARMFUL").
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
ANSWER_WORDS = frozenset(word.casefold() for word in (
    *VERDICT_NAMES, "promote", "promoted", "block", "blocked", "yes", "no", "true", "false",
    "none", "null", "pass", "fail", "baseline", "control", "guard"))
# Words that may not appear anywhere in a name as a word of it ("REAL-gain", "promoteMe"),
# nor, as the reports print them (upper case), anywhere at all ("HARMFULx", "REALpromote").
VERDICT_WORDS = frozenset(word.casefold() for word in (*VERDICT_NAMES, "promote", "promoted"))
VERDICT_WORDS_SHOWN = (*VERDICT_NAMES, "PROMOTE")
DESCRIBE_TIMEOUT_S = 300.0
MAX_DESCRIBE_BYTES = 1 << 20
MAX_ERROR_BYTES = 64 << 10


class PluginParams(BaseModel):
    """A plugin's params as its own ``Params`` model validated and dumped them in the jail."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PluginDescription(BaseModel):
    """What a jailed ``describe`` may return; anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, max_length=300)
    params: dict[str, Any] | None
    params_schema: dict[str, Any]
    # One per rung the request named: why the method cannot run there, or None.
    unsupported: list[str | None] | None = Field(None, max_length=1000)

    @field_validator("description")
    @classmethod
    def _one_printable_line(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be one printable line")
        return value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        # Read as a reader reads it: case and separators do not make another name (attacker
        # review, helper-43: "REAL.", "PROMOTE." and "Ceiling" passed the exact comparison).
        # A number after it does not make another word either ("weak0", "Ceiling2": helper-45).
        key = name_key(value).rstrip("0123456789")
        if key in {name_key(arm) for arm in RESERVED_NAMES}:
            raise ValueError(f"{value!r} reads as the name of an arm")
        if key in ANSWER_WORDS:
            raise ValueError(f"{value!r} reads as a word the reports answer with (a verdict, a "
                             "decision); choose a name that names the method")
        verdict_like = [t for t in name_tokens(value) if t in VERDICT_WORDS] + [
            w.casefold() for w in VERDICT_WORDS_SHOWN if w in value]
        if verdict_like:
            raise ValueError(f"{value!r} holds the word {verdict_like[0]!r}, which the reports "
                             "answer with (a verdict, a decision); choose a name that names "
                             "the method")
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(f"{value!r} reads as a number; choose a name that names the method")


@dataclass(frozen=True)
class PluginMethod:
    """A plugin method, known by its jailed description only (satisfies ``methods.base.Method``);
    also a built-in the settings jail (origin ``builtin``: reference and target are its name).

    Attributes:
        reference: how the user named it (an entry-point name or ``package.module:attr``).
        target: the ``package.module:attr`` the jail imports (an entry point's value).
        origin: ``entry-point``, ``reference`` or ``builtin``.
        provider: the distribution (entry points) or module (references) that supplies it.
        name, description: as the plugin declares them (validated).
        params_schema: the JSON schema of its ``Params``.
    """

    reference: str
    target: str
    origin: Literal["entry-point", "reference", "builtin"]
    provider: str
    name: str
    description: str
    params_schema: dict[str, Any]
    Params: ClassVar[type[BaseModel]] = PluginParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: Any) -> np.ndarray:
        """Run the plugin in the jail (``current_settings()``) and return its test predictions."""
        probs, _ = run_plugin(self, data, trainer, params, current_settings())
        return probs

    @property
    def shown(self) -> str:
        """How messages name it: ``plugin method X`` or ``built-in method X``."""
        return f"{'built-in' if self.origin == 'builtin' else 'plugin'} method {self.name}"

    def __repr__(self) -> str:
        return f"<{self.shown} ({self.reference}, described in the jail)>"


def reference_module(reference: str) -> list[str]:
    """The module a reference imports (``package.module`` of ``package.module:attr``)."""
    module = reference.partition(":")[0]
    return [module] if ":" in reference and module else []


def _one_line(text: str, limit: int = 500) -> str:
    line = printable(" ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failure(out: Path, result, what: str) -> Exception:
    """The one-line error for a failed job: its error.json if it wrote a valid one, else the
    last line of its stderr."""
    kind, detail = "crash", result.last_stderr_line() or f"exit status {result.returncode}"
    if (out / ERROR_FILE).exists() or (out / ERROR_FILE).is_symlink():
        try:
            error = read_output_json(out / ERROR_FILE, MAX_ERROR_BYTES, shown_as=ERROR_FILE)
            if isinstance(error, dict) and error.get("kind") in ("unsupported", "input", "crash") \
                    and isinstance(error.get("message"), str):
                kind, detail = error["kind"], error["message"]
        except InputError as err:
            detail = err.message
    # The plugin writes the message: it is shown under the plugin's name, so it can never pass
    # for the pipeline's own error about a plan or a file.
    if kind == "unsupported":
        return MethodUnsupported(f"{what}: {_one_line(detail)}")
    if kind == "input":
        return InputError(f"{what}: {_one_line(detail)}", field="--method")
    return InputError(f"{what} failed: {_one_line(detail)}", field="--method")


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from, known without running its code (names and package metadata).

    Attributes:
        reference: how the user named it; target: the ``package.module:attr`` to import;
        origin: ``entry-point`` or ``reference``; provider: its distribution or module.
    """

    reference: str
    target: str
    origin: Literal["entry-point", "reference", "builtin"]
    provider: str

    @property
    def shown(self) -> str:
        if self.origin == "entry-point":
            return f"entry point {self.reference!r} ({self.target})"
        if self.origin == "builtin":
            return f"built-in method {self.reference}"
        return f"plugin {self.reference}"


def describe_plugin(source: PluginSource, params: list[str] | dict[str, Any] | None = None,
                    settings: JailSettings | None = None) -> tuple[PluginMethod, PluginParams]:
    """Resolve a plugin in the jail and validate ``params`` there.

    Args:
        source: the plugin's reference and what to import.
        params: ``key=value`` strings, a typed mapping, or None to check none (the returned
            params are then empty).
        settings: the jail settings (default: the current ones).

    Returns:
        the plugin and its validated params.

    Raises:
        InputError: the plugin failed to import, is not a valid method, declares a reserved or
            malformed name, or rejected the params (one line).
    """
    plugin, parsed, _ = _describe_in_jail(source, params, None, settings)
    return plugin, parsed


def unsupported_in_jail(method: PluginMethod, params: Any, rungs: list[RungFacts],
                        settings: JailSettings | None = None) -> list[str | None]:
    """Ask a method described in the jail, in the jail, whether it can run on each of ``rungs``
    (its ``unsupported_reason``); the trusted side's preflight for a jailed built-in.

    Returns:
        one entry per rung: the reason (one printable line) or None.
    """
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    source = PluginSource(method.reference, method.target, method.origin, method.provider)
    _, _, reasons = _describe_in_jail(source, params, rungs, settings)
    if reasons is None or len(reasons) != len(rungs):
        raise InputError(f"{source.shown} answered for {len(reasons or [])} rungs, asked for "
                         f"{len(rungs)}", field="--method")
    return [None if reason is None else _one_line(reason, 300) for reason in reasons]


def _describe_in_jail(source: PluginSource, params: list[str] | dict[str, Any] | None,
                      rungs: list[RungFacts] | None, settings: JailSettings | None
                      ) -> tuple[PluginMethod, PluginParams, list[str | None] | None]:
    settings = settings or current_settings()
    request = {"reference": source.target,
               "pairs": list(params) if isinstance(params, (list, tuple)) else None,
               "params": dict(params) if isinstance(params, dict) else None,
               "rungs": None if rungs is None else [dataclasses.asdict(r) for r in rungs]}
    with job_directories("w2s-describe-") as (job, out):
        (job / REQUEST_FILE).write_text(json.dumps(request))
        result, _ = run_job("describe", job, out, settings,
                            modules=reference_module(source.target),
                            timeout_s=min(DESCRIBE_TIMEOUT_S, settings.timeout_s))
        if result.returncode != 0:
            failure = _failure(out, result, f"{source.shown}")
            if source.origin == "entry-point" and not isinstance(failure, MethodUnsupported) \
                    and "params" not in str(failure) and "--param" not in str(failure):
                raise InputError(f"{source.shown} failed to load: "
                                 f"{getattr(failure, 'message', failure)}", field="--method")
            raise failure
        raw = read_output_json(out / DESCRIBE_FILE, MAX_DESCRIBE_BYTES,
                               shown_as=f"<describe of {source.reference}>")
    try:
        described = PluginDescription.model_validate(raw)
    except ValidationError as err:
        first = first_error(err)
        raise InputError(f"{source.shown} described itself badly: "
                         f"{first.dotted(default='description')}: "
                         f"{_one_line(first.message, 200)}", field="--method") from None
    plugin = PluginMethod(reference=source.reference, target=source.target,
                          origin=source.origin, provider=source.provider,
                          name=described.name, description=described.description,
                          params_schema=described.params_schema)
    return plugin, PluginParams(**(described.params or {})), described.unsupported


def run_plugin(plugin: PluginMethod, data: StudentData, trainer: StudentTrainer, params: Any,
               settings: JailSettings) -> tuple[np.ndarray, Isolation]:
    """Run ``plugin`` on the sealed inputs in the jail; return its test P(label 1) and the
    isolation used.

    Raises:
        InputError: the plugin failed or wrote malformed predictions.
        MethodUnsupported: the plugin cannot run on this model or task.
    """
    return run_in_jail(plugin.target, plugin.shown, plugin.name, data, trainer, params, settings)


def own_code(target: str) -> dict[str, str] | None:
    """The snapshots of the running method (``methods.code_cache.current_snapshot``) for a job
    importing ``target``, or None when the method runs without a fingerprint.

    Raises:
        InputError: ``target`` is a plugin whose top-level package is not among them (its code
            would be copied as the job finds it, not as it was fingerprinted).
    """
    snapshot = current_snapshot()
    if snapshot is None:
        return None
    top = target.partition(":")[0].split(".")[0]
    if ":" in target and top not in PROJECT_PACKAGES and top not in snapshot.copies:
        raise InputError(f"method {target}: its package {top} is not the code its fingerprint "
                         f"was taken of ({sorted(snapshot.copies)}); refused", field="--method")
    return dict(snapshot.copies)


def run_in_jail(target: str, shown: str, name: str, data: StudentData,
                trainer: StudentTrainer, params: Any,
                settings: JailSettings) -> tuple[np.ndarray, Isolation]:
    """Run the method the jail worker resolves as ``target`` (a plugin's ``module:attr``, or a
    built-in's name) on the sealed inputs in a fresh jail; return its test P(label 1) and the
    isolation used.

    The trainer is handed over with a backend for every model it offers already built
    (``prepared()``), so the jail needs no cache; checkpoints it loads are mounted read-only.

    Args:
        target: what ``methods.jail_worker`` resolves (``methods.registry.load_plugin``).
        shown: how failures name the method (``plugin method X``, ``built-in method X``).
        name: the method's name, for the predictions file's shown path.

    Raises:
        InputError: the method failed or wrote malformed predictions.
        MethodUnsupported: the method cannot run on this model or task.
    """
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    prepared = trainer.prepared() if hasattr(trainer, "prepared") else trainer
    model_paths = prepared.model_paths() if hasattr(prepared, "model_paths") else []
    with job_directories("w2s-plugin-") as (job, out):
        (job / REQUEST_FILE).write_text(json.dumps({"reference": target,
                                                     "params": params, "pairs": None}))
        modules = pickle_job({"data": data, "trainer": prepared}, job / JOB_FILE)
        result, isolation = run_job("run", job, out, settings,
                                    modules=[*reference_module(target), *modules],
                                    model_paths=model_paths, snapshots=own_code(target))
        if result.returncode != 0:
            raise _failure(out, result, shown)
        probs = read_predictions(out / PREDICTIONS_FILE, data.test_ids,
                                 shown_as=f"<jail of {name}>/{PREDICTIONS_FILE}")
    return probs, isolation
