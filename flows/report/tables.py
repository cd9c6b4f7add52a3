"""Display tables built from a verdict dict: every number cell remembers where it came from.

A :class:`Shown` value carries the formatted text plus the verdict.json path and raw value it was
formatted from; templates write them as ``data-path``/``data-value`` so tests (and readers) can
trace every rendered number back to verdict.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flows.report.format import MISSING, UNDEFINED, Kind, fmt


@dataclass(frozen=True)
class Shown:
    """One table cell: display text and, for numbers, its verdict.json path and raw value."""

    text: str
    path: str | None = None
    value: Any = None
    kind: str | None = None

    @property
    def raw_json(self) -> str:
        """The raw value as JSON (what ``data-value`` holds)."""
        return json.dumps(self.value)


def number(verdict: dict[str, Any], path: tuple[str | int, ...], kind: Kind) -> Shown:
    """Look up ``path`` in the verdict dict and format it.

    A path that does not exist (an optional field the statistics engine did not write) renders
    as ``n/a`` without a source path; an existing null renders as ``n/a`` with its path.
    """
    value: Any = verdict
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return Shown(MISSING)
    return Shown(fmt(value, kind), ".".join(str(p) for p in path), value, kind)


def text(value: Any) -> Shown:
    """A non-numeric cell."""
    return Shown("" if value is None else str(value))


def _pgr(verdict: dict[str, Any], base: tuple[str | int, ...]) -> list[Shown]:
    """PGR estimate and interval cells; an undefined PGR is a word, never a number."""
    pgr = _get(verdict, base) or {}
    if not pgr.get("defined"):
        return [Shown(UNDEFINED), Shown("")]
    return [number(verdict, base + ("estimate",), "pgr"), _interval(verdict, base, "pgr")]


def _interval(verdict: dict[str, Any], base: tuple[str | int, ...], kind: Kind) -> Shown:
    """An interval cell; the two ends are separate Shown values joined by the template."""
    low = number(verdict, base + ("ci_low",), kind)
    high = number(verdict, base + ("ci_high",), kind)
    return Shown(f"[{low.text}, {high.text}]", None, (low, high), "interval")


def _get(verdict: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = verdict
    for part in path:
        value = value.get(part) if isinstance(value, dict) else (
            value[part] if isinstance(value, list) and isinstance(part, int) else None)
    return value


VERDICT_COLUMNS = ["method", "verdict", "promote", "dataset", "gain (pp)", "gain CI",
                   "p superiority", "p equivalence", "p adjusted", "PGR", "PGR CI",
                   "baseline PGR", "baseline PGR CI", "MDE80 (pp)", "seeds", "trend (pp/decade)"]

CELL_COLUMNS = ["method", "rung", "dataset", "strong model", "seeds", "weak acc", "ceiling acc",
                "baseline acc", "method acc", "gain (pp)", "gain CI", "p adjusted", "PGR",
                "PGR CI", "baseline PGR", "baseline PGR CI", "MDE80 (pp)"]


CONTROL_COLUMNS = ["control", "kind", "injected (pp)", "verdict", "promote", "dataset", "gain (pp)",
                   "gain CI", "p adjusted", "alpha", "MDE80 (pp)", "seeds"]


def production_cells(verdict: dict[str, Any], method: str, section: str = "methods"
                     ) -> list[int]:
    """Indexes of the method's (or control's) cells at the production rung (one per dataset)."""
    cells = verdict[section][method].get("cells", [])
    return [i for i, cell in enumerate(cells) if cell.get("rung") == verdict.get("production_rung")]


def control_added(entry: dict[str, Any]) -> str:
    """The gain a control injects, in points (``control_details.injected_gain``): exact for a
    synthetic spike-in and a null control, unknown for a gold-label spike-in (its fraction)."""
    mark = entry.get("control_details") or {}
    gain = mark.get("injected_gain")
    if gain is None:
        fraction = (mark.get("spec") or {}).get("gold_fraction", 0)
        return f"unknown ({100 * fraction:g}% gold labels)"
    return f"{100 * gain:+.2f}" if gain else "0"


def control_rows(verdict: dict[str, Any]) -> list[list[Shown]]:
    """The controls' table: one row per control (by its plan name) and dataset at the
    production rung."""
    rows = []
    for label, entry in (verdict.get("controls") or {}).items():
        mark = entry.get("control_details") or {}
        head = [text(mark.get("name", label)), text(mark.get("variant")),
                text(control_added(entry)),
                text(entry.get("verdict")), text("never")]
        for index in production_cells(verdict, label, "controls") or [None]:
            if index is None:
                rows.append(head + [text("")] + [Shown("n/a")] * (len(CONTROL_COLUMNS) - 6))
                continue
            base: tuple[str | int, ...] = ("controls", label, "cells", index)
            rows.append(head + [
                text(entry["cells"][index].get("dataset")),
                number(verdict, base + ("gain", "estimate"), "gain"),
                _interval(verdict, base + ("gain",), "gain"),
                number(verdict, base + ("gain", "p_adjusted"), "p"),
                number(verdict, ("controls", label, "alpha"), "level"),
                number(verdict, base + ("mde80",), "mde"),
                number(verdict, base + ("n_seeds",), "count"),
            ])
    return rows


def verdict_rows(verdict: dict[str, Any]) -> list[list[Shown]]:
    """The verdict table: one row per method and dataset at the production rung.

    A method without a production-rung cell still gets one row (its verdict and ``n/a`` numbers).
    """
    rows = []
    for method, decision in verdict["methods"].items():
        head = [text(method), text(decision.get("verdict")),
                text("yes" if decision.get("promote") else "no")]
        trend = number(verdict, ("methods", method, "trend", "slope_per_decade"), "slope")
        indexes = production_cells(verdict, method) or [None]
        for index in indexes:
            if index is None:
                rows.append(head + [text("")] + [Shown("n/a")] * (len(VERDICT_COLUMNS) - 6) + [
                    Shown("n/a"), trend])
                continue
            base: tuple[str | int, ...] = ("methods", method, "cells", index)
            cell = decision["cells"][index]
            rows.append(head + [
                text(cell.get("dataset")),
                number(verdict, base + ("gain", "estimate"), "gain"),
                _interval(verdict, base + ("gain",), "gain"),
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


def cell_rows(verdict: dict[str, Any]) -> list[list[Shown]]:
    """Every method (then every control) at every rung and dataset, with accuracies, gain
    interval and PGR."""
    rows = []
    entries = [("methods", m, d) for m, d in verdict["methods"].items()]
    entries += [("controls", c, d) for c, d in (verdict.get("controls") or {}).items()]
    for section, method, decision in entries:
        for index, cell in enumerate(decision.get("cells", [])):
            base: tuple[str | int, ...] = (section, method, "cells", index)
            rows.append([
                text(method), text(cell.get("rung")), text(cell.get("dataset")),
                text(cell.get("strong_model")),
                number(verdict, base + ("n_seeds",), "count"),
                *[number(verdict, base + ("acc", arm), "acc")
                  for arm in ("weak", "ceiling", "baseline", "method")],
                number(verdict, base + ("gain", "estimate"), "gain"),
                _interval(verdict, base + ("gain",), "gain"),
                number(verdict, base + ("gain", "p_adjusted"), "p"),
                *_pgr(verdict, base + ("pgr",)),
                *_pgr(verdict, base + ("pgr_baseline",)),
                number(verdict, base + ("mde80",), "mde"),
            ])
    return rows


def plain_rows(rows: list[list[Shown]]) -> list[list[str]]:
    """Rows as display strings (markdown, table artifacts)."""
    return [[shown.text for shown in row] for row in rows]
