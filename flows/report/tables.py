"""Display tables built from the verdict: every number cell remembers where it came from.

A :class:`~stats.display.Shown` value carries the formatted text plus the verdict.json path and
raw value it was formatted from; templates write them as ``data-path``/``data-value`` so tests
(and readers) can trace every rendered number back to verdict.json.
"""
from __future__ import annotations

from typing import Any

from stats.display import MISSING, UNDEFINED, Shown, VerdictPath, interval, number, written
from stats.verdict_model import Verdict
from stats.verdict_prose import Section, control_added, production_cells


def text(value: Any) -> Shown:
    """A non-numeric cell."""
    return Shown("" if value is None else str(value))


def _pgr(verdict: Verdict, base: VerdictPath) -> list[Shown]:
    """PGR estimate and interval cells; an undefined PGR is a word, never a number."""
    _, pgr = written(verdict, base)
    if not pgr.defined:
        return [Shown(UNDEFINED), Shown("")]
    return [number(verdict, base + ("estimate",), "pgr"), interval(verdict, base, "pgr")]


VERDICT_COLUMNS = ["method", "verdict", "promote", "dataset", "gain (pp)", "gain CI",
                   "decision CI", "p superiority", "p equivalence", "p adjusted", "PGR", "PGR CI",
                   "baseline PGR", "baseline PGR CI", "MDE80 (pp)", "seeds", "trend (pp/decade)"]

CELL_COLUMNS = ["method", "rung", "dataset", "strong model", "seeds", "weak acc", "ceiling acc",
                "baseline acc", "method acc", "gain (pp)", "gain CI", "p adjusted", "PGR",
                "PGR CI", "baseline PGR", "baseline PGR CI", "MDE80 (pp)"]


CONTROL_COLUMNS = ["control", "kind", "injected (pp)", "verdict", "promote", "dataset", "gain (pp)",
                   "gain CI", "decision CI", "p adjusted", "alpha", "MDE80 (pp)", "seeds"]


def control_rows(verdict: Verdict) -> list[list[Shown]]:
    """The controls' table: one row per control (by its plan name) and dataset at the
    production rung."""
    rows = []
    for label, entry in verdict.controls.items():
        details = entry.control_details
        head = [text(details.name if details else label), text(details and details.variant),
                text(control_added(entry)), text(entry.verdict), text("never")]
        for index in production_cells(verdict, "controls", label) or [None]:
            if index is None:
                rows.append(head + [text("")] + [Shown(MISSING)] * (len(CONTROL_COLUMNS) - 6))
                continue
            base: VerdictPath = ("controls", label, "cells", index)
            rows.append(head + [
                text(entry.cells[index].dataset),
                number(verdict, base + ("gain", "estimate"), "gain"),
                interval(verdict, base + ("gain",), "gain"),
                interval(verdict, base + ("gain",), "gain", prefix="decision_"),
                number(verdict, base + ("gain", "p_adjusted"), "p"),
                number(verdict, ("controls", label, "alpha"), "level"),
                number(verdict, base + ("mde80",), "mde"),
                number(verdict, base + ("n_seeds",), "count"),
            ])
    return rows


def verdict_rows(verdict: Verdict) -> list[list[Shown]]:
    """The verdict table: one row per method and dataset at the production rung.

    A method without a production-rung cell still gets one row (its verdict and ``n/a`` numbers).
    """
    rows = []
    for method, decision in verdict.methods.items():
        head = [text(method), text(decision.verdict), text("yes" if decision.promote else "no")]
        trend = number(verdict, ("methods", method, "trend", "slope_per_decade"), "slope")
        for index in production_cells(verdict, "methods", method) or [None]:
            if index is None:
                rows.append(head + [text("")] + [Shown(MISSING)] * (len(VERDICT_COLUMNS) - 5)
                            + [trend])
                continue
            base: VerdictPath = ("methods", method, "cells", index)
            rows.append(head + [
                text(decision.cells[index].dataset),
                number(verdict, base + ("gain", "estimate"), "gain"),
                interval(verdict, base + ("gain",), "gain"),
                interval(verdict, base + ("gain",), "gain", prefix="decision_"),
                number(verdict, base + ("gain", "p_superiority"), "p"),
                number(verdict, base + ("gain", "p_equivalence"), "p"),
                number(verdict, base + ("gain", "p_adjusted"), "p"),
                *_pgr(verdict, base + ("pgr",)),
                *_pgr(verdict, base + ("pgr_baseline",)),
                number(verdict, base + ("mde80",), "mde"),
                number(verdict, base + ("n_seeds",), "count"),
                trend,
            ])
    return rows


def cell_rows(verdict: Verdict) -> list[list[Shown]]:
    """Every method (then every control) at every rung and dataset, with accuracies, gain
    interval and PGR."""
    rows = []
    sections: tuple[Section, ...] = ("methods", "controls")
    for section in sections:
        for method, decision in getattr(verdict, section).items():
            for index, cell in enumerate(decision.cells):
                base: VerdictPath = (section, method, "cells", index)
                rows.append([
                    text(method), text(cell.rung), text(cell.dataset), text(cell.strong_model),
                    number(verdict, base + ("n_seeds",), "count"),
                    *[number(verdict, base + ("acc", arm), "acc")
                      for arm in ("weak", "ceiling", "baseline", "method")],
                    number(verdict, base + ("gain", "estimate"), "gain"),
                    interval(verdict, base + ("gain",), "gain"),
                    number(verdict, base + ("gain", "p_adjusted"), "p"),
                    *_pgr(verdict, base + ("pgr",)),
                    *_pgr(verdict, base + ("pgr_baseline",)),
                    number(verdict, base + ("mde80",), "mde"),
                ])
    return rows


def plain_rows(rows: list[list[Shown]]) -> list[list[str]]:
    """Rows as display strings (markdown, table artifacts)."""
    return [[shown.text for shown in row] for row in rows]
