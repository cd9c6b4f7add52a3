"""A fixed tiny training run, for checking the engine under any number of processes.

``python -m transfer.engine.selfcheck --out preds.npy`` (or through `launch_module` with N
processes) trains a small MLP on seeded synthetic data and writes P(label 1) for every row, in
row order, from rank 0. Equal outputs from 1 and N processes show that sharding, loss scaling,
gradient averaging and the gathering of predictions agree.
"""
from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from transfer.engine.config import EngineConfig
from transfer.engine.core import predict, train
from w2s_common.atomic import atomic_write_bytes

# 241 rows with batch 32: the last batch has 17 rows, split 9/8 over two processes, so uneven
# shards and the loss rescaling are exercised.
N_ROWS, N_FEATURES = 241, 16


class TinyMLP(nn.Module):
    """Two-layer MLP over ``features`` returning ``(B, 2)`` logits."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, 2))

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features)


def make_problem(data_seed: int = 0) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Seeded features, soft targets (noisy labels) and non-uniform row weights."""
    gen = torch.Generator().manual_seed(data_seed)
    features = torch.randn(N_ROWS, N_FEATURES, generator=gen)
    score = features[:, :4].sum(dim=1) + 0.5 * torch.randn(N_ROWS, generator=gen)
    p1 = torch.sigmoid(2 * score)
    targets = torch.stack([1 - p1, p1], dim=1)
    weights = 0.5 + torch.rand(N_ROWS, generator=gen)
    return {"features": features}, targets, weights


def run(seed: int, ds_config: str = "zero0") -> np.ndarray:
    """Train `TinyMLP` (initialised from ``seed``) through the engine; P(label 1) per row."""
    inputs, targets, weights = make_problem()
    torch.manual_seed(seed)
    model = TinyMLP()
    config = EngineConfig(epochs=5, lr=3e-3, batch_size=32, warmup_ratio=0.1, seed=seed,
                          ds_config=ds_config, grad_clip=1.0)
    train(model, inputs, targets, weights=weights, config=config)
    return predict(model, inputs, config=config)


def _save_atomic(path: Path, values: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, values)
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--out FILE [--seed S] [--ds-config NAME]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ds-config", default="zero0")
    args = parser.parse_args(argv)
    probs = run(args.seed, args.ds_config)
    if int(os.environ.get("RANK", "0")) == 0:
        _save_atomic(args.out, probs)


if __name__ == "__main__":
    main()
