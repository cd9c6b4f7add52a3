"""``w2s-transfer gate VERDICT.json --method NAME [--require REAL]``: the promotion gate."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands._errors import user_errors


def register(app: typer.Typer) -> None:
    """Add the ``gate`` command to ``app``."""

    @app.command("gate")
    def gate(
        verdict: Annotated[Path, typer.Argument(help="verdict.json written by a validate run.")],
        method: Annotated[str, typer.Option("--method", "-m", help="Method to gate.")],
        require: Annotated[list[str] | None, typer.Option(
            "--require", "-r",
            help="Acceptable verdicts (repeat or comma-separate), e.g. --require REAL.")] = None,
    ) -> None:
        """Exit 0 if METHOD may be promoted, 1 if not (with the reasons), 2 on bad input."""
        with user_errors():
            from flows.gate import check_promotion

            decision = check_promotion(verdict, method, require)
        typer.echo(decision.describe())
        raise typer.Exit(decision.exit_code)
