"""The noisy-channel EM core recovers a known channel on simulated labels."""
from __future__ import annotations

import numpy as np
import pytest

from methods.builtin.em_channel import (
    channel_m_step,
    fit_noisy_channel,
    posterior_e_step,
    weak_symbols,
)


def _simulate(n: int, channel: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    # A calibrated but uncertain student: p_s(y=1|x) = sigmoid(score), y ~ Bernoulli(p_s).
    score = rng.normal(0, 1.5, size=n)
    student_p1 = 1 / (1 + np.exp(-score))
    y = (rng.random(n) < student_p1).astype(int)
    symbols = np.array([rng.choice(channel.shape[1], p=channel[label]) for label in y])
    return y, student_p1, symbols


def test_em_recovers_a_known_confusion_channel():
    true_channel = np.array([[0.45, 0.25, 0.15, 0.10, 0.05],   # p(o | y = 0)
                             [0.05, 0.10, 0.20, 0.25, 0.40]])  # p(o | y = 1)
    y, student_p1, symbols = _simulate(20000, true_channel, seed=0)
    fit = fit_noisy_channel(student_p1, symbols, 5, initial_posterior=np.full(len(y), 0.5),
                            max_iter=500, tol=1e-9)
    assert fit.converged
    np.testing.assert_allclose(fit.channel, true_channel, atol=0.03)
    # The posterior is better calibrated for y than the student prior alone.
    log_loss = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))  # noqa: E731
    assert log_loss(fit.posterior) < log_loss(student_p1) - 0.05


def test_e_step_is_bayes_rule():
    channel = np.array([[0.8, 0.2], [0.3, 0.7]])
    q = posterior_e_step(np.array([0.5, 0.9]), np.array([1, 0]), channel)
    expected0 = 0.5 * 0.7 / (0.5 * 0.7 + 0.5 * 0.2)
    expected1 = 0.9 * 0.3 / (0.9 * 0.3 + 0.1 * 0.8)
    np.testing.assert_allclose(q, [expected0, expected1])


def test_m_step_counts_soft_assignments_with_smoothing():
    channel = channel_m_step(np.array([1.0, 0.0, 0.5]), np.array([0, 1, 1]), 2, alpha=0.0)
    np.testing.assert_allclose(channel, [[0.0, 1.0], [1 / 1.5, 0.5 / 1.5]])
    smoothed = channel_m_step(np.array([1.0]), np.array([0]), 3, alpha=1.0)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert np.all(smoothed > 0)


def test_weak_symbols_by_confidence_cross_the_weak_label():
    p = np.array([0.05, 0.95, 0.45, 0.55, 0.3, 0.7])
    symbols, n_symbols = weak_symbols(p, n_bins=3, binning="confidence")
    assert n_symbols == 6
    np.testing.assert_array_equal(symbols % 2, (p > 0.5).astype(int))
    # Equal confidences share a bin; opposite labels get different symbols.
    assert symbols[0] // 2 == symbols[1] // 2 and symbols[0] != symbols[1]
    assert symbols[2] // 2 < symbols[4] // 2 < symbols[0] // 2


def test_weak_symbols_by_probability_are_ordered_quantile_bins():
    p = np.linspace(0.01, 0.99, 100)
    symbols, n_symbols = weak_symbols(p, n_bins=5, binning="prob")
    assert n_symbols == 5
    assert np.all(np.diff(symbols) >= 0)
    np.testing.assert_array_equal(np.bincount(symbols), [20] * 5)


def test_weak_symbols_merge_empty_bins_of_tied_probabilities():
    symbols, n_symbols = weak_symbols(np.full(10, 0.7), n_bins=5, binning="confidence")
    assert n_symbols <= 4 and len(set(symbols)) == 1  # 5 requested bins collapse
    with pytest.raises(ValueError):
        weak_symbols(np.full(3, 0.7), n_bins=0)
