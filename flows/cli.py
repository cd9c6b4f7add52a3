"""The ``w2s-transfer`` command line.

Each command lives in its own module under ``flows/commands/`` and exposes ``register(app)``;
modules import their heavy dependencies (torch, prefect) inside the command body so that light
commands such as ``gate`` start fast.
"""
from __future__ import annotations

import importlib

import typer

from flows.commands._errors import OneLineUsageGroup

app = typer.Typer(
    cls=OneLineUsageGroup,  # usage errors as one line, like every other bad input
    name="w2s-transfer",
    help="Validate weak-to-strong supervision methods up a ladder of larger models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order here is the order in `--help`.
COMMAND_MODULES = [
    "flows.commands.validate_cmd",
    "flows.commands.ladders",
    "flows.commands.run_arm",
    "flows.commands.methods_cmd",
    "flows.commands.gate",
    "flows.commands.report",
    "flows.commands.plan_schema",
    "flows.commands.analyze",
    "flows.commands.audit",
    "flows.commands.worker_cmd",
]

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # `python -m flows.cli`: how the deepspeed launcher starts ranks
    main()
