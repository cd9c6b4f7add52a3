"""``w2s-transfer gate VERDICT.json --method NAME [--require REAL] [--plan PLAN] [--store DIR]
[--check-code] [--min-reuse-check-cells N]``: the promotion gate."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands._errors import user_errors
from flows.commands._paths import nonempty_path


def register(app: typer.Typer) -> None:
    """Add the ``gate`` command to ``app``."""

    @app.command("gate")
    def gate(
        verdict: Annotated[Path, typer.Argument(help="verdict.json written by a validate run.")],
        method: Annotated[str, typer.Option("--method", "-m", help="Method to gate.")],
        require: Annotated[list[str] | None, typer.Option(
            "--require", "-r",
            help="Verdicts the method must also have (repeat or comma-separate): promotion "
            "needs promote: true in the verdict, which only REAL ever carries, so --require "
            "REAL states it and any other value can only refuse.")] = None,
        plan: Annotated[Path | None, typer.Option(
            "--plan", help="The plan the verdict was derived from: re-derive the verdict from "
            "results.parquet and this plan and refuse any difference.",
            parser=nonempty_path)] = None,
        results: Annotated[Path | None, typer.Option(
            "--results", help="results.parquet to re-derive from (default: beside the "
            "verdict).", parser=nonempty_path)] = None,
        store: Annotated[Path | None, typer.Option(
            "--store", help="Run store: with --plan, check results.parquet against the stored "
            "runs it names and take the promotion guards from them.", parser=nonempty_path)] = None,
        check_code: Annotated[bool, typer.Option(
            "--check-code", help="Refuse a verdict whose method, baseline or trainer code "
            "fingerprint differs from this working tree's.")] = False,
        min_reuse_check_cells: Annotated[int | None, typer.Option(
            "--min-reuse-check-cells", help="Do not promote unless the campaign's reuse check "
            "recomputed at least this many of the cells holding runs reused from the store "
            "(all of them where fewer).")] = None,
    ) -> None:
        """Exit 0 if METHOD may be promoted, 1 if not (with the reasons), 2 on bad input or a
        verdict file that fails its checks (one line).

        The file must be bound to its plan, code and results and consistent with itself; with
        W2S_VERDICT_HMAC_KEY (or W2S_VERDICT_HMAC_SECRET_BLOCK) set it must carry a valid HMAC.
        """
        with user_errors():
            from flows.gate import check_promotion

            decision = check_promotion(verdict, method, require, plan=plan, results=results,
                                       store=store, code=check_code,
                                       min_reuse_check_cells=min_reuse_check_cells)
        typer.echo(decision.describe())
        raise typer.Exit(decision.exit_code)
