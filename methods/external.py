"""``external``: a method run as a command, in any language, inside the jail.

A built-in that is part of the jail machinery, not a W2S method port: it runs in the trusted
process under any ``builtins`` setting (``methods.builtin_names.COMMAND_BUILTINS``), so it lives
outside ``methods/builtin/``."""
from __future__ import annotations

import os
import shlex
import shutil

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.code_cache import JailSetupError, current_snapshot, file_copy
from methods.exchange import PREDICTIONS_FILE, read_predictions, write_inputs
from methods.jail import JailTimeout
from methods.jail_runtime import JOB, OUT, jail_search_path, job_directories
from methods.policy import current_settings
from methods.registry import register_method
from methods.untrusted import run_command
from transfer.sealed import StudentData, StudentTrainer
from w2s_common.errors import InputError


class ExternalParams(MethodParams):
    command: str = Field(..., min_length=1,
                         description="command line with {inputs} and {outputs} placeholders")
    timeout_s: float = Field(600.0, gt=0, le=366 * 24 * 3600.0, allow_inf_nan=False,
                             description="wall-clock limit of the command (at most the plan's "
                                         "jail.timeout_s, which wins when smaller)")


def _runtime_roots() -> list[str]:
    """Where the jail's system and Python runtimes live (already in every jail, read-only)."""
    from methods.jail import system_mounts
    from methods.jail_runtime import python_mounts

    return [m.target.rstrip("/") for m in [*system_mounts(), *python_mounts()]
            if m.kind in ("ro", "symlink") and m.target != "/"]


def _check_own_file(path: str) -> None:
    """A command's own file must be the file its name says: not reached through a symbolic
    link (``weights.bin -> ~/.cache/w2s-transfer/store/ceiling/<hash>/predictions.parquet``),
    not one name of several for the same file (a hard link to a label file)."""
    if os.path.realpath(path) != path:
        raise InputError(f"method external: {path} is reached through a symbolic link; name "
                         "the file itself", field="--param command")
    links = os.stat(path).st_nlink
    if links > 1:
        raise InputError(f"method external: {path} has {links} hard links; a command's own "
                         "files must be files of their own", field="--param command")


def build_argv(command: str) -> tuple[list[str], list[str]]:
    """Split ``command`` like a shell (no shell runs it) and fill in the placeholders.

    ``{inputs}`` becomes ``/w2s/job`` and ``{outputs}`` ``/w2s/out``, the jail's paths. Tokens
    that name an existing regular file relative to the current directory are made absolute,
    and every token naming an existing regular file outside the system and Python runtimes
    (which every jail holds) is one of the command's own files, mounted read-only into the jail
    at its path (directories are never mounted: a command that needs more than its files is a
    plugin). An own file reached through a symbolic link, or with more than one hard link, is
    refused: the plan names the file the program may read, not whatever a link leads to.

    A program named without a path is looked up here on the jail's PATH
    (``methods.jail_runtime.jail_search_path``) and replaced by the file found,
    so the jail runs the file the fingerprint covers (``methods.fingerprint``): a runtime
    program's bytes are in it, and a program found outside the runtimes is an own file.

    Returns:
        ``(argv, files)``.

    Raises:
        InputError: unbalanced quotes, an empty command, a program not found on PATH, or an
            own file that is a link.
    """
    try:
        tokens = shlex.split(command)
    except ValueError as err:
        raise InputError(f"method external: cannot split the command: {err}",
                         field="--param command") from None
    if not tokens:
        raise InputError("method external: empty command", field="--param command")
    program = tokens[0]
    if os.sep not in program:
        found = shutil.which(program, path=jail_search_path())
        if found is None:
            raise InputError(f"method external: program {program!r} not found on the jail's "
                             f"PATH ({jail_search_path()}); name its file", field="--param command")
        # The jail runs the very file fingerprinted here, never whatever its own PATH finds.
        tokens[0] = os.path.abspath(found)
    argv, files = [], []
    runtime = _runtime_roots()
    for token in tokens:
        token = token.replace("{inputs}", JOB).replace("{outputs}", OUT)
        if os.path.isfile(token):
            token = os.path.abspath(token)
            if not in_runtime(token, runtime):
                _check_own_file(token)
                files.append(token)
        argv.append(token)
    if not os.path.isfile(argv[0]) or not os.access(argv[0], os.X_OK):
        raise InputError(f"method external: {argv[0]} is not an executable file",
                         field="--param command")
    return argv, files


def command_to_run(command: str) -> tuple[list[str], dict[str, str]]:
    """The argv to run and each own file -> the private copy the jail mounts at its path: as
    fixed when the method's fingerprint was taken (``methods.fingerprint.command_code``, handed
    over as ``methods.code_cache.current_snapshot``), whatever the files say now (one removed
    since is still mounted, one added is not); run without a fingerprint, split now and copied
    now. Either way the jail never mounts a file itself, which could change (or become a link
    to a label file) after it was checked.

    Raises:
        InputError: the command cannot be split, or an own file cannot be copied as a regular
            file of its own.
    """
    snapshot = current_snapshot()
    if snapshot is not None and snapshot.argv is not None:
        return list(snapshot.argv), dict(snapshot.copies)
    argv, files = build_argv(command)
    try:
        return argv, {path: file_copy(path)[0] for path in files}
    except JailSetupError as err:
        raise InputError(f"method external: {err}", field="--param command") from None


def in_runtime(path: str, runtime: list[str] | None = None) -> bool:
    """Whether ``path`` lies in the system or Python runtime every jail holds."""
    roots = _runtime_roots() if runtime is None else runtime
    return any(path.startswith(root + "/") for root in roots)


@register_method
class External(MethodBase):
    """A method run as an external command (the pipeline's any-language plugin contract).

    Writes the sealed inputs (``methods.exchange``) to the job directory (``{inputs}``, mounted
    read-only at ``/w2s/job``), runs the command in the jail (``methods.jail``: a fresh root
    with the system and Python runtimes, the command's own files, the inputs and a writable
    ``{outputs}`` at ``/w2s/out``; no network, an unprivileged uid) and reads
    ``{outputs}/predictions.jsonl`` as untrusted output. It does not use the trainer.
    """

    name = "external"
    description = ("Run a command (any language) on the sealed inputs and read its test "
                   "predictions (w2s-transfer plugin contract)")
    Params = ExternalParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: ExternalParams
            ) -> np.ndarray:
        argv, copies = command_to_run(params.command)
        with job_directories("w2s-external-") as (job, out):
            write_inputs(data, job)
            settings = current_settings()
            try:
                result, _ = run_command(argv, job, out, settings, files=copies,
                                        timeout_s=params.timeout_s)
            except JailTimeout as err:
                which = ("--param timeout_s" if params.timeout_s <= settings.timeout_s
                         else "the plan's jail.timeout_s, which caps --param timeout_s")
                raise InputError(f"method external: command timed out after {err.timeout_s:g} s "
                                 f"(raise {which})", field="--param command") from None
            if result.returncode != 0:
                last = result.last_stderr_line() or "(no stderr)"
                raise InputError(f"method external: command exited with status "
                                 f"{result.returncode}: {last}", field="--param command")
            return read_predictions(out / PREDICTIONS_FILE, data.test_ids,
                                    shown_as=f"{{outputs}}/{PREDICTIONS_FILE}")
