"""Backends turn a model spec plus a task's texts into something arms can fit and predict with.

A backend holds the inputs of every split (texts, tokens or features) and never any label: the
arm passes targets in explicitly. ``fit`` trains a fresh head (tiny ladder) or a fresh LoRA
adapter (real checkpoints) through the DeepSpeed engine and returns a ``Fitted`` model that
predicts P(label 1) on any split the backend holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch

from transfer.ladder import HFModelSpec, TinyModelSpec, model_params


class Fitted(Protocol):
    def predict(self, split: str) -> np.ndarray: ...


class Backend(Protocol):
    model_name: str
    params: int | None

    def fit(self, split: str, targets: np.ndarray, *, seed: int, engine_config,
            weights: np.ndarray | None = None, hooks=None) -> Fitted: ...

    def split_size(self, split: str) -> int: ...


def soft_targets(targets: np.ndarray) -> torch.Tensor:
    """P(label 1) of shape (N,) -> two-class soft targets (N, 2)."""
    p1 = torch.tensor(np.asarray(targets, dtype=np.float32))
    return torch.stack([1 - p1, p1], dim=1)


@dataclass
class _FittedProbe:
    probe: torch.nn.Module
    backend: FeatureBackend
    engine_config: object

    def predict(self, split: str) -> np.ndarray:
        from transfer.engine import predict

        inputs = {"features": torch.as_tensor(self.backend.features[split])}
        return predict(self.probe, inputs, config=self.engine_config)


@dataclass
class FeatureBackend:
    """Frozen pretrained body -> cached last-token features; arms train a linear probe.

    Picklable (features and names only), so a sandboxed method can receive it.
    """

    model_name: str
    params: int | None
    features: dict[str, np.ndarray] = field(repr=False)

    def split_size(self, split: str) -> int:
        return len(self.features[split])

    def fit(self, split, targets, *, seed, engine_config, weights=None, hooks=None) -> Fitted:
        from transfer.engine import train
        from transfer.models.probe import LinearProbe

        probe = LinearProbe(self.features[split], seed=seed)
        inputs = {"features": torch.as_tensor(self.features[split])}
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        config = engine_config.model_copy(update={"seed": seed})
        train(probe, inputs, soft_targets(targets), weights=w, hooks=hooks, config=config)
        return _FittedProbe(probe, self, config)

    def without(self, split: str) -> FeatureBackend:
        """The same backend minus one split (a student trainer never needs ``train_label``)."""
        return FeatureBackend(self.model_name, self.params,
                              {k: v for k, v in self.features.items() if k != split})


@lru_cache(maxsize=4)
def task_tokenizer(task_fingerprint: str, corpus: tuple[str, ...]):
    """The word-level tokenizer of a task (built from its corpus, never test), cached on disk:
    built once across processes and machines, hash-checked before every load."""
    from transformers import PreTrainedTokenizerFast

    from transfer.cache import cached_entry

    def build(directory) -> None:
        # Imported on a miss only: sandboxed methods, which cannot see transfer.data, find
        # the tokenizer the parent process already built.
        from transfer.data import build_word_tokenizer

        build_word_tokenizer(list(corpus)).save_pretrained(directory)

    final = cached_entry("tokenizers", task_fingerprint, build).root
    return PreTrainedTokenizerFast.from_pretrained(final)


def tiny_backend(spec: TinyModelSpec, task,
                 splits: tuple[str, ...] | None = None) -> FeatureBackend:
    """Pretrain (once, cached) the tiny model of ``spec`` on ``task.corpus``; features per split."""
    from transfer.models.probe import cached_features
    from transfer.models.tiny import pretrained_tiny_model, tiny_model_key

    tokenizer = task_tokenizer(task.fingerprint, tuple(task.corpus))
    model_key = tiny_model_key(spec, task.fingerprint)
    state: dict = {}

    def load_body():
        if "model" not in state:
            state["model"], _ = pretrained_tiny_model(spec, tokenizer, task.corpus,
                                                      task.fingerprint)
        return state["model"]

    features = {}
    for name in splits or tuple(task.splits):
        features[name] = cached_features(model_key, None, tokenizer, task.splits[name].texts,
                                         load_body=load_body, pooling=spec.pooling)
    return FeatureBackend(model_name=spec.name, params=model_params(spec), features=features)


def make_backend(spec: TinyModelSpec | HFModelSpec, task,
                 splits: tuple[str, ...] | None = None) -> Backend:
    if isinstance(spec, TinyModelSpec):
        return tiny_backend(spec, task, splits)
    from transfer.models.hf import hf_backend

    return hf_backend(spec, task, splits)
