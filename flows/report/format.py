"""The one formatting function for every number shown in a report, summary or artifact.

Reports never compute numbers: they format verdict.json values through :func:`fmt`, so a test
can re-format the source value and compare it with the rendered text.
"""
from __future__ import annotations

import math
from typing import Any, Literal

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
        return f"{value:g}"
    if kind == "count":
        return f"{int(value):d}"
    raise ValueError(f"unknown number kind {kind!r}")


def fmt_interval(low: Any, high: Any, kind: Kind) -> str:
    """``[low, high]`` with both ends through :func:`fmt`."""
    return f"[{fmt(low, kind)}, {fmt(high, kind)}]"
