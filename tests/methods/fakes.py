"""A fake StudentTrainer for the methods tests: torch logistic regression on fixed features.

Texts carry no signal; each example has a fixed random feature vector the trainer looks up by
position, and the gold label is a noisy linear function of it. The weak teacher sees only the
first two features, the "mid" model half of them, the "strong" model all of them. The trainer
holds features only (no labels), pickles, and records every ``fit`` call.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import torch

from transfer.engine.hooks import soft_cross_entropy
from transfer.sealed import MethodUnsupported, StudentData

MODEL_DIMS = {"weak": 2, "mid": 4, "strong": 8}


@dataclass(frozen=True)
class FakeTask:
    """Sealed data plus the gold labels (kept by the test, never handed to a method)."""

    data: StudentData
    student_features: np.ndarray
    test_features: np.ndarray
    student_gold: np.ndarray
    test_gold: np.ndarray
    prior_coef: np.ndarray  # the fake strong model's zero-shot "knowledge" of the task


def make_task(n_student: int = 300, n_test: int = 200, seed: int = 0) -> FakeTask:
    """A random task; ids carry a random prefix so files of other tests never match them."""
    rng = np.random.default_rng(seed)
    dim = MODEL_DIMS["strong"]
    w_true = np.array([2.0, 1.5, 1.0, 1.0, 0.7, 0.7, 0.5, 0.5]) * rng.choice([-1, 1], size=dim)
    features = rng.normal(size=(n_student + n_test, dim))
    gold = (features @ w_true + 0.3 * rng.normal(size=len(features)) > 0).astype(int)
    weak_logit = 1.5 * features[:, :2] @ w_true[:2] + 0.8 * rng.normal(size=len(features))
    weak = 1.0 / (1.0 + np.exp(-weak_logit))
    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-s{i}" for i in range(n_student)]
    test_ids = [f"{prefix}-t{i}" for i in range(n_test)]
    data = StudentData(ids=ids, texts=[f"student text {i}" for i in range(n_student)],
                       weak_probs=weak[:n_student], test_ids=test_ids,
                       test_texts=[f"test text {i}" for i in range(n_test)],
                       weak_test_probs=weak[n_student:], label_names=("neg", "pos"), seed=seed)
    prior_coef = np.where(np.arange(dim) == 2, w_true, 0.0)
    return FakeTask(data, features[:n_student], features[n_student:], gold[:n_student],
                    gold[n_student:], prior_coef)


@dataclass
class FitCall:
    model: str
    targets: np.ndarray
    weights: np.ndarray | None
    hooks: object


@dataclass
class FakePredictor:
    coef: np.ndarray
    bias: float
    student_features: np.ndarray
    test_features: np.ndarray

    def _predict(self, features: np.ndarray) -> np.ndarray:
        logits = features[:, :len(self.coef)] @ self.coef + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    def predict_student(self) -> np.ndarray:
        return self._predict(self.student_features)

    def predict_test(self) -> np.ndarray:
        return self._predict(self.test_features)


@dataclass
class FakeTrainer:
    """Implements ``transfer.sealed.StudentTrainer`` with torch logistic regression."""

    student_features: np.ndarray
    test_features: np.ndarray
    seed: int = 0
    prior_coef: np.ndarray | None = None
    label_tokens: bool = True
    steps: int = 60
    batch_size: int = 64
    calls: list[FitCall] = field(default_factory=list)

    @classmethod
    def for_task(cls, task: FakeTask, **kwargs) -> FakeTrainer:
        return cls(task.student_features, task.test_features, seed=task.data.seed,
                   prior_coef=task.prior_coef, **kwargs)

    def model_names(self) -> list[str]:
        return [name for name in MODEL_DIMS if name != "weak"]  # intermediates, then strong

    def fit(self, targets, weights=None, hooks=None, model=None) -> FakePredictor:
        name = model or "strong"
        if name not in MODEL_DIMS:
            raise MethodUnsupported(f"unknown model {name!r}")
        targets = np.asarray(targets, dtype=np.float64)
        self.calls.append(FitCall(name, targets.copy(),
                                  None if weights is None else np.asarray(weights).copy(), hooks))
        t = torch.tensor(np.stack([1 - targets, targets], axis=1), dtype=torch.float32)
        w = torch.ones(len(targets)) if weights is None else torch.tensor(weights,
                                                                           dtype=torch.float32)
        if hooks is not None:
            t, w = hooks.prepare(t, w)
        keep = w > 0
        x = torch.tensor(self.student_features[:, :MODEL_DIMS[name]], dtype=torch.float32)[keep]
        t, w = t[keep], w[keep]
        generator = torch.Generator().manual_seed(self.seed + 7919 * len(self.calls))
        layer = torch.nn.Linear(x.shape[1], 2)
        with torch.no_grad():
            layer.weight.copy_(0.01 * torch.randn(layer.weight.shape, generator=generator))
            layer.bias.zero_()
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
        for step in range(self.steps):
            rows = torch.randperm(len(x), generator=generator)[:self.batch_size]
            logits = layer(x[rows])
            progress = step / self.steps
            loss = (hooks.loss(logits, t[rows], w[rows], progress) if hooks is not None
                    else soft_cross_entropy(logits, t[rows], w[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weight = layer.weight.detach().numpy().astype(np.float64)
        bias = layer.bias.detach().numpy().astype(np.float64)
        return FakePredictor(weight[1] - weight[0], float(bias[1] - bias[0]),
                             self.student_features, self.test_features)

    def _zero_shot(self, features: np.ndarray) -> np.ndarray:
        if not self.label_tokens or self.prior_coef is None:
            raise MethodUnsupported("the fake strong model has no label tokens")
        return 1.0 / (1.0 + np.exp(-features @ self.prior_coef))

    def zero_shot_student(self) -> np.ndarray:
        return self._zero_shot(self.student_features)

    def zero_shot_test(self) -> np.ndarray:
        return self._zero_shot(self.test_features)


@dataclass
class LeakyTrainer(FakeTrainer):
    """A trainer built carelessly from the full task: it carries the gold labels."""

    test_labels: np.ndarray | None = None


def accuracy(probs: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs) > 0.5).astype(int) == gold))
