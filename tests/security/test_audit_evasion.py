"""The audit: it must not be told apart from a real run, and it must flag what still gets
labels. Measured with an observer that fingerprints everything a jailed plugin can see, and
with the one label route the jail cannot close (a vendored copy of the task's generator)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from seclab import ATTACKS, RUNG, SEED, Lab, audit, run_student
from methods.jail import jail_available

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")


def seen_in_audit(lab: Lab, ctx, reference: str) -> np.ndarray:
    """What the plugin saw in one audited run, as ``w2s-transfer audit`` runs it."""
    from flows.context import method_function
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


@pytest.mark.xfail(strict=True, reason="HOLE: `w2s-transfer audit` has no way to take a plan's "
                   "compute settings (ds_config, precision), which the campaign passes to the "
                   "engine (flows/campaign.py groups): on such a plan the trainer handed to an "
                   "audited run differs from a real run's and a plugin can read it "
                   "(trainer.engine_config); the audit should take the plan (or its engine "
                   "settings)")
def test_an_audit_looks_like_a_real_run_on_a_plan_with_compute_settings(lab, audited_view):
    from flows.context import arm_context
    from transfer.arms import run_arm

    # The campaign's arm context for a plan with `compute: {ds_config: zero2}`.
    ctx = arm_context("micro", lab.task_dir, lab.store, {"ds_config": "zero2",
                                                          "precision": "fp32"})
    from flows.context import method_function

    name, params, fn = method_function("attacks.observer:Observer", [])
    real = run_arm(ctx, RUNG, "student", SEED, method=name, method_params=params,
                   method_fn=fn).predictions()["prob"].to_numpy()
    same = bool(np.array_equal(real, audited_view))
    lab.record("telling an audit from a real run on a plan with compute settings (zero2)",
               "`attacks.observer:Observer` (plugin)", "-",
               "identical" if same else "**fingerprints differ: trainer.engine_config (hole)**",
               "yes", "-")
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


@pytest.mark.xfail(strict=True, reason="HOLE (of the benchmark, not the jail): the built-in "
                   "synthetic task is a public function of public code and a data seed of 0 or "
                   "1; a plugin that brings its own copy of the generator regenerates the test "
                   "labels inside the jail, and the canary cannot see it. Verdicts on the "
                   "synthetic task (demo, micro-ci, tiny-ci plans) can be gamed; it needs a "
                   "secret data seed held by the trusted side (or no promotion on it)")
def test_a_vendored_task_generator_gets_no_labels(lab, vendoring_plugin):
    snapshot = lab.snapshot()
    result, runs, isolations = audit(lab, vendoring_plugin)
    lab.assert_unchanged(snapshot)
    assert isolations == ["jail", "jail"]
    # The audit's runs are real runs of the arms (in a throw-away store); the thief's output
    # does not depend on the stored labels, so they measure it against the real gold.
    accuracy = lab.accuracy(runs[1])
    lab.record("the task's generator brought along (vendored copy of transfer/, synthetic task)",
               "`vendored_generator.py` (plugin package)", "-",
               f"**acc {accuracy:.3f} in the jail (hole)**", "yes",
               "CLEAN (**misses it**)" if result.clean else "FLAGGED")
    assert accuracy < lab.ceiling_accuracy
    assert not result.clean
