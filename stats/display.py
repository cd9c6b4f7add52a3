"""Verdict values as display text: the one number format of summary.md, the report, the
narrative summary and the Prefect artifacts.

Renderers never compute numbers: they format verdict values through :func:`fmt`, so a test can
re-format the source value and compare it with the rendered text. :func:`number` returns a
:class:`Shown`, the text plus the verdict.json path and raw value it was formatted from, so the
HTML report can tag every number with where it came from (``data-path``, ``data-value``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from stats.verdict_model import Verdict

Kind = Literal["gain", "acc", "mde", "p", "pgr", "count", "slope", "level"]
MISSING = "n/a"
UNDEFINED = "undefined"


def fmt(value: Any, kind: Kind) -> str:
    """Format one verdict.json value for display.

    Args:
        value: the raw number (None, NaN and non-numbers render as ``n/a``).
        kind: ``gain`` (fraction -> signed percentage points, 2 decimals), ``acc`` and ``mde``
            (fraction -> percent / points, 2 decimals), ``p`` (p-value: 3 decimals, ``<0.001``
            below), ``pgr`` (2 decimals), ``slope`` (fraction per decade -> signed points),
            ``level`` (alpha: as is, shortest form), ``count`` (integer).

    Returns:
        The display text.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return MISSING
    if kind in ("gain", "slope"):
        return f"{value * 100:+.2f}"
    if kind in ("acc", "mde"):
        return f"{value * 100:.2f}"
    if kind == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "pgr":
        return f"{value:+.2f}"
    if kind == "level":
        return f"{value:.3g}"  # 0.05, 0.025, 0.0167 (alpha / 3), not 0.0166667
    if kind == "count":
        return f"{int(value):d}"
    raise ValueError(f"unknown number kind {kind!r}")


def fmt_interval(low: Any, high: Any, kind: Kind) -> str:
    """``[low, high]`` with both ends through :func:`fmt`."""
    return f"[{fmt(low, kind)}, {fmt(high, kind)}]"


@dataclass(frozen=True)
class Shown:
    """Display text and, for a number, its verdict.json path, raw value and kind (an interval
    has kind ``interval`` and the pair of its ends' ``Shown`` as its value)."""

    text: str
    path: str | None = None
    value: Any = None
    kind: str | None = None

    @property
    def raw_json(self) -> str:
        """The raw value as JSON (what ``data-value`` holds)."""
        return json.dumps(self.value)


VerdictPath = tuple[str | int, ...]
Sentence = list[str | Shown]  # a run of plain text and shown numbers


def written(verdict: Verdict, path: VerdictPath) -> tuple[bool, Any]:
    """``(True, value)`` of the value at ``path`` (attribute names, dict keys, list indexes),
    or ``(False, None)`` where verdict.json has no such entry: an optional field never set is
    left out of the file (``exclude_unset``), so it is absent here too."""
    value: Any = verdict
    for part in path:
        if isinstance(value, BaseModel):
            if not isinstance(part, str) or part not in value.model_fields_set:
                return False, None
            value = getattr(value, part)
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return False, None
    return True, value


def number(verdict: Verdict, path: VerdictPath, kind: Kind) -> Shown:
    """The value at ``path`` formatted by :func:`fmt`, remembering its path.

    An entry the file does not have renders as ``n/a`` without a path; a null renders as
    ``n/a`` with its path.
    """
    found, value = written(verdict, path)
    if not found:
        return Shown(MISSING)
    return Shown(fmt(value, kind), ".".join(str(p) for p in path), value, kind)


def interval(verdict: Verdict, base: VerdictPath, kind: Kind, prefix: str = "") -> Shown:
    """``[<prefix>ci_low, <prefix>ci_high]`` of the object at ``base`` (``prefix``
    ``decision_``: the gain's decision interval), both ends shown with their paths."""
    low = number(verdict, base + (f"{prefix}ci_low",), kind)
    high = number(verdict, base + (f"{prefix}ci_high",), kind)
    return Shown(f"[{low.text}, {high.text}]", None, (low, high), "interval")


def plain(sentence: Sentence) -> str:
    """A sentence as display text."""
    return "".join(part.text if isinstance(part, Shown) else part for part in sentence)
