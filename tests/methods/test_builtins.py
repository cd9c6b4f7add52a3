"""Every built-in runs on the fake trainer; the data each one trains on is the formula's."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from fakes import FakeTrainer, accuracy

from methods.builtin.aux_conf_hooks import AuxConfHooks
from methods.builtin.bootstrap import pick_intermediate
from methods.builtin.simple import confident_weights
from methods.registry import parse_params, resolve_method
from transfer.sealed import MethodUnsupported
from w2s_common.errors import InputError

TRAINED_BUILTINS = ["vanilla", "aux_conf", "confident", "bootstrap", "em_posterior",
                    "zero_shot_prior"]


@pytest.mark.parametrize("name", TRAINED_BUILTINS)
def test_every_builtin_runs_and_learns(name, task, trainer):
    method = resolve_method(name)
    probs = method.run(task.data, trainer, parse_params(method, []))
    assert probs.shape == (len(task.data.test_ids),)
    assert np.all((probs >= 0) & (probs <= 1))
    # Better than chance: the student learned from what the method fed it.
    assert accuracy(probs, task.test_gold) > 0.6


def test_vanilla_trains_on_soft_or_hard_weak_labels(task, trainer):
    method = resolve_method("vanilla")
    method.run(task.data, trainer, parse_params(method, []))
    method.run(task.data, trainer, parse_params(method, ["hard=true"]))
    soft, hard = trainer.calls
    np.testing.assert_array_equal(soft.targets, task.data.weak_probs)
    np.testing.assert_array_equal(hard.targets, (task.data.weak_probs > 0.5).astype(float))
    assert soft.weights is None and soft.hooks is None


def test_confident_drops_exactly_the_in_band_examples(task, trainer):
    method = resolve_method("confident")
    method.run(task.data, trainer, parse_params(method, ["low=0.3", "high=0.8"]))
    (call,) = trainer.calls
    weak = task.data.weak_probs
    in_band = (weak >= 0.3) & (weak <= 0.8)
    assert 0 < in_band.sum() < len(weak)
    np.testing.assert_array_equal(call.weights == 0, in_band)
    np.testing.assert_array_equal(call.weights[~in_band], 1.0)


def test_confident_band_edges_are_inside_the_band():
    weights = confident_weights(np.array([0.25, 0.2499, 0.5, 0.75, 0.7501]), 0.25, 0.75)
    np.testing.assert_array_equal(weights, [0, 1, 0, 0, 1])


def test_confident_rejects_a_reversed_band_and_an_empty_training_set(task, trainer):
    method = resolve_method("confident")
    with pytest.raises(InputError, match="low must be < high"):
        parse_params(method, ["low=0.8", "high=0.2"])
    with pytest.raises(InputError, match="nothing is left to train on"):
        method.run(task.data, trainer, parse_params(method, ["low=0", "high=1"]))


def test_aux_conf_hands_the_trainer_its_hooks(task, trainer):
    method = resolve_method("aux_conf")
    method.run(task.data, trainer, parse_params(method, ["a_max=0.3", "warmup_frac=0.1"]))
    (call,) = trainer.calls
    assert isinstance(call.hooks, AuxConfHooks)
    assert (call.hooks.a_max, call.hooks.warmup_frac) == (0.3, 0.1)
    assert call.hooks.positive_share == pytest.approx(np.mean(task.data.weak_probs > 0.5))


def test_bootstrap_fits_the_intermediate_first_then_the_strong_model(task, trainer):
    method = resolve_method("bootstrap")
    method.run(task.data, trainer, parse_params(method, []))
    first, second = trainer.calls
    assert (first.model, second.model) == ("mid", "strong")
    np.testing.assert_array_equal(first.targets, task.data.weak_probs)
    # The strong model learns the intermediate model's student-split predictions.
    assert not np.allclose(second.targets, task.data.weak_probs)
    assert np.all((second.targets > 0) & (second.targets < 1))


def test_bootstrap_intermediate_param_and_middle_choice():
    assert pick_intermediate(["m", "s"], None) == "m"
    assert pick_intermediate(["a", "b", "s"], None) == "b"
    assert pick_intermediate(["a", "b", "s"], "a") == "a"
    with pytest.raises(InputError, match="not between the rung's weak and strong"):
        pick_intermediate(["m", "s"], "huge")
    with pytest.raises(InputError, match="not between"):
        pick_intermediate(["m", "s"], "s")  # the strong model is no intermediate
    with pytest.raises(MethodUnsupported):
        pick_intermediate(["s"], None)


def test_bootstrap_with_explicit_intermediate(task, trainer):
    method = resolve_method("bootstrap")
    method.run(task.data, trainer, parse_params(method, ["intermediate=mid"]))
    assert [c.model for c in trainer.calls] == ["mid", "strong"]


def test_em_posterior_refits_the_student_n_rounds_plus_one_times(task, trainer):
    method = resolve_method("em_posterior")
    method.run(task.data, trainer, parse_params(method, ["n_rounds=3", "n_bins=4"]))
    assert [c.model for c in trainer.calls] == ["strong"] * 4
    np.testing.assert_array_equal(trainer.calls[0].targets, task.data.weak_probs)
    final = trainer.calls[-1].targets
    assert np.all((final >= 0) & (final <= 1)) and not np.allclose(final, task.data.weak_probs)


def test_zero_shot_prior_alone_trains_nothing(task, trainer):
    method = resolve_method("zero_shot_prior")
    probs = method.run(task.data, trainer, parse_params(method, ["mix=1"]))
    assert trainer.calls == []
    np.testing.assert_array_equal(probs, trainer.zero_shot_test())


def test_zero_shot_prior_mixes_prior_into_weak_labels(task, trainer):
    method = resolve_method("zero_shot_prior")
    method.run(task.data, trainer, parse_params(method, ["mix=0.25"]))
    (call,) = trainer.calls
    expected = 0.75 * task.data.weak_probs + 0.25 * trainer.zero_shot_student()
    np.testing.assert_allclose(call.targets, expected)


def test_zero_shot_prior_without_label_tokens_is_unsupported(task):
    trainer = FakeTrainer.for_task(task, label_tokens=False)
    method = resolve_method("zero_shot_prior")
    for mix in ("1", "0.5"):
        with pytest.raises(MethodUnsupported, match="zero_shot_prior: .*no label tokens"):
            method.run(task.data, trainer, parse_params(method, [f"mix={mix}"]))
    with pytest.raises(InputError, match="mix"):
        parse_params(method, ["mix=1.5"])


def _seeded_run(name: str, task, trainer_seed: int, global_seed: int) -> np.ndarray:
    """The method's test probabilities with the trainer's seed given and every global random
    generator (random, numpy, torch) set to ``global_seed`` first."""
    random.seed(global_seed)
    np.random.seed(global_seed)
    torch.manual_seed(global_seed)
    method = resolve_method(name)
    trainer = dataclasses.replace(FakeTrainer.for_task(task), seed=trainer_seed)
    return method.run(task.data, trainer, parse_params(method, []))


@pytest.mark.parametrize("name", TRAINED_BUILTINS)
def test_builtins_are_deterministic_in_the_seed(name, task):
    """A built-in's output is a function of the seed it is handed, and of nothing else: global
    random state does not change it (a method drawing from it would not be reproducible), and
    another trainer seed does (the seed reaches the training)."""
    first = _seeded_run(name, task, trainer_seed=0, global_seed=1)
    np.testing.assert_array_equal(first, _seeded_run(name, task, trainer_seed=0, global_seed=2))
    assert not np.array_equal(first, _seeded_run(name, task, trainer_seed=1, global_seed=1))
