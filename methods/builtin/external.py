"""``external``: a method run as a command, in any language, inside the jail."""
from __future__ import annotations

import os
import shlex
import shutil
from typing import ClassVar

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.exchange import PREDICTIONS_FILE, read_predictions, write_inputs
from methods.jail import JailTimeout
from methods.jail_runtime import JOB, OUT, job_directories
from methods.policy import current_settings
from methods.registry import register_method
from methods.untrusted import run_command
from transfer.errors import InputError
from transfer.sealed import StudentData, StudentTrainer


class ExternalParams(MethodParams):
    command: str = Field(..., min_length=1,
                         description="command line with {inputs} and {outputs} placeholders")
    timeout_s: float = Field(600.0, gt=0, description="wall-clock limit of the command")


def build_argv(command: str) -> tuple[list[str], list[str]]:
    """Split ``command`` like a shell (no shell runs it) and fill in the placeholders.

    ``{inputs}`` becomes ``/w2s/job`` and ``{outputs}`` ``/w2s/out``, the jail's paths. Tokens
    that name an existing regular file relative to the current directory are made absolute,
    and every token naming an existing regular file is one of the command's own files, mounted
    read-only into the jail at its path (directories are never mounted: a command that needs
    more than its files is a plugin).

    Returns:
        ``(argv, files)``.

    Raises:
        InputError: unbalanced quotes, an empty command or a program not found on PATH.
    """
    try:
        tokens = shlex.split(command)
    except ValueError as err:
        raise InputError(f"method external: cannot split the command: {err}",
                         field="--param command") from None
    if not tokens:
        raise InputError("method external: empty command", field="--param command")
    argv, files = [], []
    for token in tokens:
        token = token.replace("{inputs}", JOB).replace("{outputs}", OUT)
        if os.path.isfile(token):
            token = os.path.abspath(token)
            files.append(token)
        argv.append(token)
    if os.sep not in argv[0] and shutil.which(argv[0]) is None:
        raise InputError(f"method external: program {argv[0]!r} not found on PATH",
                         field="--param command")
    if os.sep in argv[0] and not os.access(argv[0], os.X_OK):
        raise InputError(f"method external: {argv[0]} is not an executable file",
                         field="--param command")
    return argv, files


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
    runs_untrusted_code: ClassVar[bool] = True

    def run(self, data: StudentData, trainer: StudentTrainer, params: ExternalParams
            ) -> np.ndarray:
        argv, files = build_argv(params.command)
        with job_directories("w2s-external-") as (job, out):
            write_inputs(data, job)
            try:
                result, _ = run_command(argv, job, out, current_settings(), files=files,
                                        timeout_s=params.timeout_s)
            except JailTimeout as err:
                raise InputError(f"method external: command timed out after {err.timeout_s:g} s "
                                 f"(raise --param timeout_s)", field="--param command") from None
            if result.returncode != 0:
                last = result.last_stderr_line() or "(no stderr)"
                raise InputError(f"method external: command exited with status "
                                 f"{result.returncode}: {last}", field="--param command")
            return read_predictions(out / PREDICTIONS_FILE, data.test_ids,
                                    shown_as=f"{{outputs}}/{PREDICTIONS_FILE}")
