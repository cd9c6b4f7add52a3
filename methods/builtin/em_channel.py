"""Noisy-channel EM for weak labels (pure numpy).

Model: each student example has a latent true label y in {0, 1}; the weak teacher emits an
observation symbol o (its probability binned, see :func:`weak_symbols`) through a channel
``p(o | y)``; the strong student supplies a per-example prior ``p_student(y | x)``.

EM (Dempster, Laird and Rubin 1977) alternates
    E-step:  q_i(y) ∝ p_student(y | x_i) · p(o_i | y)
    M-step:  p(o | y) = (alpha + sum_i q_i(y) [o_i = o]) / (alpha·S + sum_i q_i(y))
with add-alpha smoothing over the S symbols. The W2S use (the "em_posterior" method found by
the automated W2S research sandbox) retrains the student on q between EM runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Binning = Literal["confidence", "prob"]


def weak_symbols(weak_probs: np.ndarray, n_bins: int, binning: Binning = "confidence"
                 ) -> tuple[np.ndarray, int]:
    """Map weak probabilities P(label 1) to discrete channel symbols.

    ``binning="prob"``: K equal-count (quantile) bins of p itself, symbols 0..K-1.
    ``binning="confidence"``: K equal-count bins of the confidence |p - 0.5|, crossed with the
    weak hard label (p > 0.5), symbols 0..2K-1 (symbol = 2·bin + hard label), so the channel
    models p(weak label | y, confidence bin) · p(bin | y).
    Quantile edges that coincide (many equal probabilities) are merged, so K is an upper bound.

    Args:
        weak_probs: ``(N,)`` weak P(label 1).
        n_bins: K >= 1.
        binning: ``"confidence"`` or ``"prob"``.

    Returns:
        ``(symbols (N,) int, n_symbols)``.
    """
    p = np.asarray(weak_probs, dtype=np.float64)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    values = np.abs(p - 0.5) if binning == "confidence" else p
    inner_edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bins = np.searchsorted(inner_edges, values, side="right")
    n_used = len(inner_edges) + 1
    if binning == "confidence":
        return 2 * bins + (p > 0.5).astype(np.int64), 2 * n_used
    return bins.astype(np.int64), n_used


@dataclass(frozen=True)
class ChannelFit:
    """Result of :func:`fit_noisy_channel`.

    Attributes:
        posterior: ``(N,)`` q_i(y = 1).
        channel: ``(2, S)`` p(o | y), rows sum to 1.
        n_iter: EM iterations run.
        converged: whether the posterior moved less than ``tol`` before ``max_iter``.
    """

    posterior: np.ndarray
    channel: np.ndarray
    n_iter: int
    converged: bool


def channel_m_step(posterior: np.ndarray, symbols: np.ndarray, n_symbols: int,
                   alpha: float = 1.0) -> np.ndarray:
    """``p(o | y)`` from soft counts: ``(alpha + sum_i q_i(y)[o_i=o]) / (alpha·S + sum_i q_i(y))``.

    Returns:
        ``(2, n_symbols)`` channel, rows sum to 1.
    """
    q1 = np.asarray(posterior, dtype=np.float64)
    counts = np.stack([np.bincount(symbols, weights=1.0 - q1, minlength=n_symbols),
                       np.bincount(symbols, weights=q1, minlength=n_symbols)])
    counts = counts + alpha
    return counts / counts.sum(axis=1, keepdims=True)


def posterior_e_step(student_p1: np.ndarray, symbols: np.ndarray, channel: np.ndarray
                     ) -> np.ndarray:
    """``q_i(1) = p_s(1|x_i) p(o_i|1) / sum_y p_s(y|x_i) p(o_i|y)`` (computed in log space)."""
    eps = 1e-12
    p1 = np.clip(np.asarray(student_p1, dtype=np.float64), eps, 1 - eps)
    log_one = np.log(p1) + np.log(channel[1, symbols])
    log_zero = np.log1p(-p1) + np.log(channel[0, symbols])
    return 1.0 / (1.0 + np.exp(log_zero - log_one))


def fit_noisy_channel(student_p1: np.ndarray, symbols: np.ndarray, n_symbols: int,
                      initial_posterior: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6,
                      alpha: float = 1.0) -> ChannelFit:
    """Run EM for the channel ``p(o | y)`` with a fixed per-example prior ``p_student(y | x)``.

    Args:
        student_p1: ``(N,)`` the student's P(y = 1 | x_i), the prior of the E-step.
        symbols: ``(N,)`` weak observation symbols in ``[0, n_symbols)``.
        n_symbols: S.
        initial_posterior: ``(N,)`` starting q(y = 1) (e.g. the weak probabilities).
        max_iter: EM iteration cap.
        tol: stop when max |Δq| < tol.
        alpha: add-alpha smoothing of the channel counts.

    Returns:
        :class:`ChannelFit` with the final posterior and channel.
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    posterior = np.asarray(initial_posterior, dtype=np.float64).copy()
    channel = channel_m_step(posterior, symbols, n_symbols, alpha)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        updated = posterior_e_step(student_p1, symbols, channel)
        channel = channel_m_step(updated, symbols, n_symbols, alpha)
        delta = float(np.max(np.abs(updated - posterior))) if len(updated) else 0.0
        posterior = updated
        if delta < tol:
            converged = True
            break
    return ChannelFit(posterior, channel, n_iter, converged)
