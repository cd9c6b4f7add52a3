"""``external``: a method run as a command, in any language, inside the sandbox."""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from methods.exchange import PREDICTIONS_FILE, read_predictions, write_inputs
from methods.registry import register_method
from methods.sandbox import SandboxError, SandboxTimeout, current_policy, run_sandboxed
from transfer.errors import InputError
from transfer.sealed import StudentData, StudentTrainer


class ExternalParams(MethodParams):
    command: str = Field(..., min_length=1,
                         description="command line with {inputs} and {outputs} placeholders")
    timeout_s: float = Field(600.0, gt=0, description="wall-clock limit of the command")


def build_argv(command: str, inputs: Path, outputs: Path) -> list[str]:
    """Split ``command`` like a shell (no shell runs it) and fill in the placeholders.

    Tokens that name an existing file relative to the current directory are made absolute,
    because the command runs in a fresh empty working directory.

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
    argv = []
    for token in tokens:
        token = token.replace("{inputs}", str(inputs)).replace("{outputs}", str(outputs))
        if not os.path.isabs(token) and os.sep in token and os.path.exists(token):
            token = os.path.abspath(token)
        argv.append(token)
    if os.sep not in argv[0] and shutil.which(argv[0]) is None:
        raise InputError(f"method external: program {argv[0]!r} not found on PATH",
                         field="--param command")
    if os.sep in argv[0] and not os.access(argv[0], os.X_OK):
        raise InputError(f"method external: {argv[0]} is not an executable file",
                         field="--param command")
    return argv


@register_method
class External(MethodBase):
    """A method run as an external command (the pipeline's any-language plugin contract).

    Writes the sealed inputs (``methods.exchange``) to a fresh ``{inputs}`` directory, runs
    the command in the sandbox (``methods.sandbox``: scrubbed environment, empty working
    directory, the caller's hidden paths covered) and reads ``{outputs}/predictions.jsonl``.
    The command sees no gold labels; it does not use the trainer.
    """

    name = "external"
    description = ("Run a command (any language) on the sealed inputs and read its test "
                   "predictions (w2s-transfer plugin contract)")
    Params = ExternalParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: ExternalParams
            ) -> np.ndarray:
        policy = current_policy()
        with tempfile.TemporaryDirectory(prefix="w2s-external-") as root:
            inputs, outputs = Path(root, "inputs"), Path(root, "outputs")
            inputs.mkdir()
            outputs.mkdir()
            write_inputs(data, inputs)
            argv = build_argv(params.command, inputs, outputs)
            try:
                result = run_sandboxed(argv, timeout_s=params.timeout_s, hide=policy.hide,
                                       visible=[root], isolation=policy.isolation)
            except SandboxTimeout as err:
                raise InputError(f"method external: command timed out after {err.timeout_s:g} s "
                                 f"(raise --param timeout_s)", field="--param command") from None
            except SandboxError as err:
                raise InputError(f"method external: {err}", field="--param command") from None
            if result.returncode != 0:
                last = result.last_stderr_line() or "(no stderr)"
                raise InputError(f"method external: command exited with status "
                                 f"{result.returncode}: {last}", field="--param command")
            return read_predictions(outputs / PREDICTIONS_FILE, data.test_ids,
                                    shown_as=f"{{outputs}}/{PREDICTIONS_FILE}")
