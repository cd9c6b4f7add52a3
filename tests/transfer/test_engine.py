"""The engine in one process: determinism, hooks, frozen parameters, ZeRO stages, precision."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from transfer.engine import EngineConfig, TrainHooks, predict, soft_cross_entropy, train
from transfer.engine.selfcheck import run as selfcheck_run


def _probe_task(n_rows: int = 400, dim: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n_rows, dim, generator=gen)
    labels = (features[:, 0] + 0.3 * features[:, 1] > 0).long()
    return {"features": features}, nn.functional.one_hot(labels, 2).float(), labels


class Probe(nn.Module):
    """A frozen random projection (the 'body') and a trainable 2-way head."""

    def __init__(self, dim: int = 16, hidden: int = 8, freeze_body: bool = True) -> None:
        super().__init__()
        self.body = nn.Linear(dim, hidden)
        self.head = nn.Linear(hidden, 2)
        self.body.requires_grad_(not freeze_body)

    def forward(self, features, row_id=None):
        return self.head(torch.tanh(self.body(features)))


def _accuracy(probs: np.ndarray, labels: torch.Tensor) -> float:
    return float(((probs > 0.5) == labels.numpy().astype(bool)).mean())


FAST = dict(epochs=3, lr=5e-2, batch_size=32)


def test_determinism_same_seed_identical_other_seed_differs():
    first, second = selfcheck_run(seed=0), selfcheck_run(seed=0)
    other = selfcheck_run(seed=1)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 1e-2


def test_linear_probe_learns_and_predict_keeps_row_order():
    inputs, targets, labels = _probe_task()
    torch.manual_seed(0)
    model = Probe(freeze_body=False)
    config = EngineConfig(**FAST)
    train(model, inputs, targets, config=config)
    probs = predict(model, inputs, config=config.model_copy(update={"predict_batch_size": 7}))
    assert probs.shape == (400,) and probs.dtype == np.float64
    assert _accuracy(probs, labels) > 0.9
    reversed_rows = {"features": inputs["features"].flip(0)}
    np.testing.assert_allclose(predict(model, reversed_rows, config=config)[::-1], probs,
                               atol=1e-6)


@pytest.mark.parametrize("ds_config", ["zero0", "zero2", "zero3"])
def test_frozen_parameters_stay_frozen(ds_config):
    inputs, targets, _ = _probe_task()
    torch.manual_seed(0)
    model = Probe(freeze_body=True)
    body_before = {k: v.clone() for k, v in model.body.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    train(model, inputs, targets, config=EngineConfig(**FAST, ds_config=ds_config))
    for name, value in model.body.state_dict().items():
        torch.testing.assert_close(value, body_before[name], rtol=0, atol=0)
    assert all(not p.requires_grad for p in model.body.parameters())
    assert any(not torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())


def test_zero_stages_agree_and_module_is_reusable():
    """ZeRO-2/3 partition optimizer state (and parameters) but must compute the same updates;
    after ZeRO-3 the module is plain again and can be trained a second time."""
    results = {}
    for ds_config in ("zero0", "zero2", "zero3", "zero3_offload"):
        results[ds_config] = selfcheck_run(seed=0, ds_config=ds_config)
    for name, probs in results.items():
        np.testing.assert_allclose(probs, results["zero0"], atol=1e-5, err_msg=name)

    inputs, targets, labels = _probe_task()
    torch.manual_seed(0)
    model = Probe(freeze_body=False)
    config = EngineConfig(**FAST, ds_config="zero3")
    train(model, inputs, targets, config=config)
    assert not any(hasattr(p, "ds_id") for p in model.parameters())
    train(model, inputs, 1 - targets, config=config)  # retrain the same module on flipped labels
    assert _accuracy(predict(model, inputs, config=config), labels) < 0.2


class RecordingHooks(TrainHooks):
    """Flips targets, zeroes the weight of odd rows, and records what each step sees."""

    def __init__(self) -> None:
        self.progress: list[float] = []
        self.batch_rows: list[int] = []
        self.min_weight = float("inf")

    def prepare(self, targets, weights):
        weights = weights.clone()
        weights[1::2] = 0.0
        return targets.flip(1), weights

    def loss(self, logits, targets, weights, progress):
        self.progress.append(progress)
        self.batch_rows.append(len(weights))
        self.min_weight = min(self.min_weight, float(weights.min()))
        return soft_cross_entropy(logits, targets, weights)


class RowTrackingProbe(Probe):
    def __init__(self) -> None:
        super().__init__(freeze_body=False)
        self.seen_rows: set[int] = set()

    def forward(self, features, row_id=None):
        if self.training:
            self.seen_rows.update(row_id.tolist())
        return super().forward(features)


def test_hooks_prepare_reshapes_targets_drops_zero_weights_and_loss_is_used():
    inputs, targets, labels = _probe_task()
    inputs = {**inputs, "row_id": torch.arange(len(labels))}
    hooks = RecordingHooks()
    torch.manual_seed(0)
    model = RowTrackingProbe()
    config = EngineConfig(**FAST)
    train(model, inputs, targets, hooks=hooks, config=config)

    kept = len(labels) // 2
    steps = FAST["epochs"] * -(-kept // FAST["batch_size"])
    assert model.seen_rows == set(range(0, len(labels), 2))  # odd rows never reach the model
    assert hooks.min_weight > 0
    assert sum(hooks.batch_rows) == FAST["epochs"] * kept
    assert hooks.progress == [step / steps for step in range(steps)]
    # Trained on flipped targets: the probe predicts the opposite of the true label.
    assert _accuracy(predict(model, inputs, config=config), labels) < 0.25


class ConstantClassZeroLoss(TrainHooks):
    def loss(self, logits, targets, weights, progress):
        return -torch.log_softmax(logits, dim=-1)[:, 0].mean()


def test_custom_loss_replaces_default():
    inputs, targets, _ = _probe_task()
    torch.manual_seed(0)
    model = Probe(freeze_body=False)
    config = EngineConfig(**FAST)
    train(model, inputs, targets, hooks=ConstantClassZeroLoss(), config=config)
    assert predict(model, inputs, config=config).max() < 0.2


def test_weighted_soft_cross_entropy_formula():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[0.7, 0.3], [0.0, 1.0]])
    weights = torch.tensor([2.0, 0.5])
    log_p = torch.log_softmax(logits, dim=-1)
    expected = (2.0 * -(0.7 * log_p[0, 0] + 0.3 * log_p[0, 1]) + 0.5 * -log_p[1, 1]) / 2
    torch.testing.assert_close(soft_cross_entropy(logits, targets, weights), expected)


def test_bf16_precision_trains_on_cpu():
    inputs, targets, labels = _probe_task()
    torch.manual_seed(0)
    model = Probe(freeze_body=False)
    config = EngineConfig(**FAST, precision="bf16")
    train(model, inputs, targets, config=config)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert _accuracy(predict(model, inputs, config=config), labels) > 0.85


def test_bad_shapes_are_reported():
    model = Probe()
    with pytest.raises(ValueError, match=r"targets must have shape \(10, 2\)"):
        train(model, {"features": torch.randn(10, 16)}, torch.rand(10, 3), config=EngineConfig())
    with pytest.raises(ValueError, match="equal lengths"):
        train(model, {"features": torch.randn(10, 16), "row_id": torch.arange(9)},
              torch.rand(10, 2), config=EngineConfig())
