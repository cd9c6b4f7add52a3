"""Closed-form two-way moments, seed-level overlap covariance, Fieller/delta, bootstrap algebra."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from stats.bootstrap import bootstrap_means
from stats.cells import Cell
from stats.estimates import seed_level_moments, two_way_moments
from stats.pgr import fieller_interval, ratio_estimate
from stats.simulate import simulate_scores

SHIFTS = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0, "m": 0.02}
ARMS = tuple(SHIFTS)


def _scalar_two_way_variance(d: np.ndarray) -> float:
    """Textbook crossed random-effects ANOVA for one S x I array of differences."""
    s, i = d.shape
    grand = d.mean()
    ms_row = i * ((d.mean(1) - grand) ** 2).sum() / (s - 1)
    ms_col = s * ((d.mean(0) - grand) ** 2).sum() / (i - 1)
    resid = d - d.mean(1, keepdims=True) - d.mean(0, keepdims=True) + grand
    ms_res = (resid ** 2).sum() / ((s - 1) * (i - 1))
    seed_part = max(ms_row - ms_res, 0.0)  # variance components truncated at zero
    example_part = max(ms_col - ms_res, 0.0)
    return (seed_part + example_part + ms_res) / (s * i)


def test_contrast_variance_equals_scalar_anova_on_differences():
    y = simulate_scores(np.random.default_rng(3), 1, 6, 150, SHIFTS, arm_seed_sd=0.03)[0]
    moments = two_way_moments(y, ARMS)
    c = moments.contrast({"m": 1, "vanilla": -1})
    d = y[3].astype(float) - y[2].astype(float)
    assert c.estimate == pytest.approx(d.mean())
    assert c.se ** 2 == pytest.approx(_scalar_two_way_variance(d))
    assert 5 <= c.df <= 6 * 150


def test_truncation_keeps_variance_positive_without_seed_effects():
    rng = np.random.default_rng(11)
    hits = 0
    for y in simulate_scores(rng, 40, 4, 80, SHIFTS, seed_sd=0.0, arm_seed_sd=0.0,
                             example_gain_sd=0.0):
        c = two_way_moments(y, ARMS).contrast({"m": 1, "vanilla": -1})
        d = y[3].astype(float) - y[2].astype(float)
        assert c.se > 0 and c.se ** 2 == pytest.approx(_scalar_two_way_variance(d))
        hits += c.se ** 2 >= d.var(ddof=1) / d.size * 0.5
    assert hits == 40


def test_single_seed_falls_back_with_a_note():
    y = simulate_scores(np.random.default_rng(4), 1, 1, 100, SHIFTS)[0]
    moments = two_way_moments(y, ARMS)
    c = moments.contrast({"m": 1, "vanilla": -1})
    d = y[3].astype(float) - y[2].astype(float)
    assert c.se == pytest.approx(d.std(ddof=1) / np.sqrt(100))
    assert "too narrow" in moments.notes[0]


def test_seed_level_covariance_uses_shared_seeds_only():
    weak = pd.Series([0.50, 0.52, 0.49, 0.55, 0.51, 0.53], index=range(6))
    method = pd.Series([0.58, 0.61, 0.57], index=[0, 1, 2])
    moments = seed_level_moments({"weak": weak, "m": method}, {"weak": 100, "m": 100})
    s_xy = np.cov(weak.loc[[0, 1, 2]], method, ddof=1)[0, 1]
    assert moments.cov[0, 1] == pytest.approx(3 * s_xy / (6 * 3))
    assert moments.cov[0, 0] == pytest.approx(weak.var(ddof=1) / 6)
    c = moments.contrast({"m": 1, "weak": -1})
    assert c.df == 2  # conservative: fewest seeds minus one


def test_fieller_matches_direct_inversion_and_delta_is_close():
    a, d, v_aa, v_dd, v_ad, df = 0.05, 0.25, 1e-4, 2e-4, 3e-5, 20
    low, high, bounded = fieller_interval(a, d, v_aa, v_dd, v_ad, df)
    assert bounded
    t = sps.t.ppf(0.975, df)
    for r in (low, high):  # the pivot equals t at both ends
        assert (a - r * d) ** 2 == pytest.approx(t ** 2 * (v_aa - 2 * r * v_ad + r * r * v_dd))
    est = ratio_estimate(a, d, v_aa, v_dd, v_ad, df)
    assert est.defined and est.estimate == pytest.approx(0.2)
    assert est.delta_low == pytest.approx(low, abs=0.02)
    assert est.delta_high == pytest.approx(high, abs=0.02)


def test_pgr_undefined_when_gap_not_clearly_positive_and_unbounded_is_flagged():
    undefined = ratio_estimate(0.01, 0.005, 1e-4, 1e-4, 0.0, 10)
    assert not undefined.defined and undefined.estimate is None
    assert "not clearly above zero" in undefined.reason
    # gap significant one-sided (z ~ 1.8) but not two-sided: Fieller set unbounded
    flagged = ratio_estimate(0.01, 0.018, 1e-4, 1e-4, 0.0, 1000)
    assert flagged.defined and not flagged.bounded and flagged.ci_low is None
    assert "unbounded" in flagged.reason


def test_bootstrap_variance_matches_its_exact_expectation():
    rng = np.random.default_rng(5)
    y = simulate_scores(rng, 1, 8, 200, SHIFTS)[0]
    moments = two_way_moments(y, ARMS)
    boot = bootstrap_means(Cell("r", "d", moments, y.astype(float), {}), 4000, rng)
    diffs = boot[:, 3] - boot[:, 2]
    expected = moments.pigeonhole_variance({"m": 1, "vanilla": -1})
    assert diffs.var(ddof=1) == pytest.approx(expected, rel=0.1)
    assert diffs.mean() == pytest.approx(moments.contrast({"m": 1, "vanilla": -1}).estimate,
                                         abs=0.003)


def test_seed_bootstrap_pairs_arms_on_the_same_drawn_seeds():
    acc = {"vanilla": pd.Series([0.5, 0.6, 0.7, 0.8]), "m": pd.Series([0.51, 0.61, 0.71, 0.81])}
    cell = Cell("r", "d", seed_level_moments(acc, {}), None, acc)
    boot = bootstrap_means(cell, 500, np.random.default_rng(0))
    assert np.allclose(boot[:, 1] - boot[:, 0], 0.01)  # pairing kept: the gain never varies
