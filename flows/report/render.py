"""Render and write report.md and a self-contained report.html from the verdict.

Every number comes from the :class:`~stats.verdict_model.Verdict` through
:func:`stats.display.fmt`, and every sentence about a method from :mod:`stats.verdict_prose`; the
results table and the provenance only add provenance (models, seeds), never a statistic.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
import pandas as pd

from flows.report import notes as report_notes
from flows.report import plots, tables
from stats.display import Shown, number, plain
from stats.verdict import answered_question
from stats.verdict_model import Verdict
from w2s_common.atomic import atomic_write_bytes, atomic_write_text

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PLOTS_DIR = "report_files"


class SummaryLike(Protocol):
    """What the report needs of a narrative summary (see :class:`flows.summary.Summary`)."""

    text: str
    source: str
    model: str | None


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    html: Path
    plots: list[Path]
    artifact_markdown: str = ""  # the report without image links, for publish_report()


def _summary_block(summary: SummaryLike | None) -> dict[str, str] | None:
    if summary is None:
        return None
    if summary.source == "claude":
        label = (f"Narrative summary written by Claude ({summary.model}) from the aggregate "
                 "numbers above. It is commentary: the tables and figures, formatted from "
                 "verdict.json, are authoritative.")
    else:
        reason = getattr(summary, "fallback_reason", None)
        label = ("Narrative summary from a deterministic template over verdict.json; no "
                 "language model text was used" + (f": {reason}." if reason else "."))
    return {"text": summary.text, "label": label, "source": summary.source}


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out.append((prefix, value if isinstance(value, str) else json.dumps(value)))


def build_context(verdict: Verdict, results: pd.DataFrame | None,
                  provenance: dict[str, Any] | None,
                  summary: SummaryLike | None = None) -> dict[str, Any]:
    """Everything the templates show, computed once for both report formats.

    Args:
        verdict: the verdict.
        results: the results table (only its row count and arms are shown).
        provenance: plan hash, package versions, git commit, models, seeds, timings.
        summary: an optional narrative (shown separately, labelled).

    Returns:
        The template context.
    """
    provenance = dict(provenance or {})
    plan_name = (provenance.get("plan") or {}).get("name") if isinstance(
        provenance.get("plan"), dict) else None
    if results is not None and not results.empty:
        provenance.setdefault("results_table", {
            "rows": int(len(results)),
            "arms": (sorted(str(arm) for arm in results["arm"].unique())
                     if "arm" in results else [])})
    provenance_rows: list[tuple[str, str]] = []
    _flatten("", provenance, provenance_rows)
    figures = [{"name": f.name, "alt": f.alt, "notes": f.notes, "png": f.png,
                "data_uri": "data:image/png;base64," + base64.b64encode(f.png).decode("ascii"),
                "file": f"{PLOTS_DIR}/{f.name}.png"}
               for f in plots.all_figures(verdict)]
    return {
        "title": "W2S transfer report" + (f": {plan_name}" if plan_name else ""),
        "baseline": verdict.baseline,
        "production_rung": verdict.production_rung,
        "alpha": number(verdict, ("alpha",), "level"),
        "sesoi": number(verdict, ("sesoi",), "mde"),
        "decision_rule": verdict.decision_rule,
        "estimand": answered_question(verdict),
        "verdict_columns": tables.VERDICT_COLUMNS,
        "verdict_rows": tables.verdict_rows(verdict),
        "control_columns": tables.CONTROL_COLUMNS,
        "control_rows": tables.control_rows(verdict),
        "control_reasons": report_notes.reasons(verdict, "controls"),
        "cell_columns": tables.CELL_COLUMNS,
        "cell_rows": tables.cell_rows(verdict),
        "reasons": report_notes.reasons(verdict),
        "power_notes": report_notes.power_notes(verdict),
        "trend_notes": report_notes.trend_notes(verdict),
        "figures": figures,
        "provenance": provenance_rows,
        "summary": _summary_block(summary),
    }


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.tests["shown"] = lambda value: isinstance(value, Shown)
    env.filters["plain"] = plain
    env.filters["md_cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env


def render_html(context: dict[str, Any]) -> str:
    """The self-contained HTML report (inline CSS, figures as base64 PNG, no scripts)."""
    return _environment(autoescape=True).get_template("report.html.j2").render(**context)


def render_markdown(context: dict[str, Any], *, images: bool = True) -> str:
    """The markdown report; ``images=False`` drops figure links (e.g. for Prefect artifacts)."""
    return _environment(autoescape=False).get_template("report.md.j2").render(
        **context, images=images)


def write_report(out_dir: str | Path, verdict: Verdict, results: pd.DataFrame | None,
                 provenance: dict[str, Any] | None = None,
                 summary: SummaryLike | None = None) -> ReportFiles:
    """Write report.md (+ its PNGs under report_files/) and report.html into ``out_dir``.

    Every file is written atomically; a summary, when given, is saved as summary.json so that
    ``w2s-transfer report DIR`` re-renders the same narrative.

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    context = build_context(verdict, results, provenance, summary)
    plot_paths = [atomic_write_bytes(out / figure["file"], figure["png"])
                  for figure in context["figures"]]
    if summary is not None:
        atomic_write_text(out / "summary.json", json.dumps(
            {"text": summary.text, "source": summary.source, "model": summary.model,
             "fallback_reason": getattr(summary, "fallback_reason", None),
             "rejected_text": getattr(summary, "rejected_text", None)}, indent=2))
    markdown = atomic_write_text(out / "report.md", render_markdown(context))
    html = atomic_write_text(out / "report.html", render_html(context))
    return ReportFiles(markdown=markdown, html=html, plots=plot_paths,
                       artifact_markdown=render_markdown(context, images=False))
