"""Prefect artifacts: the report (markdown), the verdict table (table) and run progress.

Keys are stable per plan, so every run of a deployment adds a new version of the same artifact
in the Prefect UI. Call these inside a flow or task run.
"""
from __future__ import annotations

import re
from uuid import UUID

from flows.report import tables
from stats.verdict_model import Verdict

KEY_PREFIX = "w2s"


def artifact_key(plan_name: str, kind: str = "report") -> str:
    """A Prefect artifact key: ``w2s-<kind>-<plan-name>``, lowercase letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{KEY_PREFIX}-{kind}-{plan_name}".lower()).strip("-")
    return re.sub(r"-{2,}", "-", slug)


def verdict_table(verdict: Verdict) -> list[dict[str, str]]:
    """The report's verdict table as rows of display strings (the same text as report.html)."""
    return [dict(zip(tables.VERDICT_COLUMNS, row))
            for row in tables.plain_rows(tables.verdict_rows(verdict))]


def publish_report(plan_name: str, report_markdown: str, verdict: Verdict,
                   description: str | None = None) -> dict[str, UUID]:
    """Publish the report markdown and the verdict table under stable keys.

    Args:
        plan_name: the plan's name (part of both keys).
        report_markdown: the report as markdown (``render_markdown(context, images=False)``).
        verdict: the verdict.
        description: optional artifact description.

    Returns:
        ``{"report": id, "verdict": id}`` of the created artifacts.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    report_id = create_markdown_artifact(
        markdown=report_markdown, key=artifact_key(plan_name, "report"),
        description=description or f"W2S transfer report for plan {plan_name}")
    table_id = create_table_artifact(
        table=verdict_table(verdict), key=artifact_key(plan_name, "verdict"),
        description=description or f"Verdicts for plan {plan_name}")
    return {"report": report_id, "verdict": table_id}


def create_progress_artifact(plan_name: str, progress: float = 0.0,
                             description: str | None = None) -> UUID:
    """Start a progress artifact (``progress`` in percent, 0-100) for a plan's run."""
    from prefect.artifacts import create_progress_artifact as _create

    return _create(progress=_percent(progress), key=artifact_key(plan_name, "progress"),
                   description=description or f"Runs finished for plan {plan_name}")


def update_progress_artifact(artifact_id: UUID, progress: float,
                             description: str | None = None) -> UUID:
    """Move a progress artifact to ``progress`` percent (clipped to 0-100)."""
    from prefect.artifacts import update_progress_artifact as _update

    return _update(artifact_id=artifact_id, progress=_percent(progress), description=description)


class ProgressTracker:
    """Counts finished units of work into one progress artifact.

    Example: ``tracker = ProgressTracker("demo", total=54); tracker.advance()`` after each run.
    """

    def __init__(self, plan_name: str, total: int, description: str | None = None) -> None:
        if total < 1:
            raise ValueError("total must be at least 1")
        self.total, self.done = total, 0
        self.artifact_id = create_progress_artifact(plan_name, 0.0, description)

    def advance(self, units: int = 1, total: int | None = None) -> float:
        """Record ``units`` more finished (and a new total, e.g. when seeds are added).

        Returns:
            The progress now shown, in percent.
        """
        return self.set(self.done + units, max(total or self.total, self.done + units))

    def set(self, done: int, total: int) -> float:
        """Show ``done`` of ``total`` finished; the total may shrink (work decided early is
        dropped) or grow.

        Returns:
            The progress now shown, in percent.
        """
        self.done, self.total = max(0, done), max(total, done, 1)
        percent = 100.0 * self.done / self.total
        update_progress_artifact(self.artifact_id, percent)
        return percent


def _percent(progress: float) -> float:
    return float(min(100.0, max(0.0, progress)))
