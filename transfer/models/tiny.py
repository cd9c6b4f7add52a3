"""Tiny Qwen2 models with latent knowledge: built from ``Qwen2Config``, pretrained as causal LMs
on the task's unlabeled corpus (never the test split), cached so each runs once.

Why pretraining: with weak and strong models both randomly initialised and trained from scratch,
the student just copies the teacher. A short next-token pretraining gives each size a body whose
frozen features know the task's vocabulary; larger bodies get more out of the same tokens, which
is what gives every rung of the tiny ladder a real weak-to-strong gap.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from transfer.ladder import TinyModelSpec, spec_fingerprint

MAX_LENGTH = 64


def tiny_config(spec: TinyModelSpec, vocab_size: int, pad_token_id: int) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size or 4 * spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads or spec.num_heads,
        max_position_embeddings=MAX_LENGTH,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        attn_implementation="sdpa",
    )


def build_tiny_lm(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast,
                  seed: int) -> Qwen2ForCausalLM:
    """A randomly initialised tiny causal LM of the spec's shape (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(tiny_config(spec, len(tokenizer), tokenizer.pad_token_id))


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tokenize(tokenizer: PreTrainedTokenizerFast, texts: list[str] | tuple[str, ...],
             max_length: int = MAX_LENGTH) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask`` with BOS and EOS around each text."""
    wrapped = [f"{tokenizer.bos_token} {t} {tokenizer.eos_token}" for t in texts]
    enc = tokenizer(wrapped, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def pretrain(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerFast,
             corpus: list[str] | tuple[str, ...], spec: TinyModelSpec) -> dict:
    """Next-token pretraining until ``spec.pretrain.tokens`` tokens are consumed.

    AdamW (0.9, 0.98), weight decay, linear warm-up then constant lr, gradient clipping at 1.
    Returns a small log (steps, tokens, final loss, seconds).
    """
    cfg = spec.pretrain
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(corpus))
    lengths = np.array([len(corpus[i].split()) + 2 for i in order])
    batches_needed = int(np.searchsorted(np.cumsum(lengths), cfg.tokens) // cfg.batch_size) + 1
    total_steps = max(1, batches_needed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98),
                                  weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_frac * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model.train()
    start, tokens, losses = time.perf_counter(), 0, []
    for step in range(total_steps):
        index = order[(np.arange(cfg.batch_size) + step * cfg.batch_size) % len(order)]
        batch = tokenize(tokenizer, [corpus[i] for i in index])
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        tokens += int(batch["attention_mask"].sum())
        losses.append(loss.item())
        if tokens >= cfg.tokens:
            break
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": step + 1, "tokens": tokens, "final_loss": float(np.mean(tail)),
            "perplexity": float(math.exp(np.mean(tail))), "seconds": time.perf_counter() - start}


def tiny_model_key(spec: TinyModelSpec, task_fingerprint: str) -> str:
    """Cache key of a pretrained tiny model: its name, its spec's hash and the task's content."""
    return f"{spec.name or 'tiny'}-{spec_fingerprint(spec)}-{task_fingerprint}"


def ppmi_svd_vectors(tokenizer: PreTrainedTokenizerFast, sentences: list[str] | tuple[str, ...],
                     rank: int) -> np.ndarray:
    """Word vectors of shape (vocab, rank): truncated SVD of the positive PMI matrix of
    sentence-level co-occurrence counts (Levy & Goldberg 2014, "Neural word embedding as implicit
    matrix factorization"), scaled by sqrt of the singular values, rows normalised on average."""
    from scipy import sparse

    ids = tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    rows = np.repeat(np.arange(len(ids)), [len(x) for x in ids])
    cols = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids])
    vocab = len(tokenizer)
    doc_term = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(ids), vocab))
    counts = (doc_term.T @ doc_term).toarray()
    np.fill_diagonal(counts, 0.0)
    total = counts.sum()
    row, col = counts.sum(axis=1, keepdims=True), counts.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts * total / (row * col))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    left, singular, _ = np.linalg.svd(ppmi, full_matrices=False)
    vectors = left[:, :rank] * np.sqrt(singular[:rank])
    return vectors / (np.linalg.norm(vectors, axis=1).mean() + 1e-12)


def svd_pretrain(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerFast,
                 corpus: list[str] | tuple[str, ...], spec: TinyModelSpec) -> dict:
    """Set the (frozen) input embeddings to PPMI-SVD word vectors of the corpus prefix, placed
    in the hidden space by a fixed random orthonormal map; the layers keep their seeded init."""
    cfg = spec.pretrain
    start = time.perf_counter()
    vectors = ppmi_svd_vectors(tokenizer, corpus[:cfg.corpus_sentences], cfg.rank)
    rng = np.random.default_rng(cfg.seed)
    basis, _ = np.linalg.qr(rng.normal(size=(spec.hidden_size, spec.hidden_size)))
    embeddings = vectors @ basis[:cfg.rank]
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.as_tensor(embeddings, dtype=torch.float32))
    model.eval()
    return {"method": "svd", "sentences": min(cfg.corpus_sentences, len(corpus)),
            "rank": cfg.rank, "seconds": time.perf_counter() - start}


def pretrained_tiny_model(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast,
                          corpus: list[str] | tuple[str, ...],
                          task_fingerprint: str) -> tuple[Qwen2ForCausalLM, Path]:
    """Load the pretrained checkpoint of ``spec`` for this task, pretraining it once if needed.

    The cache key covers the spec (shape and pretraining budget) and the task's content, so a
    changed corpus or spec never reuses a stale model. Built once across processes and machines
    sharing the cache, hash-checked before every load (``transfer.cache.cached_entry``).
    """
    from transfer.cache import cached_entry

    def build(directory: Path) -> None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        model = build_tiny_lm(spec, tokenizer, seed=spec.pretrain.seed)
        run = svd_pretrain if spec.pretrain.method == "svd" else pretrain
        log = run(model, tokenizer, corpus, spec)
        log["params"] = count_params(model)
        model.save_pretrained(directory)
        (directory / "pretrain.json").write_text(json.dumps(log, indent=2))

    final = cached_entry("models", tiny_model_key(spec, task_fingerprint), build).root
    model = Qwen2ForCausalLM.from_pretrained(final, attn_implementation="sdpa")
    model.eval()
    return model, final


def non_embedding_params(spec: TinyModelSpec) -> int:
    """Parameters of the body excluding the (tied) token embeddings: vocabulary-independent,
    the count scaling laws use (Kaplan et al. 2020), so it is the same for every task."""
    with torch.device("meta"):
        model = Qwen2ForCausalLM(tiny_config(spec, vocab_size=8, pad_token_id=0))
    return count_params(model) - model.get_input_embeddings().weight.numel()
