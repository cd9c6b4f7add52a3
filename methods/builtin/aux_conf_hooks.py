"""Training hooks of the built-in methods, on torch tensors.

The engine (``transfer.engine``) calls ``prepare(targets, weights)`` once before training and
``loss(logits, targets, weights, progress)`` per step. The classes subclass
``transfer.engine.TrainHooks`` and use only that protocol, so any trainer honouring it works.
``targets`` are soft label distributions of shape ``(N, 2)`` (column 1 is P(label 1)).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from transfer.engine.hooks import TrainHooks, soft_cross_entropy

__all__ = ["AuxConfHooks", "batch_quantile_hardening", "linear_warmup", "soft_cross_entropy"]


def linear_warmup(progress: float, a_max: float, warmup_frac: float) -> float:
    """Auxiliary weight a(progress) = a_max * min(1, progress / warmup_frac).

    Linear from 0 at the first step to ``a_max`` at ``warmup_frac`` of training, then flat:
    continuous everywhere (Burns et al.'s reference code instead sets a = progress until
    ``warmup_frac`` and jumps to 1 after it; the issue asks for a smooth warm-up).
    ``warmup_frac == 0`` means no warm-up.
    """
    if warmup_frac <= 0:
        return a_max
    return a_max * min(1.0, max(0.0, progress) / warmup_frac)


def batch_quantile_hardening(student_p1: torch.Tensor, positive_share: float) -> torch.Tensor:
    """Harden the student's P(label 1) at the batch quantile matching the weak class balance.

    The ``round(positive_share * B)`` examples with the highest P(label 1) get label 1, the
    rest label 0: thresholding at the ``(1 - positive_share)`` batch quantile, with ties broken
    by position so that the hardened batch has exactly the weak labels' class balance.
    (Burns et al. 2023, arXiv:2312.09390, auxiliary confidence loss.)

    Args:
        student_p1: ``(B,)`` student probabilities of label 1 (no gradient needed).
        positive_share: share of weak labels with P(label 1) > 0.5 over the student split.

    Returns:
        ``(B, 2)`` one-hot float targets, detached.
    """
    batch = student_p1.shape[0]
    n_positive = int(round(positive_share * batch))
    hard_p1 = torch.zeros(batch, dtype=torch.float32, device=student_p1.device)
    if n_positive > 0:
        top = torch.topk(student_p1.detach().float(), k=min(n_positive, batch)).indices
        hard_p1[top] = 1.0
    return torch.stack([1.0 - hard_p1, hard_p1], dim=-1)


def _p1_column(targets: Any) -> np.ndarray:
    array = targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else \
        np.asarray(targets)
    return array[:, 1] if array.ndim == 2 else array


class AuxConfHooks(TrainHooks):
    """Auxiliary confidence loss (Burns et al. 2023, "Weak-to-Strong Generalization",
    arXiv:2312.09390, section 4.3.2):

        L = (1 - a) * CE(f, f_w) + a * CE(f, hard_t(f)),   a = a_max * min(1, progress/warmup)

    ``f_w`` are the weak soft labels, ``hard_t(f)`` the student's own predictions hardened at
    the batch quantile matching the weak labels' class balance (``batch_quantile_hardening``),
    detached so that the hard targets carry no gradient. Since CE is linear in its target, this
    is CE against the mixed target ``(1 - a) f_w + a hard_t(f)``, weighted like the default loss.

    Args:
        a_max: final weight of the self-training term.
        warmup_frac: share of training over which ``a`` rises linearly from 0 to ``a_max``.
    """

    def __init__(self, a_max: float = 0.5, warmup_frac: float = 0.2) -> None:
        self.a_max = float(a_max)
        self.warmup_frac = float(warmup_frac)
        self.positive_share: float | None = None

    def prepare(self, targets: Any, weights: Any) -> tuple[Any, Any]:
        """Record the weak class balance (share of kept rows with P(label 1) > 0.5)."""
        p1 = _p1_column(targets)
        keep = np.ones(len(p1), dtype=bool)
        if weights is not None:
            w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else \
                np.asarray(weights)
            keep = w > 0
        self.positive_share = float(np.mean(p1[keep] > 0.5)) if keep.any() else 0.5
        return targets, weights

    def coefficient(self, progress: float) -> float:
        """The auxiliary weight ``a`` at ``progress`` in [0, 1)."""
        return linear_warmup(progress, self.a_max, self.warmup_frac)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
             progress: float) -> torch.Tensor:
        """The mixed-target loss of the current batch (see the class docstring)."""
        if self.positive_share is None:
            raise RuntimeError("AuxConfHooks.loss called before prepare()")
        a = self.coefficient(progress)
        if a == 0.0:
            return soft_cross_entropy(logits, targets, weights)
        with torch.no_grad():
            student_p1 = torch.softmax(logits.float(), dim=-1)[:, 1]
            hardened = batch_quantile_hardening(student_p1, self.positive_share)
        mixed = (1.0 - a) * targets.float() + a * hardened.to(targets.device)
        return soft_cross_entropy(logits, mixed, weights)
