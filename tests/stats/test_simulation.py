"""Known-truth simulations: interval coverage, false REAL rate under the null, power at the SESOI.

Seeds and examples are both random effects (see stats/simulate.py).  Monte Carlo error with 1000
experiments: sd of a 95% coverage is 0.7 points; of a 5% rate 0.7 points; of 80% power 1.3 points.
"""
from __future__ import annotations

import numpy as np
import pytest

from stats.bootstrap import bootstrap_means
from stats.cells import Cell
from stats.estimates import two_way_moments
from stats.pgr import ratio_estimate, ratio_inputs
from stats.power import VarianceComponents, components, seeds_needed
from stats.simulate import simulate_scores
from stats.tests_and_verdicts import HARM, SUPERIOR, classify, gain_tests

N_EXPERIMENTS = 1000
ALPHA = 0.05
GAIN = {"m": 1.0, "vanilla": -1.0}


# Realistic noise: seed-to-seed sd of a trained arm's accuracy ~1.5 points (the sandbox's
# vanilla_w2s runs vary by ~2 points), per-example gains that differ a lot between examples.
NOISE = {"seed_sd": 0.02, "arm_seed_sd": 0.015, "example_gain_sd": 0.1, "shared": 0.5}


def _experiments(seed: int, n: int, n_seeds: int, n_examples: int, shifts: dict):
    rng = np.random.default_rng(seed)
    chunk = 250
    for start in range(0, n, chunk):
        yield from simulate_scores(rng, min(chunk, n - start), n_seeds, n_examples, shifts,
                                   **NOISE)


@pytest.mark.parametrize("true_gain", [0.0, 0.03])
def test_gain_and_pgr_intervals_cover_95_percent(true_gain):
    """On this additive generator the seed component is truncated in ~38% of experiments; the
    untruncated subset is selected for a large seed mean square and over-covers under any rule
    (99%), so with the truncated subset held at >= 93% both the gain and the PGR (Fieller,
    whose pivot contrast truncates too) intervals are conservative here: 97.5-98.5% measured
    (docs/stats.md).  The lower bound is the validity check; the upper one catches a blow-up."""
    shifts = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0, "m": true_gain}
    arms = tuple(shifts)
    true_pgr = (true_gain + 0.10) / 0.25
    gain_hits, truncated_hits, pgr_hits = [], [], 0
    for y in _experiments(1 + int(100 * true_gain), N_EXPERIMENTS, 5, 300, shifts):
        moments = two_way_moments(y, arms)
        c = moments.contrast(GAIN)
        lo, hi = c.ci(0.95)
        gain_hits.append(lo <= true_gain <= hi)
        if c.seed_truncated:
            truncated_hits.append(gain_hits[-1])
        parts = ratio_inputs(moments, {"m": 1, "weak": -1}, {"ceiling": 1, "weak": -1})
        pgr = ratio_estimate(parts.a, parts.d, parts.v_aa, parts.v_dd, parts.v_ad, parts.df, ALPHA,
                             df_gap=parts.df_gap, min_gap=0.01)
        pgr_hits += bool(pgr.defined and pgr.bounded and pgr.ci_low <= true_pgr <= pgr.ci_high)
    n_trunc = len(truncated_hits)
    assert n_trunc > 200
    assert np.mean(truncated_hits) >= 0.93 - 2 * np.sqrt(0.93 * 0.07 / n_trunc)
    assert 0.93 <= np.mean(gain_hits) <= 0.99
    assert 0.93 <= pgr_hits / N_EXPERIMENTS <= 0.99


def test_real_and_harmful_together_are_declared_under_the_null_at_most_alpha():
    """Each direction at alpha / 2: REAL and HARMFUL each at most 2.5% (+ MC error)."""
    shifts = {"vanilla": 0.0, "m": 0.0}
    real = harmful = 0
    for y in _experiments(7, N_EXPERIMENTS, 5, 300, shifts):
        c = two_way_moments(y, tuple(shifts)).contrast(GAIN)
        t = gain_tests(c, 0.01)
        outcome = classify(t.p_superiority, t.p_harm, t.p_equivalence, ALPHA)
        real += outcome == SUPERIOR
        harmful += outcome == HARM
    bound = ALPHA / 2 + 2 * np.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / N_EXPERIMENTS)
    assert real / N_EXPERIMENTS <= bound and harmful / N_EXPERIMENTS <= bound


def test_power_at_sesoi_reaches_80_percent_with_the_seeds_the_power_function_asks_for():
    sesoi, n_examples = 0.025, 500
    # true components of the gain: seed 2 * arm_seed_sd^2, example example_gain_sd^2; the
    # residual (Bernoulli) part is estimated on a large pilot, where it is known precisely
    pilot_shifts = {"vanilla": 0.0, "m": 0.0}
    pilot = simulate_scores(np.random.default_rng(99), 1, 40, n_examples, pilot_shifts,
                            **NOISE)[0]
    residual = components(two_way_moments(pilot, tuple(pilot_shifts)), GAIN).residual
    comp = VarianceComponents(2 * NOISE["arm_seed_sd"] ** 2, NOISE["example_gain_sd"] ** 2,
                              residual, 40, n_examples, True)
    n_seeds = seeds_needed(comp, sesoi, ALPHA, 0.8, n_examples)
    assert n_seeds is not None and 3 <= n_seeds <= 30
    shifts = {"vanilla": 0.0, "m": sesoi}
    wins = 0
    for y in _experiments(17, N_EXPERIMENTS, n_seeds, n_examples, shifts):
        t = gain_tests(two_way_moments(y, tuple(shifts)).contrast(GAIN), sesoi)
        wins += t.p_superiority < ALPHA
    assert wins / N_EXPERIMENTS >= 0.80 - 2 * np.sqrt(0.16 / N_EXPERIMENTS)


def test_two_way_bootstrap_agrees_with_closed_form_on_fewer_experiments():
    shifts = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0, "m": 0.02}
    arms = tuple(shifts)
    rng = np.random.default_rng(23)
    ratios, centre_gaps = [], []
    for y in _experiments(29, 60, 10, 200, shifts):
        moments = two_way_moments(y, arms)
        boot = bootstrap_means(Cell("r", "d", moments, y.astype(float), {}), 500, rng)
        diffs = boot[:, 3] - boot[:, 2]
        ratios.append(diffs.var(ddof=1) / moments.pigeonhole_variance(GAIN))
        c = moments.contrast(GAIN)
        centre_gaps.append(abs(np.median(diffs) - c.estimate) / c.se)
    assert 0.9 <= np.mean(ratios) <= 1.1  # bootstrap and closed form describe the same data
    assert np.mean(centre_gaps) < 0.2
