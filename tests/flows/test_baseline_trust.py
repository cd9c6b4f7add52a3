"""Every gain is measured against the baseline: a baseline that trains badly on purpose makes
any candidate REAL. An attacker review (2026-12-05) did it with a sabotaged ``vanilla`` under
``jail: {builtins: jail}``: REAL, PROMOTE, audits clean. Defences: the reference ``vanilla`` is
the pipeline's own code (``methods/reference.py``, outside ``methods/builtin/``), and nothing is
promoted against a baseline whose code the pipeline does not trust (``flows.guards``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from flows.guards import apply_promotion_guards, untrusted_baseline
from methods.policy import JailSettings
from stats import Verdict


@pytest.mark.parametrize("baseline, builtins, distrusted", [
    ("vanilla", "in_process", False),
    ("vanilla", "jail", False),  # the pipeline's own reference, whatever the setting
    ("confident", "in_process", False),  # a built-in, trusted code by default
    ("confident", "jail", True),  # a built-in the plan does not trust
    ("plugins_for_tests:ScaledWeak", "in_process", True),  # plugin code
    ("external", "in_process", True),  # a command the pipeline does not know
])
def test_which_baselines_the_pipeline_trusts(baseline, builtins, distrusted) -> None:
    plan = SimpleNamespace(baseline=baseline, jail=JailSettings(builtins=builtins))
    reason = untrusted_baseline(plan)
    assert (reason is not None) is distrusted
    if distrusted:
        assert reason.startswith(f"the baseline {baseline} ") and "nothing is promoted" in reason


def test_a_distrusted_baseline_blocks_every_promotion_but_no_verdict() -> None:
    pgr = {"defined": True, "estimate": 0.5, "ci_low": 0.3, "ci_high": 0.7}
    cell = {"rung": "r2", "dataset": "mine", "n_seeds": 3, "acc": {"weak": 0.7, "ceiling": 0.8},
            "pgr": pgr, "pgr_baseline": pgr,
            "gain": {"estimate": 0.05, "ci_low": 0.03, "ci_high": 0.07}}
    raw = {"schema_version": 1, "alpha": 0.05, "sesoi": 0.01, "baseline": "confident",
           "production_rung": "r2", "methods": {
               "m": {"verdict": "REAL", "promote": True, "reasons": [], "cells": [cell]}}}
    assert apply_promotion_guards(Verdict.model_validate(raw), []).methods["m"].promote
    reason = untrusted_baseline(SimpleNamespace(baseline="confident",
                                                jail=JailSettings(builtins="jail")))
    entry = apply_promotion_guards(Verdict.model_validate(raw), [], reason).methods["m"]
    assert entry.promote is False and entry.verdict == "REAL" and reason in entry.guards
