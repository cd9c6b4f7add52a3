"""Turn the rows of one (rung, dataset) cell into arm moments, choosing the design honestly.

Two questions can be asked of a per-example table (the *estimand*):

* ``population`` (the default): the gain on the task, test items being a sample of its items.
  Per-example rows whose arms all share the same seeds and the same test examples get the
  two-way (seed x example) analysis, whose interval includes the item-to-item spread of the
  method's effect (Miller 2024, sec. 2-3).
* ``test_set``: the gain on these test items, as most W2S papers report it. The per-seed
  accuracies carry all there is to know about it (item effects common to the seeds cancel in
  each seed's paired difference), so the cell gets the seed-level analysis of those accuracies:
  exactly what aggregate rows of the same runs on the same seeds give (a single-seed arm's
  variance is unknown here, not the binomial one of sampling items).

Anything else (aggregate rows, unequal seeds, differing example sets) falls back to the
seed-level analysis with a note that says why; that analysis is conditional on the test set
whatever was asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from stats.errors import StatsInputError
from stats.estimates import CellMoments, seed_level_moments, two_way_moments
from stats.table import AGGREGATE, to_aggregate

POPULATION = "population"
TEST_SET = "test_set"
ESTIMANDS = (POPULATION, TEST_SET)


def check_estimand(estimand: str) -> str:
    """``estimand`` if it is one of ``ESTIMANDS``; else ``StatsInputError`` (field estimand)."""
    if estimand not in ESTIMANDS:
        raise StatsInputError(f"got {estimand!r}, expected one of {', '.join(ESTIMANDS)}",
                              field="estimand")
    return estimand


@dataclass
class Cell:
    """One (rung, dataset) cell: its moments, and the balanced score array when there is one.

    Attributes:
        rung, dataset: the cell's keys.
        moments: arm means and covariance.
        scores: (A, S, I) 0/1 array for the two-way bootstrap, or None.
        seed_acc: arm -> per-seed accuracy (always available; used by the seed bootstrap).
        seeds, example_ids: the balanced design's seeds and examples (two-way only).
    """

    rung: str
    dataset: str
    moments: CellMoments
    scores: np.ndarray | None
    seed_acc: dict[str, pd.Series]
    seeds: list[int] | None = None
    example_ids: np.ndarray | None = None


def _balanced_scores(rows: pd.DataFrame,
                     arms: list[str]) -> tuple[np.ndarray, list, np.ndarray] | None:
    """(A, S, I) scores when every arm has the same seeds and the same examples in each seed.

    Keys are unique (``check_table``), so the layout is complete exactly when the number of rows
    is arms x seeds x examples.
    """
    seed_code, seeds = pd.factorize(rows["seed"], sort=True)
    ex_code, examples = pd.factorize(rows["example_id"], sort=True)
    examples = np.asarray(examples, dtype=object)
    arm_code = pd.Categorical(rows["arm"], categories=arms).codes
    if len(examples) < 2 or len(rows) != len(arms) * len(seeds) * len(examples):
        return None
    scores = np.empty((len(arms), len(seeds), len(examples)))
    scores[arm_code, seed_code, ex_code] = rows["correct"].to_numpy(dtype=float)
    return scores, [int(s) for s in seeds], examples


def build_cell(rows: pd.DataFrame, kind: str, rung: str, dataset: str,
               estimand: str = POPULATION) -> Cell:
    """Build a ``Cell`` from the checked rows of one (rung, dataset).

    Args:
        rows: rows of the cell (per-example or aggregate form, as from ``check_table``).
        kind: ``"examples"`` or ``"aggregate"``.
        rung, dataset: the cell's keys.
        estimand: ``population`` or ``test_set`` (module docstring).
    Returns:
        A ``Cell`` whose moments use the two-way design when the population is asked about and
        the layout allows it, else the seed level.
    """
    check_estimand(estimand)
    arms = sorted((str(a) for a in pd.unique(rows["arm"])),
                  key=lambda a: (a not in ("weak", "ceiling"), a))
    balanced = _balanced_scores(rows, arms) if kind != AGGREGATE else None
    if balanced is not None:
        scores, seeds, examples = balanced
        per_seed = scores.mean(axis=2)
        seed_acc = {a: pd.Series(per_seed[k], index=seeds) for k, a in enumerate(arms)}
        if estimand == POPULATION:
            moments = two_way_moments(scores, tuple(arms))
            return Cell(rung, dataset, moments, scores, seed_acc, seeds, examples)
        moments = seed_level_moments(seed_acc, dict.fromkeys(arms, float(len(examples))),
                                     binomial_fallback=False)
        return Cell(rung, dataset, moments, None, seed_acc)
    agg = to_aggregate(rows)
    seed_acc = {a: agg.loc[agg["arm"] == a].set_index("seed")["accuracy"].sort_index()
                for a in arms}
    n_of = {a: (float(agg.loc[agg["arm"] == a, "n"].dropna().mean())
                if agg.loc[agg["arm"] == a, "n"].notna().any() else None) for a in arms}
    if kind != AGGREGATE:
        moments = seed_level_moments(seed_acc, n_of, binomial_fallback=estimand == POPULATION)
        moments.notes.insert(0, "arms do not share the same seeds and test examples, so the "
                                "analysis is at the seed level (paired only on shared seeds; "
                                "wider intervals" + (")" if estimand == TEST_SET else
                                "; they answer for the test examples, not the population of "
                                "items)"))
        return Cell(rung, dataset, moments, None, seed_acc)
    moments = seed_level_moments(seed_acc, n_of)
    if note := _seed_mismatch_note(seed_acc):
        moments.notes.insert(0, note)
    return Cell(rung, dataset, moments, None, seed_acc)


def _seed_mismatch_note(seed_acc: dict[str, pd.Series]) -> str | None:
    """A note when the arms of a cell did not all run the same seeds, naming the pairs of arms
    that share fewer than two (compared unpaired: their covariance term is zero)."""
    seeds = {arm: set(acc.index) for arm, acc in seed_acc.items()}
    if len({frozenset(s) for s in seeds.values()}) <= 1:
        return None
    note = "arms do not all run the same seeds; arm means use all their seeds and pair only on " \
           "shared seeds"
    # seed_level_moments pairs two arms only on two or more shared seeds.
    apart = [f"{a} and {b}" for a, b in combinations(seed_acc, 2) if len(seeds[a] & seeds[b]) < 2]
    if apart:
        shown = "; ".join(apart[:3]) + (f"; {len(apart) - 3} more pairs" if len(apart) > 3 else "")
        note += f" ({shown} share fewer than two seeds: compared unpaired)"
    return note
