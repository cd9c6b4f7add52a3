"""The auxiliary confidence loss: a=0 is plain CE, linear warm-up, hardening, no gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.builtin.aux_conf_hooks import AuxConfHooks, batch_quantile_hardening, linear_warmup
from transfer.engine.hooks import soft_cross_entropy


def _batch(seed: int = 0, size: int = 32):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(size, 2, generator=generator, requires_grad=True)
    p1 = torch.rand(size, generator=generator)
    targets = torch.stack([1 - p1, p1], dim=-1)
    weights = torch.rand(size, generator=generator)
    return logits, targets, weights


def _prepared(a_max=0.5, warmup_frac=0.2, share_targets=None) -> AuxConfHooks:
    hooks = AuxConfHooks(a_max=a_max, warmup_frac=warmup_frac)
    p1 = torch.tensor([0.9, 0.8, 0.2, 0.1]) if share_targets is None else share_targets
    hooks.prepare(torch.stack([1 - p1, p1], dim=-1), torch.ones(len(p1)))
    return hooks


@pytest.mark.parametrize("progress", [0.0, 0.5, 0.99])
def test_equals_plain_cross_entropy_when_a_is_zero(progress):
    logits, targets, weights = _batch()
    hooks = _prepared(a_max=0.0)
    expected = -(weights * (targets * torch.log_softmax(logits, -1)).sum(-1)).mean()
    torch.testing.assert_close(hooks.loss(logits, targets, weights, progress), expected)


def test_equals_plain_cross_entropy_at_the_first_step():
    logits, targets, weights = _batch(1)
    torch.testing.assert_close(_prepared().loss(logits, targets, weights, 0.0),
                               soft_cross_entropy(logits, targets, weights))


def test_warmup_is_linear_to_a_max_then_flat():
    hooks = AuxConfHooks(a_max=0.5, warmup_frac=0.2)
    assert [hooks.coefficient(p) for p in (0.0, 0.1, 0.2, 0.5)] == pytest.approx(
        [0.0, 0.25, 0.5, 0.5])
    # Smooth: no jump anywhere on a fine grid.
    grid = np.linspace(0, 0.999, 2000)
    values = np.array([hooks.coefficient(p) for p in grid])
    assert np.max(np.abs(np.diff(values))) <= 0.5 / 0.2 * (grid[1] - grid[0]) + 1e-12
    assert linear_warmup(0.3, 0.4, 0.0) == 0.4


def test_hardening_matches_the_weak_class_balance():
    student_p1 = torch.tensor([0.9, 0.1, 0.6, 0.4, 0.55, 0.3, 0.8, 0.2])
    hard = batch_quantile_hardening(student_p1, positive_share=0.25)
    assert hard[:, 1].tolist() == [1, 0, 0, 0, 0, 0, 1, 0]
    np.testing.assert_array_equal(hard.sum(-1).numpy(), 1.0)
    # The threshold is a batch quantile, not 0.5: 3 of 4 get label 1 even though all < 0.5.
    low = batch_quantile_hardening(torch.tensor([0.1, 0.2, 0.3, 0.05]), positive_share=0.75)
    assert low[:, 1].tolist() == [1, 1, 1, 0]


def test_prepare_records_the_class_balance_of_the_whole_split():
    p1 = torch.tensor([0.9, 0.7, 0.6, 0.2, 0.1])
    hooks = AuxConfHooks()
    targets, weights = torch.stack([1 - p1, p1], -1), torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    out_targets, out_weights = hooks.prepare(targets, weights)
    assert out_targets is targets and out_weights is weights
    assert hooks.positive_share == pytest.approx(3 / 4)  # dropped rows do not count


def test_loss_is_ce_against_the_mixed_target_and_hard_targets_carry_no_gradient():
    logits, targets, weights = _batch(2)
    hooks = _prepared(share_targets=torch.rand(100, generator=torch.Generator().manual_seed(3)))
    progress = 0.1
    a = hooks.coefficient(progress)
    loss = hooks.loss(logits, targets, weights, progress)
    loss.backward()
    grad = logits.grad.clone()
    # Reference: hard targets computed separately and treated as constants.
    fixed_logits = logits.detach().clone().requires_grad_(True)
    hard = batch_quantile_hardening(torch.softmax(fixed_logits.detach(), -1)[:, 1],
                                    hooks.positive_share)
    reference = ((1 - a) * soft_cross_entropy(fixed_logits, targets, weights)
                 + a * soft_cross_entropy(fixed_logits, hard, weights))
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, fixed_logits.grad)


def test_loss_before_prepare_is_a_programming_error():
    logits, targets, weights = _batch()
    with pytest.raises(RuntimeError, match="before prepare"):
        AuxConfHooks().loss(logits, targets, weights, 0.5)
