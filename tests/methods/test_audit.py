"""The label-leak canary: clean methods pass, label readers are flagged with evidence."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest
from fakes import FakeTask, FakeTrainer, LeakyTrainer

from methods.audit import audit_label_leak, compare_predictions
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
from w2s_common.errors import InputError


@dataclass
class PipelineState:
    """What an arm holds while a method runs: the sealed data next to the gold labels."""

    data: object
    test_gold: np.ndarray


def permuted_gold(task: FakeTask, permutation_seed: int) -> np.ndarray:
    return np.random.default_rng(permutation_seed).permutation(task.test_gold)


def canary(task: FakeTask, reference: str, *, sandboxed: bool = False, leaky: bool = False,
           gold_dir=None):
    """A fake ``run_with_permuted_gold`` for ``reference``, mimicking how the arms hold labels;
    unjailed, a plugin is imported here and run in this process."""
    import importlib

    method = resolve_method(reference)
    params = parse_params(method, [])
    if ":" in reference and not sandboxed:
        module, _, attr = reference.partition(":")
        method = getattr(importlib.import_module(module), attr)()

    def run_with_permuted_gold(permutation_seed: int) -> np.ndarray:
        gold = permuted_gold(task, permutation_seed)
        # A fresh copy, so that the only gold next to it is this run's (not the fixture's).
        data = dataclasses.replace(task.data)
        state = PipelineState(data, gold)  # noqa: F841  (held, as an arm would)
        trainer = (LeakyTrainer.for_task(task, test_labels=gold) if leaky
                   else FakeTrainer.for_task(task))
        if gold_dir is not None:
            (gold_dir / "test.jsonl").write_text("".join(
                json.dumps({"id": i, "label": int(y)}) + "\n"
                for i, y in zip(task.data.test_ids, gold)))
        if sandboxed:
            return run_method(method, data, trainer, params).probs
        return method.run(data, trainer, params)

    return run_with_permuted_gold


@pytest.mark.parametrize("reference", ["vanilla", "aux_conf", "em_posterior"])
def test_sealed_methods_are_clean(task, reference):
    result = audit_label_leak(canary(task, reference))
    assert result.clean and result.n_differ == 0 and result.max_abs_diff == 0.0
    assert result.evidence.startswith("clean: predictions under gold permutations 1 and 2 agree "
                                      "exactly on all 200")


def test_an_in_process_object_inspector_is_caught(task):
    result = audit_label_leak(canary(task, "malicious.inspect_objects:InspectObjects"))
    assert not result.clean
    assert result.n_differ == int(np.sum(permuted_gold(task, 1) != permuted_gold(task, 2)))
    assert result.max_abs_diff == 1.0
    assert "label leak" in result.evidence and f"{result.n_differ}/200" in result.evidence


def test_a_trainer_carrying_labels_is_caught_even_in_the_jail(task):
    result = audit_label_leak(canary(task, "malicious.inspect_objects:InspectObjects",
                                     sandboxed=True, leaky=True))
    assert not result.clean and result.n_differ > 0


def test_an_in_process_filesystem_walker_is_caught(tmp_path, task):
    gold_dir = tmp_path / "dataset"
    gold_dir.mkdir()
    result = audit_label_leak(canary(task, "malicious.walk_filesystem:WalkFilesystem",
                                     gold_dir=gold_dir))
    assert not result.clean and result.n_differ > 0


def test_tolerance_and_nan_handling():
    first, second = np.array([0.5, np.nan, 0.2]), np.array([0.5000001, np.nan, 0.2])
    assert compare_predictions(first, second, atol=0.0) == (pytest.approx(1e-7), 1)
    assert compare_predictions(first, second, atol=1e-6)[1] == 0
    result = audit_label_leak(lambda seed: first if seed == 1 else second, atol=1e-6)
    assert result.clean and "within 1e-06" in result.evidence
    half = audit_label_leak(lambda seed: np.array([np.nan, 0.1]) if seed == 1 else
                            np.array([0.3, 0.1]))
    assert not half.clean and half.n_differ == 1


def test_nondeterministic_methods_are_not_judged_clean():
    rng = np.random.default_rng(0)
    result = audit_label_leak(lambda seed: rng.random(10), check_determinism=True)
    assert not result.clean and result.evidence.startswith("nondeterministic")


def test_bad_audit_inputs():
    with pytest.raises(InputError, match="must differ"):
        audit_label_leak(lambda s: np.zeros(3), permutation_seeds=(4, 4))
    with pytest.raises(InputError, match="tolerance"):
        audit_label_leak(lambda s: np.zeros(3), atol=-1)
    with pytest.raises(InputError, match="returned 3 and 4 predictions"):
        audit_label_leak(lambda s: np.zeros(3 if s == 1 else 4))


# --- the follows_labels rule: runs that differ by noise are judged by whether they follow ---

def _labels(n: int = 2000):
    real = np.random.default_rng(0).integers(0, 2, n)
    return lambda seed: np.random.default_rng(seed).permutation(real)


def _noisy_run(base: np.ndarray, seed: int, flip: float) -> np.ndarray:
    """``base`` with a fraction ``flip`` of its predictions flipped at random (run noise)."""
    rng = np.random.default_rng(10_000 + seed)
    return np.where(rng.random(len(base)) < flip, 1.0 - base, base)


@pytest.mark.parametrize("flip", [0.001, 0.05, 0.3])
def test_runs_that_differ_by_noise_alone_are_clean_under_follows_labels(flip):
    labels_for = _labels()
    base = np.random.default_rng(1).integers(0, 2, 2000).astype(float)
    run = lambda seed: _noisy_run(base, seed, flip)  # noqa: E731 - knows no labels
    exact = audit_label_leak(run, permutation_seeds=(3, 4))
    assert not exact.clean and exact.evidence.startswith("label leak")  # the exact rule flags
    result = audit_label_leak(run, permutation_seeds=(3, 4), labels_for=labels_for)
    assert result.clean, result.evidence
    assert result.evidence.startswith("clean (not bitwise reproducible)")


@pytest.mark.parametrize("share", [0.05, 1.0])
def test_runs_that_follow_their_labels_are_flagged_through_the_noise(share):
    """A method that copies the gold label into a share of its predictions, under run noise
    that flips 2% of them: flagged (2000 test examples). 5% is what a method whose predictions
    are wrong on a fifth of the examples needs to gain 1 point, the usual SESOI; a 1% share
    (0.2 points) is not detected under that noise (23 of 39 follow, p = 0.17), which the exact
    rule, where the engine allows it, would flag."""
    labels_for = _labels()
    base = np.random.default_rng(1).integers(0, 2, 2000).astype(float)
    copied = np.random.default_rng(2).random(2000) < share

    def run(seed):
        return np.where(copied, labels_for(seed).astype(float), _noisy_run(base, seed, 0.02))

    result = audit_label_leak(run, permutation_seeds=(3, 4), labels_for=labels_for)
    assert not result.clean and result.evidence.startswith("label leak"), result.evidence
    assert "follows the gold labels" in result.evidence


def test_follows_labels_counts_only_where_labels_and_predictions_differ():
    from methods.audit import follows_labels

    first, second = np.array([1.0, 0.0, 1.0, 0.9]), np.array([0.0, 0.0, 1.0, 0.2])
    labels_first, labels_second = np.array([1, 0, 1, 0]), np.array([0, 1, 1, 1])
    # Example 0: labels and predictions differ, run 1 predicts its own label: follows.
    # Example 1: predictions agree; 2: labels agree; 3: differ, run 1 predicts the other's.
    follows, examples, p = follows_labels(first, second, labels_first, labels_second)
    assert (follows, examples) == (1, 2) and p == pytest.approx(1.0)  # two-sided
    assert follows_labels(first, first, labels_first, labels_second) == (0, 0, 1.0)


@pytest.mark.parametrize("rule", ["exact", "follows_labels"])
def test_a_method_honest_only_under_permuted_labels_is_caught_against_its_real_run(rule):
    """It reads the labels, sees that a permutation agrees with the weak teacher at chance (real
    labels do not) and answers honestly only then: the two permuted runs agree, the real run
    follows the real labels (found by an independent attacker review, 2026-12-04)."""
    labels_for = _labels()
    real_labels = np.random.default_rng(0).integers(0, 2, 2000)
    honest = np.random.default_rng(1).integers(0, 2, 2000).astype(float)
    real_run = np.where(np.random.default_rng(2).random(2000) < 0.05, real_labels, honest)
    kwargs = {"labels_for": labels_for} if rule == "follows_labels" else {}
    alone = audit_label_leak(lambda seed: honest, permutation_seeds=(3, 4), **kwargs)
    assert alone.clean  # the permuted runs alone are fooled
    result = audit_label_leak(lambda seed: honest, permutation_seeds=(3, 4), real=real_run,
                              real_labels=real_labels, **kwargs)
    assert not result.clean, result.evidence
    assert result.evidence.startswith("label leak: predictions of the real run and under gold "
                                      "permutation 3 differ on ")
    same = audit_label_leak(lambda seed: honest, permutation_seeds=(3, 4), real=honest,
                            real_labels=real_labels, **kwargs)
    assert same.evidence == ("clean: predictions of the real run and under gold permutations 3 "
                             "and 4 agree exactly on all 2000 test examples")


def test_a_method_answering_the_opposite_of_permuted_labels_is_flagged_under_follows_labels():
    """It reads the labels: real-looking ones (agreeing with the weak teacher) it returns,
    permuted ones it answers with their complement. Against the real run no example counts;
    between the permuted runs none follows: a one-sided test passed it (found by an independent
    attacker review, 2026-12-04)."""
    labels_for = _labels()
    real_labels = np.random.default_rng(0).integers(0, 2, 2000)
    result = audit_label_leak(lambda seed: 1.0 - labels_for(seed), permutation_seeds=(3, 4),
                              real=real_labels.astype(float), real_labels=real_labels,
                              labels_for=labels_for)
    assert not result.clean, result.evidence
    assert "each run predicted its own labels on 0 of " in result.evidence
