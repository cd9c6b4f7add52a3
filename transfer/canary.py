"""The label-leak canary on the real arms: rerun a student with permuted gold labels.

``run_with_permuted_gold`` is what ``methods.audit.audit_label_leak`` calls once per permutation
seed. It holds the weak teacher's soft labels and the run seed fixed (they come from the real
weak run) and, while the student runs, replaces the gold labels of ``train_unlabel`` and ``test``
in the task itself by a seeded random permutation of themselves, in place, so that code finding
the task anywhere in this process (gc, frames, globals) reads the permuted labels. The student
runs against a throw-away store. A method that never sees gold labels returns the same
predictions under every permutation.

What it cannot see (see docs/methods.md): labels regenerated from code (importing the synthetic
generator), files on disk (the dataset directory and the real store keep the real labels; the
sandbox hides them), and a method that hunts down the canary's own saved copy of the labels.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transfer.arms import ArmContext, MethodFn, run_arm
from transfer.store import RunRecord, RunStore
from transfer.student import STUDENT_SPLIT, TEST_SPLIT
from w2s_common.errors import InputError

# Splits whose gold labels the canary permutes: the student's split and the scored test split.
# train_label stays: the weak teacher was trained on it and its outputs are held fixed.
PERMUTED_SPLITS = (STUDENT_SPLIT, TEST_SPLIT)


def _set_labels(split, labels: np.ndarray) -> None:
    for example, label in zip(split.examples, labels):
        # Examples are frozen so that nothing else rewrites them; the canary does, and restores.
        object.__setattr__(example, "label", int(label))
    split.__dict__.pop("labels", None)  # the cached_property's array of the previous labels


@contextlib.contextmanager
def permuted_gold(task, permutation_seed: int) -> Iterator[None]:
    """Permute the gold labels of ``train_unlabel`` and ``test`` in ``task``, in place, for a block.

    Ids, texts, corpus, label names and the fingerprint are unchanged: the tokenizer, body and
    feature caches (keyed by the fingerprint) depend on texts only, and the weak run must be the
    same. The real labels are restored when the block exits, also on error. Not thread-safe:
    nothing else may use ``task`` meanwhile (the audit command runs in its own process).

    Args:
        task: a ``transfer.data.TaskData``.
        permutation_seed: seeds ``numpy.random.default_rng``; the splits draw in turn.

    Yields:
        nothing; read the permuted labels from ``task``.
    """
    rng = np.random.default_rng(permutation_seed)
    saved: list[tuple[Any, np.ndarray]] = []
    try:
        for name in PERMUTED_SPLITS:
            split = task.splits[name]
            real = np.fromiter((e.label for e in split.examples), dtype=np.int64,
                               count=len(split.examples))
            saved.append((split, real))
            _set_labels(split, rng.permutation(real))
        yield
    finally:
        for split, real in saved:
            _set_labels(split, real)


def permuted_test_labels(task, permutation_seed: int) -> np.ndarray:
    """The test split's gold labels under ``permutation_seed`` (as :func:`permuted_gold` sets
    them), in the split's order; the task's own labels are back on return."""
    with permuted_gold(task, permutation_seed):
        return np.asarray(task.splits[TEST_SPLIT].labels, dtype=np.int64).copy()


def audit_labels(task, rule: str) -> tuple[str, Callable[[int], np.ndarray] | None]:
    """The audit rule as this machine runs it (``auto``: ``exact`` without GPUs, whose kernels
    are bitwise reproducible here; ``follows_labels`` with them) and, for ``follows_labels``,
    ``permutation_seed -> that permutation's test labels`` (``methods.audit``'s
    ``labels_for``); None for ``exact``."""
    if rule == "auto":
        import torch

        rule = "follows_labels" if torch.cuda.is_available() else "exact"
    if rule != "follows_labels":
        return rule, None
    return rule, lambda permutation_seed: permuted_test_labels(task, permutation_seed)


def _rescored_weak_run(weak: RunRecord, task, store: RunStore) -> RunRecord:
    """The real weak run written into ``store``, its test predictions scored against ``task``
    (whose labels are permuted by now).

    The weak probabilities (and so the student's inputs) are copied unchanged; only ``correct``
    and ``accuracy`` follow the permuted labels, so that nothing in the throw-away store holds
    the real test labels.
    """
    predictions = weak.predictions()
    gold = dict(zip(task.splits[TEST_SPLIT].ids, task.splits[TEST_SPLIT].labels.tolist()))
    predictions["correct"] = (predictions["pred"].to_numpy()
                              == predictions["example_id"].map(gold).to_numpy()).astype(np.int64)
    metrics = {**weak.metrics, "accuracy": float(predictions["correct"].mean())}
    metrics.pop("versions", None)
    return store.put(weak.spec, predictions, metrics, soft_labels=weak.soft_labels())


def run_with_permuted_gold(ctx: ArmContext, rung: str, seed: int, method_fn: MethodFn,
                           permutation_seed: int, *, method: str = "canary",
                           method_params: dict[str, Any] | None = None,
                           scratch: Path | None = None) -> np.ndarray:
    """Run a student arm with the gold labels of ``train_unlabel`` and ``test`` permuted.

    The weak arm runs (or is reused) on the real task in ``ctx.store``; the student then runs
    inside :func:`permuted_gold` against a temporary store that is deleted afterwards, sharing
    ``ctx``'s backends (they hold inputs only). The real store never sees a permuted run, and the
    task's real labels are back when this returns.

    Args:
        ctx: the real arm context (ladder, task, store, engine config).
        rung: rung name.
        seed: the run seed, the same for every permutation.
        method_fn: ``fn(data, trainer) -> test probabilities``
            (``methods.resolve.method_function``).
        permutation_seed: seed of the label permutation.
        method, method_params: the method's name and params, recorded in the throw-away run.
        scratch: where the throw-away store goes (kept afterwards): the ranks of a
            multi-process run must share it, as they share the real store (ranks > 0 wait for
            rank 0 to publish each run there). Default: a temporary directory, deleted.

    Returns:
        ``(n_test,)`` P(label 1) in the order of the task's test split.

    Raises:
        InputError: unknown rung, or the method failed or returned malformed predictions.
        MethodUnsupported: the method cannot run on this rung's models.
    """
    if not isinstance(permutation_seed, (int, np.integer)) or permutation_seed < 0:
        raise InputError(f"expected an integer >= 0, got {permutation_seed!r}",
                         field="permutation_seed")
    weak = run_arm(ctx, rung, "weak", seed)
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="w2s-canary-")))
        stack.enter_context(permuted_gold(ctx.task, int(permutation_seed)))
        store = RunStore(Path(scratch) / "store")
        _rescored_weak_run(weak, ctx.task, store)
        canary_ctx = ArmContext(ladder=ctx.ladder, task=ctx.task, store=store,
                                engine_config=ctx.engine_config, _backends=ctx._backends)
        record = run_arm(canary_ctx, rung, "student", seed, method=method,
                         method_params=method_params, method_fn=method_fn)
        probs = record.predictions()["prob"].to_numpy(dtype=np.float64)
    return probs
