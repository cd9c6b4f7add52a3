"""The `StudentTrainer` handed to methods: fits ladder models on the student split only.

It holds inputs of the student split (``train_unlabel``) and the test split, and nothing with a
label. Other models of the ladder (for bootstrapping) are built on demand from a label-free view
of the task. Everything in it pickles, so a sandboxed method can receive it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from transfer.sealed import MethodUnsupported

if TYPE_CHECKING:
    from transfer.backends import Backend
    from transfer.engine import EngineConfig
    from transfer.ladder import ModelSpec

STUDENT_SPLIT = "train_unlabel"
TEST_SPLIT = "test"


@dataclass(frozen=True)
class _TextsOnlySplit:
    texts: tuple[str, ...]


@dataclass(frozen=True)
class TextsOnlyTask:
    """What building a backend needs of a task, minus every label (and minus ``train_label``)."""

    fingerprint: str
    corpus: tuple[str, ...]
    splits: dict[str, _TextsOnlySplit]
    label_names: tuple[str, str]

    @classmethod
    def of(cls, task) -> TextsOnlyTask:
        return cls(fingerprint=task.fingerprint, corpus=tuple(task.corpus),
                   label_names=tuple(task.label_names),
                   splits={name: _TextsOnlySplit(tuple(task.splits[name].texts))
                           for name in (STUDENT_SPLIT, TEST_SPLIT)})


@dataclass
class _Prediction:
    fitted: Any

    def predict_student(self) -> np.ndarray:
        return np.asarray(self.fitted.predict(STUDENT_SPLIT), dtype=np.float64)

    def predict_test(self) -> np.ndarray:
        return np.asarray(self.fitted.predict(TEST_SPLIT), dtype=np.float64)


@dataclass
class BackendStudentTrainer:
    """Implements ``transfer.sealed.StudentTrainer`` over the ladder's backends."""

    strong: Backend  # holds the student and test splits
    model_specs: dict[str, ModelSpec]  # ladder model name -> spec, for `fit(model=...)`
    task_view: TextsOnlyTask
    engine_config: EngineConfig
    seed: int
    fits: list[str] = field(default_factory=list)  # model names fitted, in order (for audits)
    _backends: dict[str, Backend] = field(default_factory=dict, repr=False)

    def model_names(self) -> list[str]:
        """Models this trainer can fit: the ladder's models strictly between the rung's weak and
        strong model, smallest first, then the strong model last."""
        return list(self.model_specs)

    def _backend(self, model: str | None):
        if model is None or model == self.strong.model_name:
            return self.strong
        if model not in self.model_specs:
            raise MethodUnsupported(f"unknown model {model!r}; this trainer has "
                                    f"{', '.join(self.model_specs)}")
        if model not in self._backends:
            from transfer.backends import make_backend

            self._backends[model] = make_backend(self.model_specs[model], self.task_view,
                                                 (STUDENT_SPLIT, TEST_SPLIT))
        return self._backends[model]

    def prepared(self) -> BackendStudentTrainer:
        """This trainer with a backend for every model it offers built now, in the trusted
        process, so that a jailed method receives them ready and needs no cache."""
        for name in self.model_specs:
            self._backend(name)
        return self

    def model_paths(self) -> list[str]:
        """Directories the built backends load weights from (mounted read-only in the jail)."""
        paths: list[str] = []
        for backend in [self.strong, *self._backends.values()]:
            paths += list(getattr(backend, "model_paths", lambda: [])())
        return list(dict.fromkeys(paths))

    def fit(self, targets, weights=None, hooks=None, model=None) -> _Prediction:
        backend = self._backend(model)
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (backend.split_size(STUDENT_SPLIT),):
            raise ValueError(f"targets must have shape ({backend.split_size(STUDENT_SPLIT)},), "
                             f"got {targets.shape}")
        if not np.all(np.isfinite(targets)) or np.any((targets < 0) | (targets > 1)):
            raise ValueError("targets must be probabilities in [0, 1]")
        self.fits.append(backend.model_name)
        fitted = backend.fit(STUDENT_SPLIT, targets, seed=self.seed + 7919 * len(self.fits),
                             engine_config=self.engine_config, weights=weights, hooks=hooks)
        return _Prediction(fitted)

    def zero_shot_student(self) -> np.ndarray:
        return self._zero_shot(STUDENT_SPLIT)

    def zero_shot_test(self) -> np.ndarray:
        return self._zero_shot(TEST_SPLIT)

    def _zero_shot(self, split: str) -> np.ndarray:
        zero_shot = getattr(self.strong, "zero_shot", None)
        if zero_shot is None:
            raise MethodUnsupported(f"model {self.strong.model_name!r} has no label tokens to "
                                    "read a zero-shot prior from")
        return np.asarray(zero_shot(split), dtype=np.float64)
