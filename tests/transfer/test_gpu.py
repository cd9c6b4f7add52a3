"""GPU-only checks (skipped without CUDA): the engine in bf16 with ZeRO-2/3 on one GPU, and the
real-checkpoint LoRA path, on models built from configs (nothing is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def _separable(n=256, d=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    y = (x[:, 0] > 0).long()
    return x, torch.stack([1.0 - y.float(), y.float()], dim=1), y.numpy()


class _Head(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(),
                                       torch.nn.Linear(32, 2))

    def forward(self, features):
        return self.net(features)


@pytest.mark.parametrize("ds_config", ["zero2", "zero3"])
def test_engine_trains_in_bf16_on_cuda(ds_config):
    from transfer.engine import EngineConfig, predict, train

    x, targets, y = _separable()
    config = EngineConfig(epochs=20, lr=1e-2, batch_size=32, precision="bf16", ds_config=ds_config)
    model = train(_Head(x.shape[1]), {"features": x}, targets, config=config)
    probs = predict(model, {"features": x}, config=config)
    assert np.isfinite(probs).all()
    assert ((probs > 0.5) == y).mean() > 0.9


def test_lora_label_token_classifier_on_cuda(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from transfer.data import build_word_tokenizer
    from transfer.engine import EngineConfig
    from transfer.ladder import HFModelSpec
    from transfer.models.hf import hf_backend

    texts = [f"item {i} is {'good' if i % 2 else 'bad'}" for i in range(64)]
    tokenizer = build_word_tokenizer(texts + ["answer: a b"])
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=4, max_position_embeddings=64,
                                 pad_token_id=tokenizer.pad_token_id)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    class _Split:
        def __init__(self, t):
            self.texts = t

    class _Task:
        label_names = ("A", "B")
        splits = {"train_unlabel": _Split(texts), "test": _Split(texts)}

    spec = HFModelSpec(kind="hf", name="local", checkpoint=str(tmp_path), lora_r=4, max_length=32)
    backend = hf_backend(spec, _Task())
    labels = np.array([i % 2 for i in range(64)], dtype=float)
    fitted = backend.fit("train_unlabel", labels, seed=0, engine_config=EngineConfig(
        epochs=30, lr=5e-3, batch_size=16, precision="bf16", ds_config="zero2"))
    probs = fitted.predict("test")
    assert ((probs > 0.5) == labels).mean() > 0.9
