"""Real checkpoints (a Hugging Face id or a local path), loaded offline, trained with LoRA.

Two ways to classify:
- ``label_token``: a causal LM reads the text followed by an answer cue, and the logits of the two
  label tokens (" A"/" B", " False"/" True") at the last position are the class logits. This is
  the automated W2S sandbox's way, and it gives a zero-shot prior for free (no adapter).
- ``seq_cls``: ``AutoModelForSequenceClassification`` with a fresh 2-way score head.
Both train a LoRA adapter (peft) through the DeepSpeed engine; the base weights stay frozen.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transfer.ladder import HFModelSpec
from w2s_common.errors import InputError

ANSWER_CUE = "\nAnswer:"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def resolve_checkpoint(checkpoint: str) -> Path:
    """A local directory for ``checkpoint``: the path itself, or its snapshot in the HF cache.

    Never downloads. Raises InputError naming what to download when it is not on disk.
    """
    path = Path(checkpoint).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError("not a model checkpoint (no config.json)", path=path)
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=checkpoint, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        cache = (os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME")
                 or "~/.cache/huggingface")
        raise InputError(f"checkpoint {checkpoint!r} is neither a local directory nor in the HF "
                         f"cache ({cache}); download it first, e.g. `huggingface-cli download "
                         f"{checkpoint}`, or point the ladder at a local path",
                         field="checkpoint") from None


def label_token_ids(tokenizer, label_names: tuple[str, str]) -> tuple[int, int]:
    """Token ids of the two label words as they follow the answer cue (with a leading space)."""
    ids = []
    for name in label_names:
        pieces = tokenizer(f" {name}", add_special_tokens=False)["input_ids"]
        if not pieces or pieces[0] == tokenizer.unk_token_id:
            raise InputError(f"label {name!r} has no token in this model's vocabulary",
                             field="label_names")
        ids.append(pieces[0])
    if ids[0] == ids[1]:
        raise InputError(f"labels {label_names} share their first token", field="label_names")
    return ids[0], ids[1]


class LabelTokenClassifier(nn.Module):
    """Class logits = the LM's logits of the two label tokens at the last real position."""

    def __init__(self, lm: nn.Module, token_ids: tuple[int, int]) -> None:
        super().__init__()
        self.lm = lm
        self.register_buffer("token_ids", torch.tensor(token_ids), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                         output_hidden_states=True).hidden_states[-1]
        last = attention_mask.sum(dim=1) - 1
        final = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        head = self.lm.get_output_embeddings()
        return final @ head.weight[self.token_ids].T


class SequenceClassifier(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@dataclass
class _FittedHF:
    model: nn.Module
    backend: HFBackend
    engine_config: object

    def predict(self, split: str) -> np.ndarray:
        from transfer.engine import predict

        return predict(self.model, self.backend.inputs[split], config=self.engine_config)


@dataclass
class HFBackend:
    spec: HFModelSpec
    path: Path
    label_names: tuple[str, str]
    inputs: dict[str, dict[str, torch.Tensor]] = field(repr=False)
    params: int | None = None

    @property
    def model_name(self) -> str:
        return self.spec.name

    def split_size(self, split: str) -> int:
        return int(self.inputs[split]["input_ids"].shape[0])

    def _tokenizer(self):
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        config = self.path / "tokenizer_config.json"
        declared = (json.loads(config.read_text()).get("tokenizer_class") if config.exists()
                    else None)
        # AutoTokenizer goes by the model type (qwen2) and would swap a plain tokenizers-backed
        # tokenizer's normaliser for Qwen2's; honour the class the checkpoint declares.
        if declared in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            tokenizer = PreTrainedTokenizerFast.from_pretrained(self.path)
        else:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"  # keep the answer cue at the end
        return tokenizer

    def build(self, lora: bool = True) -> nn.Module:
        """A fresh classifier on the frozen base, with a new LoRA adapter when ``lora``."""
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        tokenizer = self._tokenizer()
        if self.spec.head == "label_token":
            base = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
            task_type, extra = "CAUSAL_LM", {}
        else:
            base = AutoModelForSequenceClassification.from_pretrained(
                self.path, num_labels=2, dtype=dtype, pad_token_id=tokenizer.pad_token_id)
            task_type, extra = "SEQ_CLS", {"modules_to_save": ["score"]}
        if lora:
            targets = [t for t in LORA_TARGETS
                       if any(n.endswith(t) for n, _ in base.named_modules())]
            base = get_peft_model(base, LoraConfig(r=self.spec.lora_r,
                                                   lora_alpha=self.spec.lora_alpha,
                                                   lora_dropout=0.0, target_modules=targets,
                                                   task_type=task_type, **extra))
        if self.spec.head == "label_token":
            return LabelTokenClassifier(base, label_token_ids(tokenizer, self.label_names))
        return SequenceClassifier(base)

    def fit(self, split, targets, *, seed, engine_config, weights=None, hooks=None) -> _FittedHF:
        from transfer.backends import soft_targets
        from transfer.engine import train

        torch.manual_seed(seed)
        model = self.build(lora=True)
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        config = engine_config.model_copy(update={"seed": seed})
        train(model, self.inputs[split], soft_targets(targets), weights=w, hooks=hooks,
              config=config)
        return _FittedHF(model, self, config)

    def zero_shot(self, split: str) -> np.ndarray:
        """P(label 1) from the base model's label-token logits, no training (label_token only)."""
        from transfer.engine import EngineConfig, predict
        from transfer.sealed import MethodUnsupported

        if self.spec.head != "label_token":
            raise MethodUnsupported("a seq_cls head has no label tokens")
        return predict(self.build(lora=False), self.inputs[split], config=EngineConfig())

    def model_paths(self) -> list[str]:
        """The checkpoint's directory; for a snapshot of the HF cache, the model's whole cache
        entry (its snapshot files are links into the entry's blobs)."""
        path = Path(self.path).resolve()
        for parent in Path(self.path).parents:
            if parent.name.startswith("models--"):
                return [str(parent)]
        return [str(path)]

    def without(self, split: str) -> HFBackend:
        return HFBackend(self.spec, self.path, self.label_names,
                         {k: v for k, v in self.inputs.items() if k != split}, self.params)


def hf_backend(spec: HFModelSpec, task, splits: tuple[str, ...] | None = None) -> HFBackend:
    """Resolve the checkpoint offline and tokenize the task's splits (text + answer cue)."""
    path = resolve_checkpoint(spec.checkpoint)
    backend = HFBackend(spec, path, tuple(task.label_names), inputs={}, params=spec.params)
    tokenizer = backend._tokenizer()
    for name in splits or tuple(task.splits):
        texts = [t + ANSWER_CUE for t in task.splits[name].texts]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=spec.max_length,
                        return_tensors="pt")
        backend.inputs[name] = {"input_ids": enc["input_ids"],
                                "attention_mask": enc["attention_mask"]}
    return backend
