"""Results too good for weak supervision block promotion (flows/guards.py): a student that
clearly beats the same model trained on gold labels (PGR interval above 1), or a run with 100%
test accuracy the gold-trained ceiling does not reach. A forged run scored PGR 2.4 in an attacker
review (2026-12-05); the label audit is the evidence, these say "look before promoting"."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from flows.guards import apply_promotion_guards
from stats import Verdict


def verdict(pgr_low: float, pgr_high: float, name: str = "m") -> Verdict:
    pgr = {"defined": True, "estimate": (pgr_low + pgr_high) / 2, "ci_low": pgr_low,
           "ci_high": pgr_high}
    cell = {"rung": "r2", "dataset": "mine", "n_seeds": 3,
            "acc": {"weak": 0.7, "ceiling": 0.8}, "pgr": pgr, "pgr_baseline": pgr,
            "gain": {"estimate": 0.05, "ci_low": 0.03, "ci_high": 0.07}}
    return Verdict.model_validate({
        "schema_version": 1, "alpha": 0.05, "sesoi": 0.01, "baseline": "vanilla",
        "production_rung": "r2", "methods": {
            name: {"verdict": "REAL", "promote": True, "reasons": [], "cells": [cell]}}})


def run(arm: str, label: str, accuracy: float, seed: int = 0):
    spec = SimpleNamespace(arm=arm, label=label, rung="r2", dataset="d", seed=seed,
                           unjailed=False, run_hash=lambda: f"{label}{seed}")
    return SimpleNamespace(spec=spec, metrics={"accuracy": accuracy, "isolation": "jail"},
                           checked_accuracy=lambda tolerance: accuracy)


@pytest.mark.parametrize("low, high, blocked", [(1.1, 2.4, True), (0.9, 1.3, False),
                                                (0.5, 0.9, False)])
def test_a_pgr_interval_above_one_blocks_promotion(low, high, blocked) -> None:
    checked = apply_promotion_guards(verdict(low, high), [])
    entry = checked.methods["m"]
    assert entry.promote is not blocked
    assert any("beats the ceiling trained on gold labels" in g for g in entry.guards) is blocked
    assert entry.verdict == "REAL"  # a guard blocks promotion; it never changes the verdict


@pytest.mark.parametrize("ceiling, blocked", [(0.8, True), (1.0, False)])
def test_a_perfect_run_the_ceiling_does_not_reach_blocks_promotion(ceiling, blocked) -> None:
    records = [run("weak", "weak", 0.7), run("ceiling", "ceiling", ceiling),
               run("student", "vanilla", 0.75), run("student", "m", 1.0)]
    entry = apply_promotion_guards(verdict(0.4, 0.9), records).methods["m"]
    assert entry.promote is not blocked
    assert any("its run at rung r2 seed 0 scored 100% test accuracy" in g
               for g in entry.guards) is blocked


def test_a_spike_in_control_is_not_called_too_good() -> None:
    """A spike-in control trains on gold labels by design: a PGR interval above 1 or a perfect
    run is the injection it measures, not a leak (it was flagged, helper-46, 2026-12-06)."""
    from transfer.controls import CONTROL_PREFIX

    name = f"{CONTROL_PREFIX}spike"
    records = [run("weak", "weak", 0.7), run("ceiling", "ceiling", 0.8),
               run("student", "vanilla", 0.75), run("student", name, 1.0)]
    entry = apply_promotion_guards(verdict(1.1, 2.4, name), records).methods[name]
    assert not any("too good" in g for g in entry.guards), entry.guards
