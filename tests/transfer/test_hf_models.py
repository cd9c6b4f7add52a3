"""Real-checkpoint path, offline: a tiny Qwen2 saved to disk stands in for a hub checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transfer.ladder import HFModelSpec
from transfer.models.hf import hf_backend, resolve_checkpoint
from w2s_common.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def task():
    from transfer.data import load_task

    return load_task(FIXTURES / "sandbox_binary")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, task):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from transfer.data import build_word_tokenizer

    path = tmp_path_factory.mktemp("tiny-qwen")
    texts = list(task.corpus) + [t for s in task.splits.values() for t in s.texts]
    tokenizer = build_word_tokenizer(texts + ["answer: false true"])
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=128,
                                         pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_missing_checkpoint_is_a_clear_error_naming_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as err:
        resolve_checkpoint("Qwen/Qwen3-4B-Base")
    message = str(err.value)
    assert "huggingface-cli download Qwen/Qwen3-4B-Base" in message and "\n" not in message


def test_a_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        resolve_checkpoint(str(tmp_path))


@pytest.mark.parametrize("head", ["label_token", "seq_cls"])
def test_local_checkpoint_trains_a_lora_adapter_and_predicts(task, checkpoint, head):
    from transfer.engine import EngineConfig

    spec = HFModelSpec(kind="hf", name="local", checkpoint=str(checkpoint), head=head, lora_r=4,
                       lora_alpha=8, max_length=64)
    backend = hf_backend(spec, task)
    model = backend.build(lora=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "score" in n for n in trainable), trainable
    fitted = backend.fit("train_unlabel",
                         np.linspace(0.1, 0.9, backend.split_size("train_unlabel")), seed=0,
                         engine_config=EngineConfig(epochs=1, lr=1e-3, batch_size=4))
    probs = fitted.predict("test")
    assert probs.shape == (len(task.splits["test"].texts),)
    assert np.all((probs >= 0) & (probs <= 1))


def test_label_token_zero_shot_prior_reads_the_two_label_tokens(task, checkpoint):
    spec = HFModelSpec(kind="hf", name="local", checkpoint=str(checkpoint), max_length=64)
    prior = hf_backend(spec, task).zero_shot("test")
    assert prior.shape == (len(task.splits["test"].texts),)
    assert np.all((prior > 0) & (prior < 1))
