"""The label-leak canary on the real arms (micro ladder): gold permuted in place and restored,
the weak run held fixed, a throw-away store; sealed methods are clean, label readers flagged."""
from __future__ import annotations

import numpy as np
import pytest

from methods.audit import audit_label_leak
from methods.registry import parse_params, resolve_method
from transfer.canary import PERMUTED_SPLITS, permuted_gold, run_with_permuted_gold

RUNG = "m0"


@pytest.fixture(scope="module")
def task():
    from transfer.data import synthetic_task

    return synthetic_task(seed=0, n_train_label=300, n_train_unlabel=300, n_test=300,
                          n_corpus=3000)


@pytest.fixture
def ctx(task, tmp_path):
    from transfer.arms import ArmContext
    from transfer.engine import EngineConfig
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    ladder = load_ladder("micro")
    return ArmContext(ladder=ladder, task=task, store=RunStore(tmp_path / "store"),
                      engine_config=EngineConfig(**{**ladder.training, "epochs": 2}))


def labels(task) -> dict[str, np.ndarray]:
    return {name: np.array([e.label for e in split.examples])
            for name, split in task.splits.items()}


def in_process(reference: str):
    """``fn(data, trainer)`` calling the method directly, as unjailed in-process code (the test
    imports it here; the pipeline never would)."""
    import importlib

    if ":" not in reference:
        method = resolve_method(reference)
        params = parse_params(method, [])
        return lambda data, trainer: method.run(data, trainer, params)
    module, _, attr = reference.partition(":")
    method = getattr(importlib.import_module(module), attr)()
    return lambda data, trainer: method.run(data, trainer, None)


def test_permuted_gold_permutes_two_splits_in_place_and_restores_them(task):
    real, fingerprint = labels(task), task.fingerprint
    texts = {name: split.texts for name, split in task.splits.items()}
    seen = {}
    for seed in (1, 2, 1):
        with permuted_gold(task, seed):
            now = labels(task)
            assert task.fingerprint == fingerprint
            assert {n: s.texts for n, s in task.splits.items()} == texts
            np.testing.assert_array_equal(now["train_label"], real["train_label"])
            for name in PERMUTED_SPLITS:
                assert np.any(now[name] != real[name])
                assert sorted(now[name]) == sorted(real[name])  # a permutation of itself
                np.testing.assert_array_equal(task.splits[name].labels, now[name])
            if seed in seen:  # the same seed gives the same permutation
                np.testing.assert_array_equal(now["test"], seen[seed])
            seen[seed] = now["test"]
        for name in real:
            np.testing.assert_array_equal(labels(task)[name], real[name])
            np.testing.assert_array_equal(task.splits[name].labels, real[name])
    assert np.any(seen[1] != seen[2])
    with pytest.raises(RuntimeError, match="boom"), permuted_gold(task, 3):
        raise RuntimeError("boom")
    for name in real:
        np.testing.assert_array_equal(labels(task)[name], real[name])


def test_a_sealed_method_gives_identical_predictions_and_the_real_store_stays_clean(ctx, task):
    from methods.resolve import method_function
    from transfer.arms import run_arm

    real = labels(task)
    _, _, fn = method_function("vanilla", [])
    first = run_with_permuted_gold(ctx, RUNG, 0, fn, 1, method="vanilla")
    second = run_with_permuted_gold(ctx, RUNG, 0, fn, 2, method="vanilla")
    assert first.shape == (300,) and np.all((first >= 0) & (first <= 1))
    np.testing.assert_array_equal(first, second)
    # Only the real weak run reached the real store; the labels are back.
    assert [s.arm for s in ctx.store.executed] == ["weak"]
    assert sorted(p.name for p in ctx.store.root.iterdir()) == ["weak"]
    for name in real:
        np.testing.assert_array_equal(labels(task)[name], real[name])
    # Same seed, real labels: the canary's student equals the real student arm.
    real_student = run_arm(ctx, RUNG, "student", 0, method="vanilla", method_fn=fn)
    np.testing.assert_array_equal(real_student.predictions()["prob"].to_numpy(), first)


def test_the_weak_run_is_held_fixed_and_rescored_against_the_permuted_labels(ctx, task):
    from transfer.arms import run_arm

    weak = run_arm(ctx, RUNG, "weak", 0).predictions()
    seen = {}

    def record_inputs(data, trainer):
        seen[len(seen)] = (data.weak_probs.copy(), data.weak_test_probs.copy())
        return np.full(len(data.test_ids), 0.5)

    for seed in (1, 2):
        run_with_permuted_gold(ctx, RUNG, 0, record_inputs, seed)
    np.testing.assert_array_equal(seen[0][0], seen[1][0])
    np.testing.assert_array_equal(seen[0][1], weak["prob"].to_numpy())


def test_an_in_process_gc_thief_is_flagged_with_the_number_of_changed_labels(ctx, task):
    def permuted_test_labels(seed):
        with permuted_gold(task, seed):
            return labels(task)["test"]

    result = audit_label_leak(lambda seed: run_with_permuted_gold(
        ctx, RUNG, 0, in_process("malicious.gc_split:GcSplitThief"), seed))
    assert not result.clean
    expected = int(np.sum(permuted_test_labels(1) != permuted_test_labels(2)))
    assert expected > 0 and result.n_differ == expected and result.max_abs_diff == 1.0
    assert f"differ on {expected}/300 test examples" in result.evidence


def test_the_same_thief_jailed_gets_nothing_and_is_clean(ctx):
    from methods.resolve import method_function

    _, _, fn = method_function("malicious.gc_split:GcSplitThief", [])
    runs = {seed: run_with_permuted_gold(ctx, RUNG, 0, fn, seed) for seed in (1, 2)}
    assert fn.isolation == ["jail", "jail"]
    assert all(np.all(probs == 0.5) for probs in runs.values())


def test_labels_regenerated_from_code_escape_the_canary_but_not_the_jail(tmp_path):
    from flows.context import arm_context
    from methods.resolve import method_function

    # The built-in synthetic task, which transfer.data can regenerate with its real labels.
    ctx = arm_context("micro", None, tmp_path / "store", {"epochs": 1})
    thief = "malicious.import_evaluator:ImportEvaluator"
    stolen = run_with_permuted_gold(ctx, RUNG, 0, in_process(thief), 1)
    np.testing.assert_array_equal(stolen, ctx.task.splits["test"].labels)  # the real labels
    result = audit_label_leak(lambda seed: run_with_permuted_gold(
        ctx, RUNG, 0, in_process(thief), seed))
    assert result.clean  # the documented blind spot: permuting stored labels changes nothing
    _, _, fn = method_function(thief, [])
    probs = run_with_permuted_gold(ctx, RUNG, 0, fn, 1)
    assert fn.isolation == ["jail"] and np.all(probs == 0.5)


def test_bad_permutation_seed_is_an_input_error(ctx):
    from w2s_common.errors import InputError

    with pytest.raises(InputError, match="permutation_seed: expected an integer >= 0"):
        run_with_permuted_gold(ctx, RUNG, 0, in_process("vanilla"), -1)
