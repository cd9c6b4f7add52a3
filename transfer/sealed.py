"""What a W2S method is allowed to see: student data without gold labels, and a trainer.

A method never receives a `TaskData`, a path or a store: only a `StudentData` (texts, ids and the
weak teacher's probabilities) and a `StudentTrainer` that trains the strong model on targets the
method chooses. Gold labels stay with the caller, which scores the returned test probabilities
after the method has returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class MethodUnsupported(RuntimeError):
    """The method needs something this model or task does not offer (e.g. label tokens)."""


def _read_only(values: Any, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64, copy=True)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any((array < 0) | (array > 1)):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class StudentData:
    """Sealed inputs of a student arm. Probabilities are P(label 1).

    Attributes:
        ids, texts: the student split (``train_unlabel``), in a fixed order.
        weak_probs: the weak teacher's soft labels on the student split, aligned with ``ids``.
        test_ids, test_texts: the test split's inputs (no labels).
        weak_test_probs: the weak teacher's probabilities on the test split.
        label_names: names of label 0 and label 1 (e.g. ``("A", "B")``).
        seed: the run's seed; methods must derive all randomness from it.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    weak_probs: np.ndarray
    test_ids: tuple[str, ...]
    test_texts: tuple[str, ...]
    weak_test_probs: np.ndarray
    label_names: tuple[str, str]
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "test_ids", tuple(self.test_ids))
        object.__setattr__(self, "test_texts", tuple(self.test_texts))
        object.__setattr__(self, "weak_probs", _read_only(self.weak_probs, "weak_probs"))
        object.__setattr__(self, "weak_test_probs",
                           _read_only(self.weak_test_probs, "weak_test_probs"))
        if not (len(self.ids) == len(self.texts) == len(self.weak_probs)):
            raise ValueError("ids, texts and weak_probs must have the same length")
        if not (len(self.test_ids) == len(self.test_texts) == len(self.weak_test_probs)):
            raise ValueError("test_ids, test_texts and weak_test_probs must have the same length")


@dataclass(frozen=True)
class RungFacts:
    """What a rung offers a method, known from the ladder before anything is trained.

    A method may say from these alone that it cannot run on the rung (``unsupported_reason``),
    so a plan naming it is refused before any compute instead of failing in the middle.

    Attributes:
        ladder, rung: names.
        strong_model: the rung's strong model (the student).
        model_names: what ``StudentTrainer.model_names()`` will return on this rung: the ladder's
            models strictly between the weak and the strong model, smallest first, then the
            strong model.
        label_tokens: whether the strong model reads its classes from label tokens, i.e. has a
            zero-shot prior (``StudentTrainer.zero_shot_*``).
    """

    ladder: str
    rung: str
    strong_model: str
    model_names: tuple[str, ...]
    label_tokens: bool


@runtime_checkable
class Predictor(Protocol):
    """A trained student: probabilities P(label 1) on the sealed splits."""

    def predict_student(self) -> np.ndarray: ...

    def predict_test(self) -> np.ndarray: ...


@runtime_checkable
class StudentTrainer(Protocol):
    """Trains a model of the ladder on the student split with targets chosen by the method.

    ``fit(targets, weights=None, hooks=None, model=None)``: ``targets`` are soft labels P(label 1)
    aligned with ``StudentData.ids``; ``weights`` optional per-example weights (0 drops an
    example); ``hooks`` a ``transfer.engine.TrainHooks`` reshaping targets and the loss;
    ``model`` None for the rung's strong model, or one of ``model_names()``: the ladder's models
    strictly between the rung's weak and strong model (smallest first), then the strong model.
    """

    def fit(self, targets: np.ndarray, weights: np.ndarray | None = None, hooks: Any = None,
            model: str | None = None) -> Predictor: ...

    def zero_shot_student(self) -> np.ndarray: ...

    def zero_shot_test(self) -> np.ndarray: ...

    def model_names(self) -> list[str]: ...
