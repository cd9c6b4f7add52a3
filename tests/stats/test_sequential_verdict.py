"""A campaign's final verdict is its sequential design's decision (helper-50, 2026-12-06).

Before, the looks stopped each method at O'Brien-Fleming boundaries but the verdict came from a
fixed-sample analysis at alpha / 2 (with Holm) on the seeds it ran: at the last look a gain
between the two levels was REAL in verdict.json and INCONCLUSIVE in the design's own record, and
the whole procedure's false REAL rate rose above alpha / 2 with 3 or more looks (2.75% at 4
looks on the normal model, bench/sequential_procedure.py). ``analyze_table`` given a record with
``max_looks`` now decides each method at its stopping look's level, and the decision interval is
the repeated confidence interval there."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from stats.analyze import analyze_table
from stats.sequential import SequentialDesign, boundaries, look_level
from stats.verdict_model import Sequential

ALPHA, SESOI, LOOKS, PER_LOOK = 0.05, 0.01, 4, 2
ARMS = ("weak", "ceiling", "vanilla", "m")
SPREAD = np.array([0.010, -0.010, 0.006, -0.006, 0.012, -0.012, 0.003, -0.003])
BASELINE_NOISE = np.array([0.004, -0.002, 0.001, 0.003, -0.004, 0.002, -0.001, 0.0])


def table(gains: np.ndarray) -> pd.DataFrame:
    """An aggregate table: weak, ceiling, vanilla and ``m`` = vanilla + ``gains`` per seed
    (the paired seed-level analysis: the gain is the mean of ``gains``, its se their sd /
    sqrt(S), df S - 1)."""
    n = len(gains)
    vanilla = 0.58 + BASELINE_NOISE[:n]
    acc = {"weak": 0.53 + 0 * vanilla, "ceiling": 0.72 + BASELINE_NOISE[:n] / 2,
           "vanilla": vanilla, "m": vanilla + gains}
    return pd.DataFrame({
        "rung": "big", "dataset": "d0", "arm": np.repeat(ARMS, n),
        "seed": np.tile(np.arange(n, dtype=np.int64), len(ARMS)),
        "accuracy": np.concatenate([acc[a] for a in ARMS]), "n": 1000.0,
        "strong_params": 10 ** 9})


def gains_with_p(p: float) -> np.ndarray:
    """Per-seed gains whose one-sided superiority p over all seeds is ``p``."""
    n = len(SPREAD)
    centred = SPREAD - SPREAD.mean()
    t = sps.t.isf(p, n - 1)
    return centred + t * centred.std(ddof=1) / np.sqrt(n)


def run_campaign(gains: np.ndarray) -> tuple[pd.DataFrame, Sequential, list]:
    """The looks as flows/campaign.py makes them: PER_LOOK seeds a look, stop when decided."""
    design = SequentialDesign(max_looks=LOOKS, alpha=ALPHA, sesoi=SESOI)
    looks, decisions = [], []
    for look in range(1, LOOKS + 1):
        seen = look * PER_LOOK
        decision = design.look(table(gains[:seen]), method="m", look=look)
        decisions.append(decision)
        looks.append({"look": look, "seeds": list(range(seen - PER_LOOK, seen)),
                      "decisions": {"m": {"decided": decision.decided,
                                          "verdict": decision.verdict}}})
        if decision.decided:
            break
    record = Sequential(looks=looks, seeds_used={"m": list(range(seen))},
                        seed_budget=LOOKS * PER_LOOK, max_looks=LOOKS)
    return table(gains[:seen]), record, decisions


def test_a_gain_between_the_two_levels_is_what_the_design_decided():
    level = look_level(ALPHA, 1, LOOKS, LOOKS)
    assert level < ALPHA / 2  # the last look's boundary is above the fixed-sample 1.96
    gains = gains_with_p((level + ALPHA / 2) / 2)
    results, record, decisions = run_campaign(gains)
    assert len(decisions) == LOOKS and decisions[-1].verdict == "INCONCLUSIVE"

    fixed = analyze_table(results, n_boot=0)  # what verdict.json said before
    assert fixed.methods["m"].verdict == "REAL"

    verdict = analyze_table(results, n_boot=0, sequential=record)
    entry = verdict.methods["m"]
    assert entry.verdict == decisions[-1].verdict == "INCONCLUSIVE"
    gain = entry.cells[0].gain
    assert gain.correction == "sequential" and verdict.correction == "sequential"
    assert gain.decision_ci_low <= 0 < gain.ci_low  # the 95% interval alone excludes 0
    assert gain.p_adjusted == pytest.approx(gain.p_superiority * (ALPHA / 2) / level)
    assert "sequential design" in verdict.decision_rule
    assert verdict.sequential.max_looks == LOOKS


def test_an_early_stop_is_decided_at_its_look_with_the_repeated_interval():
    gains = gains_with_p(1e-6)
    results, record, decisions = run_campaign(gains)
    stopped = len(decisions)
    assert stopped < LOOKS and decisions[-1].verdict == "REAL"
    entry = analyze_table(results, n_boot=0, sequential=record).methods["m"]
    assert entry.verdict == "REAL"
    gain = entry.cells[0].gain
    bound = boundaries(ALPHA / 2, np.arange(1, LOOKS + 1) / LOOKS)[stopped - 1]
    half = sps.t.ppf(sps.norm.cdf(bound), gain.df) * gain.se
    assert gain.decision_ci_low == pytest.approx(gain.estimate - half)
    assert gain.decision_ci_high == pytest.approx(gain.estimate + half)
    assert gain.decision_ci_low > 0


def test_a_record_without_planned_looks_is_analysed_as_a_fixed_sample():
    """Verdicts written before max_looks was recorded re-derive as they were."""
    level = look_level(ALPHA, 1, LOOKS, LOOKS)
    results, record, _ = run_campaign(gains_with_p((level + ALPHA / 2) / 2))
    old = Sequential(looks=record.looks, seeds_used=record.seeds_used,
                     seed_budget=record.seed_budget)
    verdict = analyze_table(results, n_boot=0, sequential=old)
    assert verdict.methods["m"].verdict == "REAL" and verdict.correction == "holm"
    assert "max_looks" not in verdict.as_json_dict()["sequential"]


def test_the_look_level_is_the_designs_boundary():
    for family, look in ((1, 1), (3, 2), (6, 4)):
        bound = boundaries(ALPHA / 2 / family, np.arange(1, LOOKS + 1) / LOOKS)[look - 1]
        assert look_level(ALPHA, family, look, LOOKS) == pytest.approx(sps.norm.sf(bound))


def test_a_single_look_is_a_fixed_sample_and_keeps_holm():
    level = look_level(ALPHA, 1, LOOKS, LOOKS)
    gains = gains_with_p((level + ALPHA / 2) / 2)
    one = Sequential(looks=[{"look": 1, "seeds": list(range(8)), "decisions": {"m": {}}}],
                     seeds_used={"m": list(range(8))}, seed_budget=8, max_looks=1)
    verdict = analyze_table(table(gains), n_boot=0, sequential=one)
    assert verdict.correction == "holm" and verdict.methods["m"].verdict == "REAL"
