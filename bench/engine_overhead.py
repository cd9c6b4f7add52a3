"""Engine training-step time over a bare PyTorch AdamW loop, same model and batch, same process.

Usage: ``python bench/engine_overhead.py [--rounds R] [--steps K] [--skip-2proc]``.

For each case the bare loop (forward, soft cross-entropy, backward, clip, AdamW step, schedule
step) and the engine (`transfer.engine.core.train_step` inside `engine_session`, the exact code
`train` runs) train identical copies of the model on the same batch, in alternating blocks of K
steps, R rounds; the ratio is median engine step time / median bare step time. The 2-process
case relaunches this file under the deepspeed launcher: each rank trains half of the global
batch through the engine, against the bare loop on the whole batch in rank 0 (so a ratio under 1
means data parallelism paid off on this machine's cores).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from transfer.engine import EngineConfig, TrainHooks, soft_cross_entropy  # noqa: E402
from transfer.engine.core import _logits_of, engine_session, train_step  # noqa: E402
from transfer.engine.dist import ensure_process_group  # noqa: E402
from transfer.engine.schedule import lr_multiplier  # noqa: E402


class LinearProbe(nn.Module):
    """The tiny ladder's probe: a 2-way head on frozen features."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.head = nn.Linear(dim, 2)

    def forward(self, features):
        return self.head(features)


def qwen_small() -> nn.Module:
    """A small Qwen2ForSequenceClassification (random init, ~0.2M parameters)."""
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    config = Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, num_labels=2, pad_token_id=0,
                         tie_word_embeddings=False)
    return Qwen2ForSequenceClassification(config)


def make_case(name: str, global_batch: int) -> tuple[nn.Module, dict, torch.Tensor]:
    """A model, one global batch of inputs and soft targets."""
    gen = torch.Generator().manual_seed(0)
    if name == "probe":
        model = LinearProbe()
        inputs = {"features": torch.randn(global_batch, 256, generator=gen)}
    else:
        model = qwen_small()
        ids = torch.randint(1, 1000, (global_batch, 32), generator=gen)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    p1 = torch.rand(global_batch, generator=gen)
    return model, inputs, torch.stack([1 - p1, p1], dim=1)


def time_steps(step, count: int) -> list[float]:
    """Per-step wall times (s) of ``count`` calls of ``step``."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def bare_stepper(model: nn.Module, inputs: dict, targets: torch.Tensor, config: EngineConfig,
                 total_steps: int):
    """One plain PyTorch training step with the engine's optimizer, clipping and schedule."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(config.schedule, total_steps, 0))
    weights = torch.ones(len(targets))
    model.train()

    def step() -> None:
        loss = soft_cross_entropy(_logits_of(model(**inputs)), targets, weights)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure(case: str, ds_config: str, *, rounds: int, steps: int, batch: int) -> dict:
    """Alternate bare and engine blocks; return median step times and their ratio."""
    rank, world = ensure_process_group()
    model, inputs, targets = make_case(case, batch)
    bare_model = copy.deepcopy(model)
    config = EngineConfig(lr=1e-4, batch_size=batch, ds_config=ds_config, grad_clip=1.0)
    total = (rounds + 1) * steps
    bare = bare_stepper(bare_model, inputs, targets, config, total)
    local = torch.tensor_split(torch.arange(batch), world)[rank]
    local_inputs = {k: v[local] for k, v in inputs.items()}
    local_targets, local_weights = targets[local], torch.ones(len(local))
    hooks = TrainHooks()
    bare_times: list[float] = []
    engine_times: list[float] = []
    with engine_session(model, config, total) as session:
        def engine_step() -> None:
            train_step(session, local_inputs, local_targets, local_weights, hooks=hooks,
                       progress=0.0)

        time_steps(engine_step, steps)  # warm-up (allocations, first collectives)
        if rank == 0:
            time_steps(bare, steps)
        for _ in range(rounds):
            if world > 1:
                torch.distributed.barrier()
            if rank == 0:
                bare_times += time_steps(bare, steps)
            if world > 1:
                torch.distributed.barrier()
            engine_times += time_steps(engine_step, steps)
    bare_ms = statistics.median(bare_times) * 1e3 if bare_times else float("nan")
    engine_ms = statistics.median(engine_times) * 1e3
    return {"case": case, "ds_config": ds_config, "processes": world, "batch": batch,
            "bare_ms": bare_ms, "engine_ms": engine_ms, "ratio": engine_ms / bare_ms}


def _two_process_rows(args: argparse.Namespace) -> list[dict]:
    from transfer.engine import launch_module

    rows = []
    for case, ds_config, batch in (("qwen-small", "zero0", 16), ("qwen-small", "zero2", 16)):
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"engine_overhead_{os.getpid()}.json"
        result = launch_module("bench.engine_overhead",
                               ["--worker", case, ds_config, str(batch), str(out),
                                "--rounds", str(args.rounds), "--steps", str(args.steps)],
                               processes=2, capture_output=True, timeout=900)
        if result.returncode != 0:
            print(f"2-process {case}/{ds_config} failed:\n{result.stderr[-2000:]}",
                  file=sys.stderr)
            continue
        rows.append(json.loads(out.read_text()))
        out.unlink()
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--skip-2proc", action="store_true")
    parser.add_argument("--worker", nargs=4, metavar=("CASE", "DS", "BATCH", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.worker:
        case, ds_config, batch, out = args.worker
        row = measure(case, ds_config, rounds=args.rounds, steps=args.steps, batch=int(batch))
        if torch.distributed.get_rank() == 0:
            Path(out).write_text(json.dumps(row))
        return
    rows = [measure("qwen-small", ds, rounds=args.rounds, steps=args.steps, batch=16)
            for ds in ("zero0", "zero2", "zero3")]
    rows.append(measure("probe", "zero0", rounds=args.rounds, steps=args.steps * 4, batch=64))
    if not args.skip_2proc:
        rows += _two_process_rows(args)
    print(f"\n{'case':<11} {'ds':<6} {'procs':>5} {'batch':>5} {'bare ms':>8} "
          f"{'engine ms':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['case']:<11} {row['ds_config']:<6} {row['processes']:>5} {row['batch']:>5} "
              f"{row['bare_ms']:>8.3f} {row['engine_ms']:>9.3f} {row['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
