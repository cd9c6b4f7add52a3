"""Frozen-body features and the linear probe the tiny ladder's arms train on them.

The body stays frozen (fine-tuning it lets the weak model learn the frequent words from the gold
labels and match the ceiling); every arm trains a 2-way linear head on pooled final hidden
states. Features depend only on the texts and the body, so they are computed once and cached.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from transfer.models.tiny import tokenize

FEATURES_FILE = "features.npy"


def texts_fingerprint(texts: list[str] | tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@torch.no_grad()
def pooled_features(body: nn.Module, tokenizer: PreTrainedTokenizerFast,
                    texts: list[str] | tuple[str, ...], pooling: str = "mean",
                    batch_size: int = 256) -> np.ndarray:
    """Final hidden states (after the final norm) pooled per text, shape (N, hidden): the mean
    over real tokens, or the last real token (the pooling Qwen2ForSequenceClassification uses)."""
    body.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenize(tokenizer, texts[start:start + batch_size])
        hidden = body.model(**batch).last_hidden_state
        mask = batch["attention_mask"]
        if pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * weights).sum(1) / weights.sum(1)).float().numpy())
        else:
            last = mask.sum(dim=1) - 1
            out.append(hidden[torch.arange(hidden.shape[0]), last].float().numpy())
    return np.concatenate(out).astype(np.float32)


def cached_features(model_key: str, body: nn.Module | None, tokenizer: PreTrainedTokenizerFast,
                    texts: list[str] | tuple[str, ...], load_body=None,
                    pooling: str = "mean") -> np.ndarray:
    """Features of ``texts`` under the body ``model_key``, computed once and cached on disk
    (``$W2S_CACHE_DIR/features/<model_key>-<pooling>-<texts' hash>/``), hash-checked on load.

    ``load_body`` (a callable) is used instead of ``body`` to load the model only on a miss.
    """
    from transfer.cache import cached_entry

    def build(directory) -> None:
        features = pooled_features(body if body is not None else load_body(), tokenizer, texts,
                                   pooling)
        np.save(directory / FEATURES_FILE, features)

    manifest = cached_entry("features", f"{model_key}-{pooling}-{texts_fingerprint(texts)}", build)
    # Loaded from the very bytes whose hash was just checked.
    return np.load(io.BytesIO(manifest.read_verified(FEATURES_FILE)), allow_pickle=False)


class LinearProbe(nn.Module):
    """Standardise features (statistics of the training split) and apply a 2-way linear head."""

    def __init__(self, train_features: np.ndarray, seed: int) -> None:
        super().__init__()
        feats = torch.as_tensor(train_features, dtype=torch.float32)
        self.register_buffer("mean", feats.mean(dim=0))
        self.register_buffer("scale", feats.std(dim=0).clamp_min(1e-6))
        generator = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(feats.shape[1], 2)
        with torch.no_grad():
            bound = 1.0 / feats.shape[1] ** 0.5
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # The statistics are buffers that stay float32 when the engine casts the head to bf16;
        # standardise in float32, then feed the head in its own dtype.
        standard = (features.float() - self.mean.float()) / self.scale.float()
        return self.head(standard.to(self.head.weight.dtype))
