"""Report figures (matplotlib, Agg backend) as PNG bytes, drawn only from the verdict's values.

PNG rather than inline SVG keeps axis tick labels out of the page text, so every number that is
text in report.html is one that :func:`stats.display.fmt` produced from verdict.json.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers, workers or CI

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from stats.verdict_model import Verdict  # noqa: E402

VERDICT_COLOURS = {"REAL": "#1b7837", "VANISHED": "#8c8c8c", "HARMFUL": "#b2182b",
                   "INCONCLUSIVE": "#e08214", "HOLD": "#5e3c99"}
DPI = 100


@dataclass
class Figure:
    """A rendered figure: PNG bytes, alt text and notes to print under it."""

    name: str
    png: bytes
    alt: str
    notes: list[str] = field(default_factory=list)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> float:
    return float(value) if _finite(value) else float("nan")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _datasets(verdict: Verdict) -> list[str]:
    seen: dict[str, None] = {}
    for decision in verdict.methods.values():
        for cell in decision.cells:
            seen.setdefault(cell.dataset, None)
    return list(seen)


def _rungs(verdict: Verdict) -> list[str]:
    """Rungs in order of strong-model size (unknown sizes keep their first-seen order)."""
    order: dict[str, float] = {}
    for decision in verdict.methods.values():
        for cell in decision.cells:
            size = cell.strong_params
            order.setdefault(cell.rung, float(size) if _finite(size) else math.inf)
    first_seen = {rung: i for i, rung in enumerate(order)}
    return sorted(order, key=lambda rung: (order[rung], first_seen[rung]))


def _size_label(params: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= scale:
            return f"{params / scale:.3g}{unit}"
    return f"{params:.0f}"


def forest_plot(verdict: Verdict) -> Figure:
    """Gain (method - baseline, percentage points) with its interval for every method, rung and
    dataset; a vertical line at 0 and a shaded band at +/- SESOI."""
    datasets, rungs = _datasets(verdict), _rungs(verdict)
    methods = list(verdict.methods)
    labels = [f"{method} | {rung}" for method in methods for rung in rungs]
    height = max(2.5, 0.32 * len(labels) + 1.2)
    fig_width = 4.2 * max(1, len(datasets)) + 1.5
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(fig_width, height), sharey=True,
                             squeeze=False)
    sesoi_points = _num(verdict.sesoi) * 100
    for axis, dataset in zip(axes[0], datasets or [""]):
        axis.axvline(0.0, color="black", linewidth=1)
        if _finite(sesoi_points):
            axis.axvspan(-sesoi_points, sesoi_points, color="#9ecae1", alpha=0.35,
                         label="±SESOI")
        for row, method in enumerate(methods):
            decision = verdict.methods[method]
            colour = VERDICT_COLOURS.get(decision.verdict, "#333333")
            for cell in decision.cells:
                if cell.dataset != dataset:
                    continue
                y = row * len(rungs) + rungs.index(cell.rung)
                estimate = _num(cell.gain.estimate) * 100
                low, high = _num(cell.gain.ci_low) * 100, _num(cell.gain.ci_high) * 100
                if _finite(low) and _finite(high):
                    axis.hlines(y, low, high, color=colour, linewidth=2)
                if _finite(estimate):
                    axis.plot(estimate, y, "o", color=colour, markersize=5)
        axis.set_title(dataset or "gains")
        axis.set_xlabel(f"gain vs {verdict.baseline} (percentage points)")
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="-", label=v)
               for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.25 / height))
    return Figure("forest", _png(fig),
                  "Forest plot: gain and interval per method, rung and dataset")


def pgr_plot(verdict: Verdict) -> Figure:
    """PGR of each method and of the baseline against strong-model size (log x).

    An undefined PGR (ceiling not above the weak model) is left as a gap in the line and listed
    in the figure's notes; it is never drawn as a number.
    """
    datasets, rungs = _datasets(verdict), _rungs(verdict)
    methods = list(verdict.methods)
    sizes = {}
    for decision in verdict.methods.values():
        for cell in decision.cells:
            sizes.setdefault(cell.rung, cell.strong_params)
    use_sizes = all(_finite(sizes.get(rung)) and sizes[rung] > 0 for rung in rungs)
    notes: list[str] = []
    if not use_sizes:
        notes.append("Strong-model sizes are not known for every rung: rungs are shown in "
                     "ladder order instead of on a log-size axis.")
    x_of = {rung: (float(sizes[rung]) if use_sizes else float(i)) for i, rung in enumerate(rungs)}
    fig, axes = plt.subplots(len(datasets) or 1, len(methods) or 1, squeeze=False,
                             figsize=(3.6 * max(1, len(methods)), 3.0 * max(1, len(datasets))),
                             sharey=True, sharex=True)
    undefined: list[str] = []
    for row, dataset in enumerate(datasets):
        for column, method in enumerate(methods):
            axis = axes[row][column]
            cells = {cell.rung: cell for cell in verdict.methods[method].cells
                     if cell.dataset == dataset}
            series = (("pgr", method, "#2166ac", 0.97),
                      ("pgr_baseline", verdict.baseline, "#888888", 1.03))
            for key, label, colour, offset in series:
                xs, ys, lows, highs = [], [], [], []
                for rung in rungs:
                    pgr = getattr(cells[rung], key) if rung in cells else None
                    defined = pgr is not None and pgr.defined and _finite(pgr.estimate)
                    if rung in cells and not defined:
                        undefined.append(f"{label if key == 'pgr' else f'baseline {label}'} at "
                                         f"rung {rung}, dataset {dataset}")
                        if key == "pgr":
                            axis.annotate("PGR\nundefined", (x_of[rung], 0.0), ha="center",
                                          va="bottom", fontsize=7, color="#666666")
                    x = x_of[rung] * offset if use_sizes else x_of[rung] + (offset - 1) * 3
                    xs.append(x)
                    ys.append(_num(pgr.estimate) if defined else np.nan)
                    lows.append(_num(pgr.ci_low) if defined else np.nan)
                    highs.append(_num(pgr.ci_high) if defined else np.nan)
                ys_arr = np.array(ys)
                err = np.vstack([ys_arr - np.array(lows), np.array(highs) - ys_arr])
                err = np.where(np.isfinite(err), err, 0.0)
                axis.errorbar(xs, ys_arr, yerr=err, marker="o", color=colour, label=label,
                              capsize=3, linewidth=1.5)
            if use_sizes:
                axis.set_xscale("log")
                axis.set_xticks([x_of[rung] for rung in rungs],
                                [f"{rung}\n{_size_label(x_of[rung])}" for rung in rungs])
                axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                axis.set_xlim(min(x_of.values()) / 1.6, max(x_of.values()) * 1.6)
                if row == len(datasets) - 1:
                    axis.set_xlabel("strong-model parameters (log)")
            else:
                axis.set_xticks(range(len(rungs)), rungs)
                axis.set_xlim(-0.5, len(rungs) - 0.5)
                if row == len(datasets) - 1:
                    axis.set_xlabel("rung")
            axis.axhline(0.0, color="black", linewidth=0.8)
            axis.set_title(f"{method} | {dataset}", fontsize=9)
            axis.grid(alpha=0.3)
            if column == 0:
                axis.set_ylabel("PGR")
            axis.legend(fontsize=7, loc="best")
    if undefined:
        notes.append("PGR undefined (ceiling not above the weak model), shown as a gap: "
                     + "; ".join(dict.fromkeys(undefined)) + ".")
    return Figure("pgr", _png(fig), "PGR of method and baseline against strong-model size", notes)


def seeds_plot(verdict: Verdict) -> Figure:
    """Seeds used per method and rung (the sequential design's stopping points)."""
    rungs, methods, datasets = _rungs(verdict), list(verdict.methods), _datasets(verdict)
    groups = [(rung, dataset) for rung in rungs for dataset in datasets]
    fig_width = max(4.0, 1.1 * len(methods) * max(1, len(groups)) ** 0.5 + 2)
    fig, axis = plt.subplots(figsize=(fig_width, 3.0))
    width = 0.8 / max(1, len(groups))
    for g, (rung, dataset) in enumerate(groups):
        counts = []
        for method in methods:
            seeds = [cell.n_seeds for cell in verdict.methods[method].cells
                     if cell.rung == rung and cell.dataset == dataset]
            counts.append(_num(seeds[0]) if seeds else np.nan)
        positions = np.arange(len(methods)) + (g - (len(groups) - 1) / 2) * width
        label = rung if len(datasets) == 1 else f"{rung} | {dataset}"
        axis.bar(positions, counts, width=width, label=label)
    axis.set_xticks(range(len(methods)), methods)
    axis.set_ylabel("seeds used")
    axis.yaxis.get_major_locator().set_params(integer=True)
    axis.legend(fontsize=7, ncol=min(3, max(1, len(groups))), loc="upper left",
                bbox_to_anchor=(1.0, 1.0))
    return Figure("seeds", _png(fig), "Seeds used per method and rung")


def all_figures(verdict: Verdict) -> list[Figure]:
    """The report's figures in display order."""
    return [forest_plot(verdict), pgr_plot(verdict), seeds_plot(verdict)]
