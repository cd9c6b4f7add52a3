"""``w2s-transfer report DIR``: re-render report.md/report.html from a run's saved outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands._errors import user_errors


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report(
        out_dir: Annotated[Path, typer.Argument(
            help="Output directory of a run (verdict.json, results.parquet, provenance.json).")],
        claude: Annotated[bool, typer.Option(
            "--claude/--keep-summary",
            help="Ask Claude for a fresh narrative (else reuse summary.json, or the "
                 "template).")] = False,
    ) -> None:
        """Re-render DIR/report.md and DIR/report.html from the saved results."""
        with user_errors():
            from flows.report.render import write_report
            from flows.report.saved import load_saved_run
            from flows.summary import Summary, summarize, template_summary

            saved = load_saved_run(out_dir)
            if claude:
                summary = summarize(saved.verdict)
            elif saved.summary is not None:
                summary = saved.summary
            else:
                summary = Summary(template_summary(saved.verdict), "template")
            files = write_report(out_dir, saved.verdict, saved.results, saved.provenance, summary)
        typer.echo(f"report: {files.html}")
        typer.echo(f"report: {files.markdown}")
