"""The audit: it must not be told apart from a real run, and it must flag what still gets
labels. Measured with an observer that fingerprints everything a jailed plugin can see, and
with the one label route the jail cannot close (a vendored copy of the task's generator)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from seclab import ATTACKS, RUNG, SEED, Lab, audit, run_student, write_task

from methods.jail import jail_available

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")


def seen_in_audit(lab: Lab, ctx, reference: str) -> np.ndarray:
    """What the plugin saw in one audited run, as ``w2s-transfer audit`` runs it."""
    from methods.resolve import method_function
    from transfer.canary import run_with_permuted_gold

    name, params, fn = method_function(reference, [])
    return run_with_permuted_gold(ctx, RUNG, SEED, fn, 1, method=name, method_params=params)


@pytest.fixture(scope="module")
def audited_view(lab: Lab) -> np.ndarray:
    """The observer's fingerprint in an audit: the arm context built as the audit command
    builds it (flows/commands/audit.py: ladder, data and store; no engine settings)."""
    from flows.context import arm_context

    ctx = arm_context("micro", lab.task_dir, lab.store)
    return seen_in_audit(lab, ctx, "attacks.observer:Observer")


def test_an_audited_run_looks_exactly_like_a_real_one(lab, audited_view):
    snapshot = lab.snapshot()
    real, how = run_student(lab, "attacks.observer:Observer")
    assert how == ["jail"]
    lab.assert_unchanged(snapshot)
    same = bool(np.array_equal(real, audited_view))
    lab.record("telling an audit from a real run (env, mounts and host paths, limits, file "
               "tree, input bytes, sealed data, trainer settings)",
               "`attacks.observer:Observer` (plugin)", "scratch paths visible (issue)",
               "identical fingerprints" if same else "**fingerprints differ**", "yes", "-")
    assert same


def test_an_audit_looks_like_a_real_run_on_a_plan_with_compute_settings(lab, audited_view,
                                                                        tmp_path):
    from flows.commands.audit import audit_context
    from flows.context import arm_context
    from flows.plan import load_plan
    from methods.resolve import method_function
    from transfer.arms import run_arm

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: zero2-plan\nmethods: [{{name: 'attacks.observer:Observer'}}]\n"
                    f"ladder: micro\ndatasets: ['{lab.task_dir}']\n"
                    "compute: {ds_config: zero2, precision: fp32}\n")
    # The campaign's arm context for that plan (flows/campaign.py groups: its engine settings).
    ctx = arm_context("micro", lab.task_dir, lab.store, {"ds_config": "zero2",
                                                          "precision": "fp32"})
    name, params, fn = method_function("attacks.observer:Observer", [])
    real = run_arm(ctx, RUNG, "student", SEED, method=name, method_params=params,
                   method_fn=fn).predictions()["prob"].to_numpy()
    assert not np.array_equal(real, audited_view)  # the plain audit differs: the route is real
    audit_ctx, _ = audit_context(load_plan(str(plan)), None, None, lab.store)
    same = bool(np.array_equal(real, seen_in_audit(lab, audit_ctx, "attacks.observer:Observer")))
    lab.record("telling an audit from a real run on a plan with compute settings (zero2)",
               "`attacks.observer:Observer` (plugin)",
               "fingerprints differ without the plan (trainer.engine_config)",
               "identical with `audit --plan`" if same else "**fingerprints differ**", "yes", "-")
    assert same


@pytest.fixture
def vendoring_plugin(tmp_path, monkeypatch) -> str:
    """A plugin package carrying a copy of this project's `transfer` package (public code)."""
    from methods.jail_runtime import project_root

    package = tmp_path / "site" / "w2s_vendoring_plugin"
    shutil.copytree(project_root() / "transfer", package / "vendor" / "transfer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ATTACKS / "vendored_generator.py", package / "__init__.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return "w2s_vendoring_plugin:VendoredGenerator"


def test_a_vendored_task_generator_gets_nothing_from_a_salted_synthetic_task(
        lab, vendoring_plugin, tmp_path, monkeypatch):
    """The built-in synthetic task is a public function of public code and a small seed: a
    plugin bringing its own copy of the generator regenerates it inside the jail, and the canary
    cannot see it (nothing it reads changes when stored labels are permuted). Defences: verdicts
    on the unsalted built-in task are never promoted (flows/guards.py), and with
    W2S_SYNTHETIC_SECRET set the task is salted and cannot be regenerated."""
    from flows.context import arm_context
    from flows.guards import apply_promotion_guards
    from stats import Verdict
    from transfer.data import synthetic_task

    snapshot = lab.snapshot()
    result, runs, isolations = audit(lab, vendoring_plugin)
    lab.assert_unchanged(snapshot)
    assert isolations == ["jail", "jail"]
    before = lab.accuracy(runs[1])
    assert before == 1.0 and result.clean  # the route is real and the canary blind to it
    pgr = {"defined": True, "estimate": 0.9}
    cell = {"rung": "r2", "dataset": "synthetic", "n_seeds": 3,
            "acc": {"weak": 0.8, "ceiling": 0.9}, "pgr": pgr, "pgr_baseline": pgr,
            "gain": {"estimate": 0.05, "ci_low": 0.03, "ci_high": 0.07}}
    verdict = Verdict.model_validate({
        "schema_version": 1, "alpha": 0.05, "sesoi": 0.01, "baseline": "vanilla",
        "production_rung": "r2", "methods": {
            "thief": {"verdict": "REAL", "promote": True, "reasons": [], "cells": [cell]}}})
    apply_promotion_guards(verdict, [])
    assert not verdict.methods["thief"].promote
    assert "public seed" in verdict.methods["thief"].reasons[-1]
    # Salted: the same sizes and seed, a secret the jail never sees.
    monkeypatch.setenv("W2S_SYNTHETIC_SECRET", "known-only-to-the-trusted-side")
    salted = synthetic_task(seed=0, n_train_label=300, n_train_unlabel=300, n_test=200,
                            n_corpus=3000, secret="known-only-to-the-trusted-side")
    ctx = arm_context("micro", write_task(salted, tmp_path / "salted"), tmp_path / "store")
    from methods.resolve import method_function
    from transfer.arms import run_arm

    name, params, fn = method_function(vendoring_plugin, [])
    after = run_arm(ctx, RUNG, "student", SEED, method=name, method_params=params,
                    method_fn=fn).predictions()
    accuracy = float(after["correct"].mean())
    ceiling = run_arm(ctx, RUNG, "ceiling", SEED).metrics["accuracy"]
    lab.record("the task's generator brought along (vendored copy of transfer/)",
               "`vendored_generator.py` (plugin package)",
               f"acc {before:.3f} on the public synthetic task (canary blind; never promoted)",
               f"acc {accuracy:.3f} on the salted task (all 0.5)", "yes", "CLEAN (blind)")
    assert fn.isolation == ["jail"] and np.all(after["prob"] == 0.5) and accuracy < ceiling
