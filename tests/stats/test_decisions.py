"""Decisions and the displayed interval are one procedure; power statements use the decision's
level; the verdict carries the rule in words."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats.analyze import analyze_table
from stats.power import mde, power_at
from stats.simulate import scores_to_table, simulate_scores
from stats.verdict import summary_markdown

SHIFTS = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0}


def _one_cell_tables(n: int, seed: int) -> list[pd.DataFrame]:
    """Single-method, single-dataset tables with gains spread around the decision boundaries."""
    rng = np.random.default_rng(seed)
    tables = []
    for _ in range(n):
        gain = rng.choice([-0.04, -0.02, 0.0, 0.0, 0.005, 0.02, 0.04])
        y = simulate_scores(rng, 1, 6, 600, {**SHIFTS, "m": gain}, arm_seed_sd=0.005,
                            example_gain_sd=0.02)[0]
        tables.append(scores_to_table(y, list(SHIFTS) + ["m"], strong_params=10 ** 9))
    return tables


def test_verdicts_are_read_off_the_displayed_interval():
    """With one comparison (no multiplicity) REAL <=> interval above 0, HARMFUL <=> below 0,
    VANISHED <=> inside +/- SESOI and not above 0; each direction is one-sided at alpha / 2."""
    seen = set()
    for table in _one_cell_tables(60, seed=0):
        verdict = analyze_table(table, n_boot=0, sesoi=0.03).as_json_dict()
        entry = verdict["methods"]["m"]
        g = entry["cells"][0]["gain"]
        above, below = g["ci_low"] > 0, g["ci_high"] < 0
        inside = -0.03 < g["ci_low"] and g["ci_high"] < 0.03
        expected = ("REAL" if above else "HARMFUL" if below else "VANISHED" if inside
                    else "INCONCLUSIVE")
        assert entry["verdict"] == expected, g
        assert (g["p_adjusted"] < 0.025) == above
        seen.add(expected)
    assert seen == {"REAL", "HARMFUL", "VANISHED", "INCONCLUSIVE"}


def test_real_never_sits_beside_an_interval_that_crosses_zero_after_holm():
    rng = np.random.default_rng(1)
    shifts = {**SHIFTS, "a": 0.02, "b": 0.01, "c": 0.0}
    for _ in range(8):
        y = simulate_scores(rng, 1, 5, 400, shifts, arm_seed_sd=0.01)[0]
        verdict = analyze_table(scores_to_table(y, list(shifts), strong_params=10 ** 9),
                                n_boot=0).as_json_dict()
        for entry in verdict["methods"].values():
            g = entry["cells"][0]["gain"]
            if entry["verdict"] == "REAL":
                assert g["ci_low"] > 0 and g["p_adjusted"] < 0.025
            if entry["verdict"] == "HARMFUL":
                assert g["ci_high"] < 0


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "bh"])
def test_every_decision_is_read_off_the_decision_interval_under_multiplicity(correction):
    """New-user review 2026-12-06: after Holm a 95% interval below 0 (em_posterior's
    [-1.78, -0.02]) sat beside INCONCLUSIVE. The decision interval is the one the decisions
    read: above 0 <=> the superiority test is decided, below 0 <=> the harm test, in every
    cell of every family (confirmatory and exploratory); with one comparison it is the 95% one."""
    rng = np.random.default_rng(5)
    shifts = {**SHIFTS, "a": 0.02, "b": -0.015, "c": 0.008, "d": 0.0}
    checked = set()
    for _ in range(12):
        y = simulate_scores(rng, 1, 5, 500, shifts, arm_seed_sd=0.008)[0]
        verdict = analyze_table(scores_to_table(y, list(shifts), strong_params=10 ** 9),
                                n_boot=0, correction=correction).as_json_dict()
        for entry in verdict["methods"].values():
            for cell in entry["cells"]:
                g = cell["gain"]
                assert (g["decision_ci_low"] > 0) == (g["p_adjusted"] < 0.025), g
                assert (g["decision_ci_high"] < 0) == (g["p_harm_adjusted"] < 0.025), g
                assert g["decision_ci_low"] <= g["ci_low"] + 1e-12
                assert g["decision_ci_high"] >= g["ci_high"] - 1e-12
                checked.add((g["ci_low"] > 0 or g["ci_high"] < 0,
                             g["p_adjusted"] < 0.025 or g["p_harm_adjusted"] < 0.025))
    assert (True, False) in checked  # a 95% interval excluding 0 in a cell left undecided
    for table in _one_cell_tables(10, seed=4):
        g = analyze_table(table, n_boot=0).as_json_dict()["methods"]["m"]["cells"][0]["gain"]
        assert g["decision_ci_low"] == pytest.approx(g["ci_low"], abs=1e-12)
        assert g["decision_ci_high"] == pytest.approx(g["ci_high"], abs=1e-12)


def test_mde_and_seeds_needed_use_the_holm_level_of_the_family():
    rng = np.random.default_rng(2)
    shifts = {**SHIFTS, "a": 0.0, "b": 0.0, "c": 0.0}
    parts = [scores_to_table(simulate_scores(rng, 1, 4, 300, shifts)[0], list(shifts),
                             dataset=ds, strong_params=10 ** 9) for ds in ("d0", "d1")]
    verdict = analyze_table(pd.concat(parts, ignore_index=True), n_boot=0,
                            sesoi=0.03).as_json_dict()
    single = analyze_table(parts[0][parts[0]["arm"].isin(list(SHIFTS) + ["a"])], n_boot=0,
                           sesoi=0.03).as_json_dict()
    cell = verdict["methods"]["a"]["cells"][0]
    g = cell["gain"]
    assert g["family_size"] == 6 and g["decision_level"] == pytest.approx(0.05 / 2 / 6)
    assert cell["mde80"] == pytest.approx(mde(g["se"], g["df"], 0.05 / 12))
    # at the MDE the one-sided test at the decision level has about 80% power
    assert power_at(cell["mde80"], g["se"], g["df"], 0.05 / 12) == pytest.approx(0.8, abs=1e-3)
    lone = single["methods"]["a"]["cells"][0]
    assert lone["gain"]["decision_level"] == pytest.approx(0.025)
    assert cell["seeds_needed"] is not None and lone["seeds_needed"] is not None
    assert cell["seeds_needed"] > lone["seeds_needed"]
    assert cell["mde80"] > lone["mde80"] * (cell["gain"]["se"] / lone["gain"]["se"])


def test_the_rule_is_stated_in_the_verdict_and_the_summary():
    verdict = analyze_table(_one_cell_tables(1, seed=3)[0], n_boot=0)
    assert verdict.alpha_per_direction == pytest.approx(0.025)
    assert "one-sided at alpha/2 = 0.025" in verdict.decision_rule
    assert verdict.decision_rule in summary_markdown(verdict)


def test_the_decision_interval_agrees_with_the_decision_at_ties_and_without_df():
    """helper-47: at p_adjusted within a few ulps of alpha/2 ``t.ppf`` and ``t.sf`` disagreed
    (a superior cell's interval started at -4e-17, which the gate refused); a single-seed cell
    (df infinite, written as null) got no interval."""
    from scipy import stats as sps

    from stats.tests_and_verdicts import decision_interval

    se, df = 0.01, 7.0
    for step in range(-50, 50):  # estimates whose adjusted p lies within ulps of alpha/2
        for family in (1, 2, 3):
            estimate = float(sps.t.isf(0.025 * (1 + step * 1e-16) / family, df) * se)
            p = float(sps.t.sf(estimate / se, df))
            p_adj = min(p * family, 1.0)
            low, _ = decision_interval(estimate, se, df, p, p_adj, 1 - p, 1.0, 0.05)
            assert (low > 0) == (p_adj < 0.025), (step, family, p_adj, low)
            _, high = decision_interval(-estimate, se, df, 1 - p, 1.0, p, p_adj, 0.05)
            assert (high < 0) == (p_adj < 0.025), (step, family, p_adj, high)
    low, high = decision_interval(0.05, 0.01, None, 1e-7, 3e-7, 1 - 1e-7, 1.0, 0.05)
    assert np.isfinite(low) and np.isfinite(high) and low > 0
