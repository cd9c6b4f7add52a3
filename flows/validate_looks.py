"""Sequential looks of the validate flow: after each seed batch, which methods are decided."""
from __future__ import annotations

from typing import Any

import pandas as pd


def look_at_methods(plan, table: pd.DataFrame, methods: list[str], look: int,
                    max_looks: int) -> dict[str, dict[str, Any]]:
    """Ask the group-sequential design about each undecided method at the production rung.

    Each method is looked at with its own seeds only (paired with the baseline's on the same
    seeds). Alpha is spent by O'Brien-Fleming (Lan-DeMets) over ``max_looks`` planned looks,
    alpha / 2 per direction split over every planned method x dataset (the family the final
    analysis corrects with Holm).
    """
    from stats import SequentialDesign

    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        design = SequentialDesign(max_looks=max_looks, alpha=plan.alpha, sesoi=plan.sesoi,
                                  baseline=plan.baseline, n_methods=len(plan.method_names))
        seeds = set(table.loc[table["arm"] == method, "seed"])
        subset = table[table["seed"].isin(seeds) &
                       table["arm"].isin(["weak", "ceiling", plan.baseline, method])]
        decision = design.look(subset.reset_index(drop=True), method=method, look=look)
        out[method] = {"decided": bool(decision.decided), "verdict": decision.verdict,
                       "reason": decision.reason, "boundary": float(decision.boundary),
                       "n_seeds": len(seeds)}
    return out


def seed_batches(initial: int, batch: int, maximum: int) -> list[list[int]]:
    """Seeds per look: ``initial`` first, then ``batch`` at a time up to ``maximum``.

    Linear in ``maximum`` (the plan's budget check bounds it before this runs).
    """
    initial = min(initial, maximum)
    looks = [list(range(initial))]
    looks += [list(range(start, min(start + batch, maximum)))
              for start in range(initial, maximum, batch)]
    return looks
