"""The label-leak canary: a method whose predictions change with the gold labels reads them.

The caller wires ``run_with_permuted_gold(permutation_seed)`` to the arms: run the method with
the stored gold labels of ``train_unlabel`` and ``test`` replaced by a random permutation of
themselves (seeded by ``permutation_seed``), everything else (weak teacher labels, run seed)
held fixed, and return the method's test probabilities. A sealed method cannot tell the two
runs apart, so it must return identical predictions; any difference is evidence that gold
labels reached it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from w2s_common.errors import InputError


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`audit_label_leak`.

    Attributes:
        clean: True when the predictions agree under every gold permutation (within tolerance).
        evidence: one line a human can read, naming the runs compared and what differed.
        max_abs_diff: the largest |difference| between two runs' probabilities.
        n_differ: how many test examples differ beyond the tolerance.
    """

    clean: bool
    evidence: str
    max_abs_diff: float
    n_differ: int


def _as_probs(values: object, seed: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InputError(f"expected one probability per test example, got shape {array.shape}",
                         field=f"predictions under gold permutation {seed}")
    return array


def compare_predictions(first: np.ndarray, second: np.ndarray, atol: float = 0.0
                        ) -> tuple[float, int]:
    """Largest |first - second| and the number of entries with |diff| > atol (NaN = NaN)."""
    both_nan = np.isnan(first) & np.isnan(second)
    diff = np.where(both_nan, 0.0, np.abs(first - second))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0, int(np.sum(diff > atol))


def follows_labels(first: np.ndarray, second: np.ndarray, labels_first: np.ndarray,
                   labels_second: np.ndarray) -> tuple[int, int, float]:
    """Whether two runs' hard predictions follow their own permuted gold labels.

    On the test examples where the two permutations' labels differ and the two runs' hard
    predictions (``prob > 0.5``) differ, each run predicts either its own permutation's label
    (a *follow*) or the other's. A method that cannot see the labels produces its two runs
    without them, so conditional on its predictions the permutation is a random assignment of
    labels and each such example follows with probability 1/2; a method that reads the labels
    follows on most of them. One-sided exact sign test (binomial, p = 1/2; scipy's
    ``binomtest``): robust to an engine whose runs differ by noise (GPU kernels that are not
    bitwise deterministic), since noise does not know the labels.

    Args:
        first, second: ``(n_test,)`` P(label 1) of the runs under the two permutations.
        labels_first, labels_second: the permutations' test labels (0/1), same order.

    Returns:
        ``(follows, examples, p)``: the examples that follow, of those that count, and the
        one-sided p-value (1.0 when none count).
    """
    from scipy.stats import binomtest

    pred_first, pred_second = first > 0.5, second > 0.5
    counted = (np.asarray(labels_first) != np.asarray(labels_second)) & (pred_first != pred_second)
    examples = int(counted.sum())
    follows = int((pred_first[counted] == (np.asarray(labels_first)[counted] == 1)).sum())
    if examples == 0:
        return 0, 0, 1.0
    return follows, examples, float(binomtest(follows, examples, 0.5, alternative="greater").pvalue)


def audit_label_leak(run_with_permuted_gold: Callable[[int], np.ndarray], *,
                     permutation_seeds: tuple[int, int] = (1, 2), atol: float = 0.0,
                     check_determinism: bool = False,
                     labels_for: Callable[[int], np.ndarray] | None = None,
                     alpha: float = 0.001) -> AuditResult:
    """Run a method under two gold-label permutations and flag it if its predictions differ
    (``labels_for`` unset: the exact rule) or follow the labels (``labels_for`` set).

    Args:
        run_with_permuted_gold: ``permutation_seed -> (n_test,)`` probabilities (see the module
            docstring); it must hold the run seed and the weak labels fixed.
        permutation_seeds: two different permutation seeds.
        atol: largest |difference| still counted as equal (0 = exact equality; use a small
            tolerance only for engines that are not bitwise deterministic).
        check_determinism: also rerun the first permutation; if that rerun differs the method
            is nondeterministic, the comparison proves nothing, and the result is not clean.
        labels_for: ``permutation_seed -> (n_test,)`` that permutation's test labels: then
            predictions that differ are flagged only if they follow the labels
            (:func:`follows_labels`, one-sided p below ``alpha``), for engines whose runs are
            not bitwise reproducible.
        alpha: level of that test (each audited cell's false-flag rate).

    Returns:
        :class:`AuditResult`.

    Raises:
        InputError: equal seeds, negative tolerance, or predictions of mismatched shapes.
    """
    first_seed, second_seed = permutation_seeds
    if first_seed == second_seed:
        raise InputError("the two gold permutations must differ", field="permutation_seeds")
    if not atol >= 0:
        raise InputError(f"expected a tolerance >= 0, got {atol}", field="atol")
    first = _as_probs(run_with_permuted_gold(first_seed), first_seed)
    if check_determinism:
        rerun = _as_probs(run_with_permuted_gold(first_seed), first_seed)
        if rerun.shape != first.shape:
            return AuditResult(False, f"nondeterministic: two runs under gold permutation "
                               f"{first_seed} returned {first.shape[0]} and {rerun.shape[0]} "
                               f"predictions", float("inf"), max(len(first), len(rerun)))
        max_diff, n_differ = compare_predictions(first, rerun, atol)
        if n_differ:
            return AuditResult(False, f"nondeterministic: two runs under the same gold "
                               f"permutation {first_seed} differ on {n_differ}/{len(first)} "
                               f"test examples (max |diff| {max_diff:.3g}); the canary cannot "
                               f"judge it: make the method deterministic in its seed",
                               max_diff, n_differ)
    second = _as_probs(run_with_permuted_gold(second_seed), second_seed)
    if first.shape != second.shape:
        raise InputError(f"runs returned {first.shape[0]} and {second.shape[0]} predictions",
                         field="predictions")
    max_diff, n_differ = compare_predictions(first, second, atol)
    rule = "exactly" if atol == 0 else f"within {atol:g}"
    if n_differ and labels_for is not None:
        follows, examples, p = follows_labels(first, second, labels_for(first_seed),
                                              labels_for(second_seed))
        shown = (f"predictions under gold permutations {first_seed} and {second_seed} differ on "
                 f"{n_differ}/{len(first)} test examples (max |diff| {max_diff:.3g}); where "
                 f"both the labels and the predicted labels differ, each run predicted its own "
                 f"permutation's label on {follows} of {examples} (one-sided sign test p = "
                 f"{p:.3g}, flagged below {alpha:g})")
        if p < alpha:
            return AuditResult(False, f"label leak: {shown}: the method's output follows the "
                               "gold labels", max_diff, n_differ)
        return AuditResult(True, f"clean (not bitwise reproducible): {shown}", max_diff,
                           n_differ)
    if n_differ:
        return AuditResult(False, f"label leak: predictions under gold permutations {first_seed} "
                           f"and {second_seed} differ on {n_differ}/{len(first)} test examples "
                           f"(max |diff| {max_diff:.3g}); the method's output depends on the "
                           f"gold labels", max_diff, n_differ)
    return AuditResult(True, f"clean: predictions under gold permutations {first_seed} and "
                       f"{second_seed} agree {rule} on all {len(first)} test examples",
                       max_diff, 0)
