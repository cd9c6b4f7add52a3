"""Run a method the safe way: built-ins in-process, plugins in the sandbox worker."""
from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from methods.base import Method, check_test_probs
from methods.exchange import PREDICTIONS_FILE, read_predictions
from methods.registry import is_builtin, method_info
from methods.sandbox import (IsolationRequest, SandboxError, SandboxTimeout, run_sandboxed,
                             sandbox_policy)
from methods.sandbox_worker import ERROR_FILE, JOB_FILE, OUT_DIR
from transfer.errors import InputError
from transfer.sealed import MethodUnsupported, StudentData, StudentTrainer

RunIsolation = Literal["in-process", "namespace", "subprocess"]


@dataclass(frozen=True)
class MethodRun:
    """A method's test predictions and how it was isolated.

    Attributes:
        probs: ``(n_test,)`` P(label 1) in ``data.test_ids`` order.
        isolation: ``in-process`` (trusted built-in that started no untrusted child),
            ``namespace`` or ``subprocess`` (the weakest isolation any untrusted child got).
    """

    probs: np.ndarray
    isolation: RunIsolation


def _importable_paths() -> str:
    paths = [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)]
    return os.pathsep.join(dict.fromkeys(paths))


def _run_plugin(method: Method, data: StudentData, trainer: StudentTrainer, params: BaseModel,
                hide: Sequence[str], isolation: IsolationRequest, timeout_s: float,
                env_extra: dict[str, str] | None) -> tuple[np.ndarray, RunIsolation]:
    reference = method_info(method).reference
    with tempfile.TemporaryDirectory(prefix="w2s-plugin-") as job_dir:
        job = {"reference": reference, "params": params.model_dump(mode="json"),
               "data": data, "trainer": trainer}
        try:
            payload = pickle.dumps(job)
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            raise SandboxError(f"cannot hand the trainer to the sandbox worker (not picklable: "
                               f"{err})") from None
        Path(job_dir, JOB_FILE).write_bytes(payload)
        env = {"PYTHONPATH": _importable_paths(), **(env_extra or {})}
        try:
            result = run_sandboxed([sys.executable, "-m", "methods.sandbox_worker", job_dir],
                                   timeout_s=timeout_s, hide=hide, visible=[job_dir],
                                   env_extra=env, isolation=isolation)
        except SandboxTimeout as err:
            raise InputError(f"plugin method {method.name} timed out after {err.timeout_s:g} s",
                             field="--method") from None
        out = Path(job_dir, OUT_DIR)
        if result.returncode != 0:
            detail = result.last_stderr_line() or f"exit status {result.returncode}"
            kind = "crash"
            error_path = out / ERROR_FILE
            if error_path.is_file():
                try:
                    error = json.loads(error_path.read_text(encoding="utf-8"))
                    kind, detail = str(error["kind"]), str(error["message"])
                except (ValueError, KeyError, TypeError):
                    pass
            if kind == "unsupported":
                raise MethodUnsupported(detail)
            raise InputError(f"plugin method {method.name} failed: {detail}", field="--method")
        probs = read_predictions(out / PREDICTIONS_FILE, data.test_ids,
                                 shown_as=f"<sandbox of {method.name}>/{PREDICTIONS_FILE}")
        return probs, result.isolation


def run_method(method: Method, data: StudentData, trainer: StudentTrainer, params: BaseModel,
               *, hide: Sequence[str | os.PathLike[str]] = (),
               isolation: IsolationRequest = "auto", timeout_s: float = 24 * 3600.0,
               env_extra: dict[str, str] | None = None) -> MethodRun:
    """Run ``method`` on sealed inputs and return validated test probabilities.

    Trusted built-ins run in this process (``external`` starts its command in the sandbox with
    ``hide``); any other method runs in ``python -m methods.sandbox_worker`` inside the
    sandbox, which needs ``trainer`` to be picklable.

    Args:
        method: from ``methods.registry.resolve_method``.
        data, trainer: the sealed inputs and the trainer.
        params: an instance of ``method.Params`` (``methods.registry.parse_params``).
        hide: paths untrusted code must not read: the dataset directory, the run store, the
            results cache, the evaluator's source (``default_hidden_paths``).
        isolation: ``auto``, ``namespace`` (error if unavailable) or ``subprocess``.
        timeout_s: limit for a sandboxed plugin worker.
        env_extra: extra environment for the plugin worker (e.g. model cache variables).

    Returns:
        :class:`MethodRun`.

    Raises:
        InputError: the method failed or returned malformed predictions.
        MethodUnsupported: the method cannot run on this model/task.
        SandboxError: isolation could not be set up as requested.
    """
    hidden = tuple(str(p) for p in hide)
    with sandbox_policy(hidden, isolation) as policy:
        if is_builtin(method):
            probs = method.run(data, trainer, params)
            used: RunIsolation = "in-process"
            if policy.used:
                used = "subprocess" if "subprocess" in policy.used else "namespace"
        else:
            probs, used = _run_plugin(method, data, trainer, params, hidden, isolation,
                                      timeout_s, env_extra)
    return MethodRun(check_test_probs(probs, data, method.name), used)


EVALUATOR_MODULES = ("transfer.data", "transfer.arms", "transfer.store")


def default_hidden_paths(modules: Sequence[str] = EVALUATOR_MODULES) -> list[str]:
    """Source files/directories of the modules that can read or score gold labels.

    Hiding them keeps a sandboxed plugin from importing the evaluator (e.g. regenerating the
    built-in synthetic task with its labels). Modules that do not exist are skipped; nothing
    is imported (``importlib.util.find_spec`` on the parent package only).
    """
    import importlib.util

    paths: list[str] = []
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            paths.extend(spec.submodule_search_locations)
        elif spec.origin and os.path.exists(spec.origin):
            # The compiled copies hold the same code as the source file.
            source = Path(spec.origin)
            paths.append(str(source))
            paths.extend(str(p) for p in source.parent.glob(f"__pycache__/{source.stem}.*.pyc"))
    return paths
