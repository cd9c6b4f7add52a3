"""How a W2S method reshapes what the engine trains on: `TrainHooks` and the default loss."""
from __future__ import annotations

import torch
from torch import Tensor


def soft_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Weighted soft cross-entropy, averaged over the rows of the batch.

    ``mean_i w_i * (-sum_c t_ic * log softmax(z_i)_c)`` (the cross-entropy of soft labels, as in
    Burns et al. 2023, "Weak-to-strong generalization", with per-row weights).

    Args:
        logits: ``(B, C)`` raw scores.
        targets: ``(B, C)`` probabilities (rows sum to 1).
        weights: ``(B,)`` non-negative row weights.

    Returns:
        a scalar tensor (computed in float32 even for bf16 logits).
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    per_row = -(targets.float() * log_probs).sum(dim=-1)
    return (weights.float() * per_row).mean()


class TrainHooks:
    """Subclass to change targets, weights or the loss of an engine run.

    The engine calls `prepare` once on the full training set before batching (rows whose
    weight is then 0 are dropped), and `loss` on every step's (local) batch.
    """

    def prepare(self, targets: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Return the targets ``(N, 2)`` and weights ``(N,)`` to train on (default: unchanged).

        Args:
            targets: soft targets, ``(N, 2)`` float32, rows summing to 1.
            weights: row weights, ``(N,)`` float32 (all ones when the caller gave none).
        """
        return targets, weights

    def loss(self, logits: Tensor, targets: Tensor, weights: Tensor, progress: float) -> Tensor:
        """The scalar loss of one batch (default: `soft_cross_entropy`).

        Args:
            logits: ``(B, 2)`` model outputs for the batch.
            targets: ``(B, 2)`` the batch's rows of the prepared targets.
            weights: ``(B,)`` the batch's prepared weights.
            progress: ``step / total_steps`` in ``[0, 1)``.

        Returns:
            a scalar that is a mean over the batch's rows (the engine rescales it so that data
            parallelism averages over the global batch).
        """
        return soft_cross_entropy(logits, targets, weights)
