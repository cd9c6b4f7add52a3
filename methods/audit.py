"""The label-leak canary: a method whose predictions change with the gold labels reads them.

The caller wires ``run_with_permuted_gold(permutation_seed)`` to the arms: run the method with
the stored gold labels of ``train_unlabel`` and ``test`` replaced by a random permutation of
themselves (seeded by ``permutation_seed``), everything else (weak teacher labels, run seed)
held fixed, and return the method's test probabilities. A sealed method cannot tell the two
runs apart, so it must return identical predictions; any difference is evidence that gold
labels reached it.
"""
from __future__ import annotations

import itertools
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
    follows on most of them, or, answering the opposite of permuted labels it recognises as
    such, on almost none. Two-sided exact sign test (binomial, p = 1/2; scipy's ``binomtest``;
    one-sided, the opposite answer passed: found by an independent attacker review,
    2026-12-04): robust to an engine whose runs differ by noise (GPU kernels that are not
    bitwise deterministic), since noise does not know the labels.

    Args:
        first, second: ``(n_test,)`` P(label 1) of the runs under the two permutations.
        labels_first, labels_second: the permutations' test labels (0/1), same order.

    Returns:
        ``(follows, examples, p)``: the examples that follow, of those that count, and the
        two-sided p-value (1.0 when none count).
    """
    from scipy.stats import binomtest

    pred_first, pred_second = first > 0.5, second > 0.5
    counted = (np.asarray(labels_first) != np.asarray(labels_second)) & (pred_first != pred_second)
    examples = int(counted.sum())
    follows = int((pred_first[counted] == (np.asarray(labels_first)[counted] == 1)).sum())
    if examples == 0:
        return 0, 0, 1.0
    return follows, examples, float(binomtest(follows, examples, 0.5).pvalue)


def audit_label_leak(run_with_permuted_gold: Callable[[int], np.ndarray], *,
                     permutation_seeds: tuple[int, int] = (1, 2), atol: float = 0.0,
                     check_determinism: bool = False,
                     labels_for: Callable[[int], np.ndarray] | None = None,
                     alpha: float = 0.001, real: np.ndarray | None = None,
                     real_labels: np.ndarray | None = None) -> AuditResult:
    """Run a method under two gold-label permutations and flag it if its predictions differ
    (``labels_for`` unset: the exact rule) or follow the labels (``labels_for`` set), between
    the two permuted runs and, given ``real``, the real run of the same cell.

    Comparing with the real run matters: the two permuted runs alone are fooled by a method
    that reads the labels, sees that they do not agree with the weak teacher as real labels do
    (a permutation agrees at chance), and answers honestly only then (found by an independent
    attacker review, 2026-12-04).

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
            (:func:`follows_labels`, two-sided p below ``alpha`` over the number of pairs), for
            engines whose runs are not bitwise reproducible.
        alpha: level of that test (each audited cell's false-flag rate).
        real: the method's real run of the same cell (test probabilities, same order).
        real_labels: the real test labels (with ``labels_for`` and ``real``).

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
    if labels_for is not None and real is not None and real_labels is None:
        raise InputError("the follows_labels rule needs the real run's labels",
                         field="real_labels")
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
    runs: list[tuple[int | None, np.ndarray]] = [(first_seed, first), (second_seed, second)]
    if real is not None:
        runs.insert(0, (None, _as_probs(real, 0)))
    if len({r.shape for _, r in runs}) > 1:
        raise InputError(f"runs returned {' and '.join(str(r.shape[0]) for _, r in runs)} "
                         "predictions", field="predictions")
    n = len(first)
    rule = "exactly" if atol == 0 else f"within {atol:g}"
    together = _name_all([seed for seed, _ in runs])
    pairs = list(itertools.combinations(runs, 2))
    differing = []
    for (seed_a, a), (seed_b, b) in pairs:
        max_diff, n_differ = compare_predictions(a, b, atol)
        if n_differ:
            differing.append((seed_a, a, seed_b, b, max_diff, n_differ))
    if not differing:
        return AuditResult(True, f"clean: predictions {together} agree {rule} on all {n} test "
                           "examples", 0.0, 0)
    if labels_for is None:
        seed_a, _, seed_b, _, max_diff, n_differ = differing[0]
        return AuditResult(False, f"label leak: predictions {_name_all([seed_a, seed_b])} "
                           f"differ on {n_differ}/{n} test examples (max |diff| {max_diff:.3g}); "
                           "the method's output depends on the gold labels", max_diff, n_differ)

    def labels(seed: int | None) -> np.ndarray:
        return np.asarray(real_labels if seed is None else labels_for(seed))

    level = alpha / len(pairs)
    tested = []
    for seed_a, a, seed_b, b, max_diff, n_differ in differing:
        follows, examples, p = follows_labels(a, b, labels(seed_a), labels(seed_b))
        tested.append((p, seed_a, seed_b, follows, examples, max_diff, n_differ))
    # The smallest p; among ties the pair with the most examples (its evidence says most).
    p, seed_a, seed_b, follows, examples, max_diff, n_differ = min(
        tested, key=lambda t: (t[0], -t[4]))
    shown = (f"predictions {_name_all([seed_a, seed_b])} differ on {n_differ}/{n} test examples "
             f"(max |diff| {max_diff:.3g}); where both the labels and the predicted labels "
             f"differ, each run predicted its own labels on {follows} of {examples} (two-sided "
             f"sign test p = {p:.3g}, flagged below {level:.3g}: alpha {alpha:g} over "
             f"{len(pairs)} pairs)")
    if p < level:
        return AuditResult(False, f"label leak: {shown}: the method's output follows the gold "
                           "labels", max_diff, n_differ)
    return AuditResult(True, f"clean (not bitwise reproducible): {shown}", max_diff, n_differ)


def _name_all(seeds: list[int | None]) -> str:
    """``of the real run and under gold permutations 3 and 7`` (None: the real run)."""
    perms = [str(seed) for seed in seeds if seed is not None]
    under = (f"under gold permutation {perms[0]}" if len(perms) == 1
             else f"under gold permutations {' and '.join(perms)}" if perms else "")
    if None in seeds:
        return f"of the real run and {under}" if under else "of the real run"
    return under
