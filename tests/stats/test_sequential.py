"""Group-sequential seeding: boundaries, error rates of ``look()`` itself by simulation, the arms a
look analyses, and the multiplicity family it shares with ``analyze_table``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats.analyze import analyze_table
from stats.errors import StatsInputError
from stats.sequential import SequentialDesign, boundaries
from stats.simulate import scores_to_table, simulate_scores
from stats.table import check_table

ALPHA, SESOI = 0.05, 0.01


def test_obrien_fleming_boundaries_match_published_values():
    # Lan-DeMets O'Brien-Fleming, one-sided 0.025, 5 equally spaced looks (Jennison & Turnbull
    # 2000, table 7.6; gsDesign sfLDOF): 4.877, 3.357, 2.680, 2.290, 2.031
    got = boundaries(0.025, [0.2, 0.4, 0.6, 0.8, 1.0])
    assert got == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    assert boundaries(0.05, [0.5, 1.0], "bonferroni") == pytest.approx([1.96, 1.96], abs=1e-3)


def _aggregate_runs(rng: np.random.Generator, n_exp: int, n_seeds: int, effect: float,
                    diff_sd: float) -> np.ndarray:
    """Per-seed accuracies (n_exp, 4 arms, n_seeds): weak, ceiling, vanilla, m."""
    seed = rng.normal(0.0, 0.015, size=(n_exp, 1, n_seeds))
    base = np.array([0.53, 0.72, 0.58, 0.58 + effect])[None, :, None]
    own = rng.normal(0.0, diff_sd / np.sqrt(2), size=(n_exp, 4, n_seeds))
    return base + seed + own


ARMS = ("weak", "ceiling", "vanilla", "m")


def _table(acc: np.ndarray, n_seeds: int) -> pd.DataFrame:
    """The first ``n_seeds`` seeds as a checked aggregate table (checked once, then built the
    same way directly: ``check_table`` would dominate the run time)."""
    table = pd.DataFrame({
        "rung": "big", "dataset": "d0", "arm": np.repeat(ARMS, n_seeds),
        "seed": np.tile(np.arange(n_seeds, dtype=np.int64), len(ARMS)),
        "accuracy": acc[:, :n_seeds].ravel(), "n": 1000.0, "weak_model": None,
        "strong_model": None, "weak_params": None, "strong_params": 10 ** 9})
    table.attrs["kind"] = "aggregate"
    return table


def test_the_fast_table_is_what_check_table_returns():
    acc = _aggregate_runs(np.random.default_rng(0), 1, 3, 0.0, 0.02)[0]
    fast = _table(acc, 3)
    checked = check_table(fast.drop(columns=["weak_model", "strong_model", "weak_params"]))
    pd.testing.assert_frame_equal(fast[checked.columns], checked, check_dtype=False)


def _run_design(effect: float, n_exp: int, seed: int, per_look: int = 5, looks: int = 2,
                diff_sd: float = 0.02) -> dict[str, float]:
    """Verdict rates of ``SequentialDesign.look`` over ``n_exp`` simulated campaigns."""
    rng = np.random.default_rng(seed)
    runs = _aggregate_runs(rng, n_exp, per_look * looks, effect, diff_sd)
    counts = {"REAL": 0, "HARMFUL": 0, "VANISHED": 0, "INCONCLUSIVE": 0}
    seeds_used = []
    for acc in runs:
        design = SequentialDesign(max_looks=looks, alpha=ALPHA, sesoi=SESOI)
        for k in range(1, looks + 1):
            decision = design.look(_table(acc, k * per_look), method="m", look=k)
            if decision.decided:
                counts[decision.verdict] += 1
                seeds_used.append(k * per_look)
                break
    return {**{v: c / n_exp for v, c in counts.items()}, "mean_seeds": float(np.mean(seeds_used))}


def test_look_error_rates_hold_under_the_null_and_at_the_sesoi():
    """Each direction is one-sided at alpha / 2 = 0.025 over the looks: a false REAL or HARMFUL
    above 0.025 + 2 MC errors fails (the old design, one-sided at alpha, gave about 0.05)."""
    n_exp = 300
    mc = 2 * np.sqrt(0.025 * 0.975 / n_exp)
    null = _run_design(0.0, n_exp, seed=1)
    assert null["REAL"] <= 0.025 + mc
    assert null["HARMFUL"] <= 0.025 + mc
    at_sesoi = _run_design(SESOI, n_exp, seed=2)
    assert at_sesoi["VANISHED"] <= 0.025 + mc
    large = _run_design(0.06, 100, seed=3)
    assert large["REAL"] >= 0.9 and large["mean_seeds"] < 8  # stops early on a large gain


def test_a_look_analyses_only_the_method_and_the_baseline_on_the_methods_seeds():
    """Another method that stopped early has fewer seeds; the look at ``m`` must keep the
    two-way design and give the same numbers as a table with only ``m`` and the baseline."""
    rng = np.random.default_rng(4)
    shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0, "m": 0.01, "early": 0.05}
    y = simulate_scores(rng, 1, 6, 300, shifts, arm_seed_sd=0.01)[0]
    table = scores_to_table(y, list(shifts), rung="big", strong_params=10 ** 9)
    stopped = (table["arm"] == "early") & (table["seed"] >= 3)
    table = table[~stopped].reset_index(drop=True)
    design = SequentialDesign(max_looks=3, alpha=ALPHA, sesoi=SESOI, n_methods=2)
    decision = design.look(table, method="m", look=2)
    cell = decision.cells["d0"]
    assert cell["design"] == "two_way" and cell["n_seeds"] == 6
    alone = analyze_table(table[table["arm"] != "early"],
                          n_boot=0).as_json_dict()["methods"]["m"]["cells"][0]
    assert cell["se"] == pytest.approx(alone["gain"]["se"])
    assert cell["df"] == pytest.approx(alone["gain"]["df"])


def test_the_family_is_every_method_times_every_dataset_as_in_analyze():
    rng = np.random.default_rng(5)
    shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0, "m": 0.0}
    parts = [scores_to_table(simulate_scores(rng, 1, 4, 100, shifts)[0], list(shifts), rung="big",
                             dataset=ds, strong_params=10 ** 9) for ds in ("a", "b")]
    table = pd.concat(parts, ignore_index=True)
    design = SequentialDesign(max_looks=2, alpha=ALPHA, sesoi=SESOI, n_methods=3)
    decision = design.look(table, method="m", look=2)
    expected = boundaries(ALPHA / 2 / 6, [0.5, 1.0])[1]  # 3 methods x 2 datasets
    assert decision.boundary == pytest.approx(expected)
    assert "family of 6" in decision.reason
    verdict = analyze_table(table, n_boot=0).as_json_dict()
    assert verdict["methods"]["m"]["cells"][0]["gain"]["family_size"] == 2  # one method here


def test_look_api_stops_early_for_a_large_gain_and_continues_otherwise():
    rng = np.random.default_rng(1)

    def results(effect: float, n_seeds: int) -> pd.DataFrame:
        shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0, "m": effect}
        y = simulate_scores(rng, 1, n_seeds, 400, shifts, arm_seed_sd=0.01)[0]
        return scores_to_table(y, list(shifts), rung="big", strong_params=10**9)

    design = SequentialDesign(max_looks=3, alpha=ALPHA, sesoi=SESOI)
    decision = design.look(results(0.15, 8), method="m")
    assert decision.decided and decision.verdict == "REAL" and decision.look == 1
    undecided = SequentialDesign(max_looks=3, alpha=ALPHA, sesoi=SESOI)
    first = undecided.look(results(0.0, 3), method="m")
    assert not first.decided and first.verdict is None and "next batch" in first.reason


def test_design_rejects_bad_settings():
    with pytest.raises(StatsInputError, match="max_looks"):
        SequentialDesign(0)
    with pytest.raises(StatsInputError, match="spending"):
        SequentialDesign(3, spending="magic")
    with pytest.raises(StatsInputError, match="n_methods"):
        SequentialDesign(3, n_methods=0)
    acc = _aggregate_runs(np.random.default_rng(2), 1, 2, 0.0, 0.02)[0]
    with pytest.raises(StatsInputError, match="look 5 outside"):
        SequentialDesign(3).look(_table(acc, 2), "m", look=5)
