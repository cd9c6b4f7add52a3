"""Controls are built on the trusted side: gold labels only here, never in untrusted code; the
synthetic spike-in adds exactly the gain it states, the null control adds nothing but new
training randomness (transfer.controls, transfer.arms.run_arm(control=...))."""
from __future__ import annotations

import numpy as np
import pytest

from transfer.arms import run_arm
from transfer.controls import ControlSpec, check_trusted
from transfer.student import STUDENT_SPLIT, TEST_SPLIT
from w2s_common.errors import InputError

FINGERPRINT = "ab" * 32


class Recorder:
    """A built-in-like baseline (trusted) that records what it is handed and predicts a fixed
    rule of the weak labels, so accuracies differ only by what the control changes."""

    runs_untrusted_code = False

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, int]] = []

    def __call__(self, data, trainer):
        self.seen.append((np.array(data.weak_probs), data.seed))
        # Test predictions: a constant (every test example predicted 0).
        return np.zeros(len(data.test_ids))


def _student(ctx, fn, control=None, seed=0):
    return run_arm(ctx, "m0", "student", seed, method="vanilla", method_fn=fn,
                   method_fingerprint=FINGERPRINT, control=control)


@pytest.mark.parametrize("fn", [lambda d, t: None, type("Plugin", (), {
    "runs_untrusted_code": True, "__call__": lambda self, d, t: None})()])
def test_a_control_refuses_a_baseline_it_does_not_trust_before_any_compute(micro_ctx, fn):
    for control in (ControlSpec("null", "n"), ControlSpec("synthetic_spike_in", "s", gain=0.01),
                    ControlSpec("spike_in", "g", gold_fraction=0.5)):
        with pytest.raises(InputError, match="does not trust.*built-in baseline"):
            _student(micro_ctx, fn, control)
        with pytest.raises(InputError, match="built-in baseline"):
            check_trusted(fn, control, "vanilla")
    assert micro_ctx.store.executed == []  # not even the weak teacher ran


def test_null_and_synthetic_controls_replicate_the_baseline_and_add_exactly_the_gain(micro_ctx):
    fn = Recorder()
    baseline = _student(micro_ctx, fn)
    null = _student(micro_ctx, fn, ControlSpec("null", "rep"))
    plus = _student(micro_ctx, fn, ControlSpec("synthetic_spike_in", "plus", gain=0.05))
    (base_weak, base_seed), (null_weak, null_seed), (plus_weak, plus_seed) = fn.seen
    # Same weak labels (the same weak run: paired by seed), no gold in them, own training seeds.
    np.testing.assert_array_equal(null_weak, base_weak)
    np.testing.assert_array_equal(plus_weak, base_weak)
    assert len({base_seed, null_seed, plus_seed}) == 3
    assert null.spec.method == "control:null:rep"
    assert null.spec.depends_on == baseline.spec.depends_on
    assert null.metrics["accuracy"] == baseline.metrics["accuracy"]  # the rule ignores the seed
    n_test = len(micro_ctx.task.splits[TEST_SPLIT].labels)
    added = round(0.05 * n_test) / n_test
    assert plus.metrics["accuracy"] == pytest.approx(baseline.metrics["accuracy"] + added)
    assert plus.metrics["control"]["corrected"] == round(0.05 * n_test)
    # Keys: the control's runs are apart from the baseline's and from each other's.
    assert len({baseline.spec.run_hash(), null.spec.run_hash(), plus.spec.run_hash()}) == 3


def test_spike_in_trains_on_gold_labels_for_the_stated_fraction(micro_ctx):
    fn = Recorder()
    _student(micro_ctx, fn)
    record = _student(micro_ctx, fn, ControlSpec("spike_in", "half", gold_fraction=0.5))
    (weak, _), (mixed, _) = fn.seen
    gold = np.asarray(micro_ctx.task.splits[STUDENT_SPLIT].labels, dtype=float)
    replaced = np.flatnonzero(mixed != weak)
    assert record.metrics["control"]["gold_labels_used"] == round(0.5 * len(weak))
    # Every changed target is the gold label; unchanged ones are the weak soft labels.
    np.testing.assert_array_equal(mixed[replaced], gold[replaced])
    assert len(replaced) <= round(0.5 * len(weak))
    assert len(replaced) > 0.3 * len(weak)  # weak soft labels are rarely exactly 0 or 1


def test_synthetic_gain_larger_than_the_errors_is_refused(micro_ctx):
    class Perfect(Recorder):
        def __call__(self, data, trainer):
            super().__call__(data, trainer)
            return np.zeros(len(data.test_ids)) + 0.4  # wrong on every gold-1 example

    with pytest.raises(InputError, match="lower the gain"):
        _student(micro_ctx, Perfect(), ControlSpec("synthetic_spike_in", "big", gain=0.95))
