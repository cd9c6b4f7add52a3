"""ZeRO-2 / ZeRO-3 bf16 training steps through the engine at the real Qwen shapes, on one GPU.

Run it through ``bench/gpu_check.sh`` on a lent H100/H200 (nothing can be downloaded there, so
the models are random-initialised at the real shapes):

- Qwen1.5-0.5B (weak teacher): Qwen2Config hidden 1024, 24 layers, 16 heads, intermediate 2816,
  vocab 151936;
- Qwen3-4B-Base (strong student): Qwen3Config hidden 2560, 36 layers, 32 heads, 8 kv heads,
  head_dim 128, intermediate 9728, vocab 151936, tied embeddings;

both with a 2-way sequence-classification head, as the engine trains them. For each (shape,
ZeRO config) it prints one line as it goes: tokens/s and model FLOPs utilisation
``MFU = 6 * params * tokens/s / peak`` (peak = the chip's dense bf16 rate, 989e12 for H100/H200
SXM; attention FLOPs are not counted, as in the 6N rule of Kaplan et al. 2020). A failing config
prints its error and the run goes on. ``--cpu-smoke`` runs the same code on a tiny shape on CPU.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12),
                   ("H100", 989e12), ("A100", 312e12))

SHAPES = {
    "qwen1.5-0.5b": dict(arch="qwen2", hidden_size=1024, num_hidden_layers=24,
                         num_attention_heads=16, num_key_value_heads=16,
                         intermediate_size=2816, vocab_size=151936, tie_word_embeddings=False),
    "qwen3-4b": dict(arch="qwen3", hidden_size=2560, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     intermediate_size=9728, vocab_size=151936, tie_word_embeddings=True),
    "tiny": dict(arch="qwen3", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, intermediate_size=128, vocab_size=512,
                 tie_word_embeddings=True),
}


def peak_flops() -> float | None:
    """The chip's dense bf16 peak in FLOP/s, or None when unknown (CPU, other GPUs)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_BF16_FLOPS:
        if key in name:
            return peak
    return None


def build_model(shape: str, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """A random-initialised sequence classifier (2 labels) at ``shape``, built on ``device``."""
    from transformers import (
        Qwen2Config,
        Qwen2ForSequenceClassification,
        Qwen3Config,
        Qwen3ForSequenceClassification,
    )

    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    config_cls, model_cls = ((Qwen2Config, Qwen2ForSequenceClassification) if arch == "qwen2"
                             else (Qwen3Config, Qwen3ForSequenceClassification))
    config = config_cls(**spec, num_labels=2, pad_token_id=0, max_position_embeddings=4096)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = model_cls(config)
    finally:
        torch.set_default_dtype(default_dtype)
    return model


def run_config(shape: str, ds_config: str, *, batch: int, seq_len: int, warmup: int,
               steps: int, device: torch.device, precision: str) -> str:
    """Time ``steps`` engine training steps after ``warmup``; return the result line."""
    from transfer.engine import EngineConfig, TrainHooks
    from transfer.engine.core import engine_session, train_step

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = build_model(shape, dtype, device)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    vocab = SHAPES[shape]["vocab_size"]
    ids = torch.randint(1, vocab, (batch, seq_len), generator=gen).to(device)
    batch_inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    p1 = torch.rand(batch, generator=gen)
    targets = torch.stack([1 - p1, p1], dim=1).to(device)
    weights = torch.ones(batch, device=device)
    config = EngineConfig(lr=1e-5, batch_size=batch, ds_config=ds_config, precision=precision,
                          grad_clip=1.0)
    hooks = TrainHooks()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with engine_session(model, config, warmup + steps) as session:
        for _ in range(warmup):
            train_step(session, batch_inputs, targets, weights, hooks=hooks, progress=0.0)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            loss = train_step(session, batch_inputs, targets, weights, hooks=hooks,
                              progress=0.0)
        sync()
        elapsed = time.perf_counter() - start
    tokens_per_s = batch * seq_len * steps / elapsed
    peak = peak_flops()
    mfu = f"{6 * n_params * tokens_per_s / peak:6.1%}" if peak else "   n/a"
    memory = (f"{torch.cuda.max_memory_allocated() / 2**30:6.1f} GiB" if device.type == "cuda"
              else "   n/a")
    if not math.isfinite(float(loss)):
        raise FloatingPointError(f"loss is {float(loss)}")
    return (f"{shape:<13} {ds_config:<13} params {n_params / 1e9:6.3f}B  "
            f"step {elapsed / steps * 1e3:8.1f} ms  tokens/s {tokens_per_s:10.0f}  MFU {mfu}  "
            f"peak mem {memory}  loss {float(loss):.3f}")


def breakdown(shape: str, ds_config: str, *, batch: int, seq_len: int, steps: int,
              device: torch.device, precision: str) -> str:
    """Median forward / backward / optimizer-step times of the engine, and a bare PyTorch
    step (bf16 weights, torch AdamW, no fp32 master copy) on the same model and batch."""
    import statistics

    from transfer.engine import EngineConfig, soft_cross_entropy
    from transfer.engine.core import _logits_of, engine_session

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = build_model(shape, dtype, device)
    vocab = SHAPES[shape]["vocab_size"]
    ids = torch.randint(1, vocab, (batch, seq_len), device=device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    targets = torch.full((batch, 2), 0.5, device=device)
    weights = torch.ones(batch, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        return result, time.perf_counter() - start

    def bare_step_times() -> list[float]:
        # In a function of its own so that the bare model and its optimizer are freed on return,
        # before the engine allocates its copy.
        bare_model = build_model(shape, dtype, device)
        bare_model.load_state_dict(model.state_dict())
        optimizer = torch.optim.AdamW(bare_model.parameters(), lr=1e-5)

        def bare_step() -> None:
            loss = soft_cross_entropy(_logits_of(bare_model(**inputs)), targets, weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bare_model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return [timed(bare_step)[1] for _ in range(steps + 2)]

    bare_times = bare_step_times()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    config = EngineConfig(lr=1e-5, batch_size=batch, ds_config=ds_config, precision=precision)
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "step": []}
    with engine_session(model, config, steps + 2) as session:
        engine = session.engine
        for _ in range(steps + 2):
            logits, t_fwd = timed(lambda: _logits_of(engine(**inputs)))
            loss = soft_cross_entropy(logits, targets, weights)
            _, t_bwd = timed(lambda loss=loss: engine.backward(loss))
            _, t_step = timed(engine.step)
            for key, value in zip(phases, (t_fwd, t_bwd, t_step)):
                phases[key].append(value)
    median = {k: statistics.median(v[2:]) * 1e3 for k, v in phases.items()}
    bare = statistics.median(bare_times[2:]) * 1e3
    engine_total = sum(median.values())
    return (f"{shape:<13} {ds_config:<13} breakdown ms: forward {median['forward']:.1f} "
            f"backward {median['backward']:.1f} step {median['step']:.1f} "
            f"(total {engine_total:.1f}); bare torch step {bare:.1f}; "
            f"ratio {engine_total / bare:.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run every (shape, config); one line each; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny shape, fp32, on CPU (checks the code path without a GPU)")
    parser.add_argument("--shapes", default="qwen1.5-0.5b,qwen3-4b")
    parser.add_argument("--ds-configs", default="zero2,zero3")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--breakdown", action="store_true",
                        help="time forward/backward/step and a bare PyTorch step instead")
    parser.add_argument("--budget-s", type=float, default=330.0,
                        help="skip configs that would start after this many seconds")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        shapes, device, precision = ["tiny"], torch.device("cpu"), "fp32"
        args.batch, args.seq_len, args.warmup, args.steps = 4, 32, 1, 2
    else:
        if not torch.cuda.is_available():
            print("no CUDA device; use --cpu-smoke on a machine without a GPU")
            return 2
        shapes, device, precision = args.shapes.split(","), torch.device("cuda", 0), "bf16"
        torch.backends.cuda.matmul.allow_tf32 = True
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}; peak bf16 {peak_flops() or 'n/a'}; torch {torch.__version__}; "
          f"batch {args.batch} x seq {args.seq_len}; {args.warmup} warm-up + {args.steps} timed "
          "steps", flush=True)
    failures = 0
    for shape in shapes:
        for ds_config in args.ds_configs.split(","):
            if time.perf_counter() - started > args.budget_s:
                print(f"{shape:<13} {ds_config:<13} skipped: time budget spent", flush=True)
                continue
            try:
                if args.breakdown:
                    line = breakdown(shape, ds_config, batch=args.batch, seq_len=args.seq_len,
                                     steps=args.steps, device=device, precision=precision)
                else:
                    line = run_config(shape, ds_config, batch=args.batch, seq_len=args.seq_len,
                                      warmup=args.warmup, steps=args.steps, device=device,
                                      precision=precision)
            except Exception as err:  # noqa: BLE001 - one failing config must not stop the rest
                failures += 1
                detail = traceback.format_exc(limit=-3).strip().splitlines()
                line = f"{shape:<13} {ds_config:<13} FAILED: {type(err).__name__}: {err}"
                print("\n".join("    " + d for d in detail[-6:]), file=sys.stderr)
            print(line, flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
