"""Group-sequential seeding: boundaries, error rates by simulation, fewer seeds, and the look API."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats.errors import StatsInputError
from stats.power import VarianceComponents, seeds_needed
from stats.sequential import SequentialDesign, boundaries, simulate_design
from stats.simulate import scores_to_table, simulate_scores

N_SIM = 20_000
MC = 2 * np.sqrt(0.05 * 0.95 / N_SIM)


def test_obrien_fleming_boundaries_match_published_values():
    # Lan-DeMets O'Brien-Fleming, one-sided 0.025, 5 equally spaced looks (Jennison & Turnbull
    # 2000, table 7.6; gsDesign sfLDOF): 4.877, 3.357, 2.680, 2.290, 2.031
    got = boundaries(0.025, [0.2, 0.4, 0.6, 0.8, 1.0])
    assert got == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    assert boundaries(0.05, [0.5, 1.0], "bonferroni") == pytest.approx([1.96, 1.96], abs=1e-3)


def test_error_rates_hold_and_sequential_uses_fewer_seeds_than_fixed():
    seed_sd, sesoi, alpha = 0.02, 0.01, 0.05
    fixed = seeds_needed(VarianceComponents(seed_sd ** 2, 0, 0, 10, None, False), sesoi, alpha)
    design = SequentialDesign(max_looks=4, alpha=alpha, sesoi=sesoi)
    per_look = int(np.ceil(1.1 * fixed / 4))
    rng = np.random.default_rng(0)
    null = simulate_design(design, per_look, 0.0, seed_sd, N_SIM, rng)
    at_sesoi = simulate_design(design, per_look, sesoi, seed_sd, N_SIM, rng)
    fixed_power = simulate_design(SequentialDesign(1, alpha, sesoi), fixed, sesoi, seed_sd, N_SIM,
                                  rng)["p_real"]
    assert null["p_real"] <= alpha + MC          # false REAL
    assert null["p_harmful"] <= alpha + MC       # false HARMFUL
    assert at_sesoi["p_vanished"] <= alpha + MC  # false VANISHED at the equivalence margin
    assert at_sesoi["p_real"] >= 0.8 and at_sesoi["p_real"] >= fixed_power - 0.01
    assert at_sesoi["mean_seeds"] / fixed < 1.0


def _results(effect: float, n_seeds: int, rng) -> pd.DataFrame:
    shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0, "m": effect}
    y = simulate_scores(rng, 1, n_seeds, 400, shifts, arm_seed_sd=0.01)[0]
    return scores_to_table(y, list(shifts), rung="big", strong_params=10**9)


def test_look_api_stops_early_for_a_large_gain_and_continues_otherwise():
    rng = np.random.default_rng(1)
    design = SequentialDesign(max_looks=3, alpha=0.05, sesoi=0.01)
    decision = design.look(_results(0.15, 8, rng), method="m")
    assert decision.decided and decision.verdict == "REAL" and decision.look == 1
    undecided = SequentialDesign(max_looks=3, alpha=0.05, sesoi=0.01)
    first = undecided.look(_results(0.0, 3, rng), method="m")
    assert not first.decided and first.verdict is None and "next batch" in first.reason
    undecided.look(_results(0.0, 6, rng), method="m")
    last = undecided.look(_results(0.0, 9, rng), method="m")
    assert last.decided and last.look == 3 and last.verdict in ("VANISHED", "INCONCLUSIVE")


def test_design_rejects_bad_settings():
    with pytest.raises(StatsInputError, match="max_looks"):
        SequentialDesign(0)
    with pytest.raises(StatsInputError, match="spending"):
        SequentialDesign(3, spending="magic")
    with pytest.raises(StatsInputError, match="look 5 outside"):
        SequentialDesign(3).look(_results(0.0, 2, np.random.default_rng(2)), "m", look=5)
