"""Arms: weak/ceiling/student run end to end, are stored, reused, and never show gold to methods."""
from __future__ import annotations

import numpy as np
import pytest

from transfer.arms import arm_spec, run_arm
from transfer.sealed import StudentData
from w2s_common.errors import InputError


def vanilla(data, trainer):
    return trainer.fit(data.weak_probs).predict_test()


def test_three_arms_run_store_and_reuse(micro_ctx):
    weak = run_arm(micro_ctx, "m0", "weak", 0)
    ceiling = run_arm(micro_ctx, "m0", "ceiling", 0)
    student = run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=vanilla)
    assert len(micro_ctx.store.executed) == 3
    for record in (weak, ceiling, student):
        preds = record.predictions()
        assert len(preds) == 600
        assert preds["prob"].between(0, 1).all()
        assert record.metrics["accuracy"] == pytest.approx(preds["correct"].mean())
    assert len(weak.soft_labels()) == 600
    assert student.metrics["arm"] == "vanilla"
    assert student.spec.depends_on == weak.spec.run_hash()
    # A second call is served from the store: nothing is recomputed.
    run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=vanilla)
    run_arm(micro_ctx, "m0", "weak", 0)
    assert len(micro_ctx.store.executed) == 3


def test_a_new_method_costs_only_its_student_run(micro_ctx):
    run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=vanilla)
    assert [s.arm for s in micro_ctx.store.executed] == ["weak", "student"]
    run_arm(micro_ctx, "m0", "student", 0, method="hard", method_params={"hard": True},
            method_fn=lambda d, t: t.fit((d.weak_probs > 0.5).astype(float)).predict_test())
    assert [s.arm for s in micro_ctx.store.executed] == ["weak", "student", "student"]


def test_runs_are_deterministic_and_seed_dependent(micro_ctx, tmp_path):
    from transfer.store import RunStore

    first = run_arm(micro_ctx, "m0", "weak", 0).predictions()["prob"].to_numpy()
    micro_ctx.store = RunStore(tmp_path / "other")
    again = run_arm(micro_ctx, "m0", "weak", 0).predictions()["prob"].to_numpy()
    other_seed = run_arm(micro_ctx, "m0", "weak", 1).predictions()["prob"].to_numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other_seed)


def test_methods_receive_no_gold_labels(micro_ctx):
    seen = {}

    def inspect(data, trainer):
        seen["data"], seen["trainer"] = data, trainer
        return np.full(len(data.test_ids), 0.5)

    run_arm(micro_ctx, "m0", "student", 0, method="inspect", method_fn=inspect)
    data, trainer = seen["data"], seen["trainer"]
    assert isinstance(data, StudentData)
    assert not data.weak_probs.flags.writeable
    assert "train_label" not in trainer.strong.features
    assert set(trainer.task_view.splits) == {"train_unlabel", "test"}
    assert not hasattr(trainer.task_view.splits["test"], "labels")
    assert trainer.model_names() == ["micro-24x1", "micro-32x1"]  # intermediates, then strong


def test_bad_method_outputs_are_clear_errors(micro_ctx):
    with pytest.raises(InputError, match=r"returned \(3,\) predictions; expected \(600,\)"):
        run_arm(micro_ctx, "m0", "student", 0, method="short",
                method_fn=lambda d, t: np.zeros(3))
    with pytest.raises(InputError, match="outside"):
        run_arm(micro_ctx, "m0", "student", 0, method="nan",
                method_fn=lambda d, t: np.full(len(d.test_ids), np.nan))


def test_student_spec_requires_a_method(micro_ctx):
    with pytest.raises(InputError, match="needs a method"):
        arm_spec(micro_ctx, micro_ctx.ladder.rung("m0"), "student", 0)
    with pytest.raises(InputError, match="unknown arm"):
        arm_spec(micro_ctx, micro_ctx.ladder.rung("m0"), "teacher", 0)


def test_tiny_ladder_first_rung_shows_a_weak_to_strong_effect(tmp_path):
    """The built-in task on tiny rung r0: a real gap, and the student recovers part of it."""
    from transfer.arms import ArmContext
    from transfer.data import load_task
    from transfer.engine import EngineConfig
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    ladder = load_ladder("tiny")
    ctx = ArmContext(ladder=ladder, task=load_task(None), store=RunStore(tmp_path),
                     engine_config=EngineConfig(**ladder.training))
    acc = {arm: run_arm(ctx, "r0", arm, 0, method="vanilla" if arm == "student" else None,
                        method_fn=vanilla if arm == "student" else None).metrics["accuracy"]
           for arm in ("weak", "ceiling", "student")}
    assert acc["ceiling"] - acc["weak"] >= 0.03, acc
    assert (acc["student"] - acc["weak"]) / (acc["ceiling"] - acc["weak"]) > 0.3, acc
