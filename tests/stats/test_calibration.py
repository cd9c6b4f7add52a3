"""The independent generator (stats/simulate_w2s.py) and calibration on it, with rates checked
against Monte Carlo error bounds at fixed seeds (each of these fails on the old rules).

The full table (400+ experiments per scenario) is bench/stats_calibration.py; these are the
fast versions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from stats.calibration import Scenario, run_scenario
from stats.estimates import two_way_moments
from stats.scale import wls_trend
from stats.simulate_w2s import World, conditional_gain, draw_items, draw_scores


def _mc(p: float, n: int) -> float:
    """Two Monte Carlo standard errors of a rate p over n trials."""
    return 2 * np.sqrt(p * (1 - p) / n)


def test_generator_truth_is_exact():
    """Population accuracies and the gain are exact (quadrature), not simulated: a large
    simulation agrees within its own error, and so does the conditional gain on fixed items."""
    world = World(n_items=400, gain=0.02)
    rng = np.random.default_rng(0)
    items = draw_items(world, rng, 300)
    draw = draw_scores(world, rng, 4, items)
    acc = draw.scores.mean(axis=(2, 3))  # (E, 4)
    targets = [world.accuracy["weak"], world.accuracy["ceiling"], world.accuracy["baseline"],
               world.accuracy["baseline"] + world.gain]
    for k, target in enumerate(targets):
        assert abs(acc[:, k].mean() - target) < 4 * acc[:, k].std(ddof=1) / np.sqrt(len(acc))
    gains = acc[:, 3] - acc[:, 2]
    cond = conditional_gain(world, draw)
    assert abs(cond.mean() - world.gain) < 4 * cond.std(ddof=1) / np.sqrt(len(cond))
    resid = gains - cond  # simulation noise around the exact conditional truth
    assert abs(resid.mean()) < 4 * resid.std(ddof=1) / np.sqrt(len(resid))


def test_generator_is_not_the_additive_model():
    """Floor/ceiling items are right or wrong for every arm and seed, and the method's gain
    varies by item (per-item effects), which the additive generator cannot produce."""
    world = World(n_items=300, p_floor=0.2, p_ceiling=0.1)
    rng = np.random.default_rng(1)
    items = draw_items(world, rng, 5)
    scores = draw_scores(world, rng, 6, items).scores
    floor, ceiling = items[0] == 1, items[0] == 2
    for e in range(5):
        assert not scores[e][..., floor[e]].any() and scores[e][..., ceiling[e]].all()
    assert (items[1][:, 0] != items[1][:, 1]).mean() == pytest.approx(world.item_swap, abs=0.05)


def test_truncated_seed_component_subset_covers():
    """Where the seed component is truncated, intervals cover at least 93% (minus MC error)
    on the independent generator; the old rule (example df, I - 1) covers clearly less."""
    world = World(n_items=600, item_swap=0.0, absorb_method=0.6, train_sd=0.02)
    rng = np.random.default_rng(3)
    hits, old_hits = [], []
    for _ in range(6):
        draw = draw_scores(world, rng, 6, draw_items(world, rng, 100))
        for y in draw.scores[:, 2:4].astype(float):
            c = two_way_moments(y, ("vanilla", "m")).contrast({"m": 1.0, "vanilla": -1.0})
            if not c.seed_truncated:
                continue
            truth = 0.0  # method and baseline identical in distribution: exact null
            hits.append(abs(c.estimate - truth) <= sps.t.ppf(0.975, c.df) * c.se)
            old_hits.append(abs(c.estimate - truth) <= sps.t.ppf(0.975, 599) * c.se)
    n = len(hits)
    assert n > 150
    assert np.mean(hits) >= 0.93 - _mc(0.93, n)
    assert np.mean(old_hits) < np.mean(hits) - 0.02


def test_null_and_sesoi_error_rates_through_analyze_table():
    """A small run of the calibration suite: no more wrong decisive verdicts than alpha / 2 each
    way (plus MC error), no false VANISHED at a gain of exactly the SESOI."""
    world = World(n_items=400)
    null = run_scenario(Scenario("null", "", "null", world, gains=(0.0,)), 200, seed=11)
    s = null.summary()
    bound = 0.025 + _mc(0.025, 200)
    assert s["REAL"][0] <= bound and s["HARMFUL"][0] <= bound
    assert 0.93 - _mc(0.95, 200) <= s["coverage"][0] <= 0.97 + _mc(0.95, 200)
    at_sesoi = run_scenario(Scenario("sesoi", "", "sesoi", world, gains=(0.01,)), 100, seed=12)
    assert at_sesoi.summary()["VANISHED"][0] <= 0.025 + _mc(0.025, 100)


def test_pgr_is_not_reported_when_ceiling_equals_weak():
    world = World(n_items=400)
    tally = run_scenario(Scenario("gap0", "", "gap_zero", world, gains=(0.0,)), 60, seed=13)
    assert tally.pgr_defined == 0


def test_flat_trend_is_called_shrinking_at_most_alpha_over_two():
    """3 rungs, per-cell se estimated on 4 df: the old z test with a normal reference said
    "shrinks" far more often than alpha / 2; the t reference with Satterthwaite df does not."""
    rng = np.random.default_rng(14)
    n_rep, df = 1200, 4
    se_true = np.array([0.010, 0.012, 0.015])
    new = old = 0
    for _ in range(n_rep):
        gains = rng.normal(0.0, se_true)
        se_hat = se_true * np.sqrt(rng.chisquare(df, 3) / df)
        points = pd.DataFrame({"gain": gains, "se": se_hat, "df": float(df),
                               "strong_params": [1e8, 1e9, 1e10], "dataset": "d0"})
        trend = wls_trend(points, 0.05)
        new += trend["p_decline"] < 0.025
        z = trend["slope_per_decade"] / trend["se"]
        old += sps.norm.cdf(z) < 0.05
    assert new / n_rep <= 0.025 + _mc(0.025, n_rep)
    assert old / n_rep > 0.05 + _mc(0.05, n_rep)
