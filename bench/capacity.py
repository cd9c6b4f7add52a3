"""Capacity on paper for the `qwen` ladder (docs/scale.md): arms, GPU-hours, nodes, wall time.

Usage: ``python bench/capacity.py [--methods 4] [--seeds 6] [--label 5000] [--unlabel 10000]
[--test 2000] [--tokens 512] [--gpus-per-node 8]``. Pure arithmetic, no GPU: every input is
printed with the result, and which numbers are measured and which are estimates is stated.

Inputs:
- measured (README, bench/gpu_check.sh on one H200, full fine-tuning, bf16, ZeRO-2): 70,036
  tokens/s for Qwen1.5-0.5B (batch 32 x 512), 8,708 tokens/s for Qwen3-4B (batch 8 x 512, MFU
  21.3%);
- estimate: every other model at that same 21.3% MFU: tokens/s = 0.213 * 989e12 / (6 * params);
- the ladder (transfer/ladders/qwen.yaml): rungs, parameter counts, 5 epochs, batch 32;
- assumed dataset sizes (arguments): weak trains on ``label`` examples and predicts ``unlabel +
  test``; the ceiling and each student train on ``unlabel`` and predict ``test``; a prediction
  token costs a third of a training token (forward only).
"""
from __future__ import annotations

import argparse
import math

H200_BF16_FLOPS = 989e12
H200_MEMORY_GB = 141.0
MEASURED_MFU_4B = 0.213
MEASURED_TOKENS_PER_S = {"qwen1.5-0.5b-chat": 70036.0, "qwen3-4b-base": 8708.0}
PARAMS = {"qwen1.5-0.5b-chat": 0.5e9, "qwen3-1.7b-base": 1.7e9, "qwen3-4b-base": 4.0e9,
          "qwen3-8b-base": 8.2e9, "qwen3-14b-base": 14.8e9, "qwen2.5-32b": 32.5e9,
          "qwen2.5-72b": 72.7e9}
RUNGS = [("discovery", "qwen1.5-0.5b-chat", "qwen3-4b-base"),
         ("r1-14b", "qwen3-1.7b-base", "qwen3-14b-base"),
         ("r2-32b", "qwen3-4b-base", "qwen2.5-32b"),
         ("r3-72b", "qwen3-8b-base", "qwen2.5-72b")]
EPOCHS, BATCH = 5, 32


def tokens_per_s(model: str) -> tuple[float, str]:
    if model in MEASURED_TOKENS_PER_S:
        return MEASURED_TOKENS_PER_S[model], "measured"
    return MEASURED_MFU_4B * H200_BF16_FLOPS / (6 * PARAMS[model]), "estimate"


def gpus_by_memory(params: float, bytes_per_param: float, sharded: bool) -> int:
    """GPUs whose memory holds the model state (weights, gradients, optimizer), activations
    not counted: replicated state must fit one GPU; sharded (ZeRO-3) state is split."""
    need = params * bytes_per_param / 1e9
    return 1 if not sharded and need <= H200_MEMORY_GB else math.ceil(need / H200_MEMORY_GB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--seeds-per-look", type=int, default=2)
    parser.add_argument("--label", type=int, default=5000)
    parser.add_argument("--unlabel", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    args = parser.parse_args()
    tokens = args.tokens
    weak_tokens = EPOCHS * args.label * tokens + (args.unlabel + args.test) * tokens / 3
    strong_tokens = EPOCHS * args.unlabel * tokens + args.test * tokens / 3
    strong_arms = 1 + 1 + args.methods  # ceiling, baseline, methods
    arms_per_seed = 1 + strong_arms
    print(f"plan: {args.methods} methods x {args.seeds} seeds; per rung and dataset "
          f"{arms_per_seed} arms per seed (weak, ceiling, baseline, {args.methods} methods) = "
          f"{arms_per_seed * args.seeds} arms at most (the sequential design stops decided "
          "methods earlier)")
    print(f"dataset (assumed): {args.label} labelled, {args.unlabel} unlabelled, {args.test} "
          f"test examples of {tokens} tokens; {EPOCHS} epochs")
    print("| rung | weak tok/s | strong tok/s | GPU-h per seed | GPU-h, all seeds | GPUs by "
          "memory LoRA (ZeRO-2 / ZeRO-3) | GPUs by memory full FT (ZeRO-3) |")
    print("|---|---|---|---|---|---|---|")
    hours = {}
    for rung, weak, strong in RUNGS:
        weak_rate, weak_kind = tokens_per_s(weak)
        strong_rate, strong_kind = tokens_per_s(strong)
        per_seed = (weak_tokens / weak_rate + strong_arms * strong_tokens / strong_rate) / 3600
        hours[rung] = per_seed
        lora_z2 = gpus_by_memory(PARAMS[strong], 2, sharded=False)
        lora_z3 = gpus_by_memory(PARAMS[strong], 2, sharded=True)
        full = gpus_by_memory(PARAMS[strong], 16, sharded=True)
        lora = f"{lora_z2}" if lora_z2 == 1 else f"does not fit one GPU / {lora_z3}"
        print(f"| {rung} | {weak_rate:,.0f} ({weak_kind}) | {strong_rate:,.0f} ({strong_kind}) "
              f"| {per_seed:.1f} | {per_seed * args.seeds:.1f} | {lora} | {full} "
              f"({math.ceil(full / args.gpus_per_node)} node(s)) |")
    total = sum(hours.values()) * args.seeds
    print(f"total: {total:.0f} GPU-hours (estimate; full fine-tuning throughput, LoRA needs "
          "fewer FLOPs per token)")
    looks = math.ceil(args.seeds / args.seeds_per_look)
    max_ranks = BATCH  # a global batch of 32 splits over at most 32 data-parallel ranks
    print(f"wall time, pool executor, {len(RUNGS)} groups per look (one per rung), {looks} looks "
          f"of {args.seeds_per_look} seeds, at most {max_ranks} data-parallel GPUs per group:")
    for nodes in (1, 8, 64):
        gpus = nodes * args.gpus_per_node
        if nodes < len(RUNGS):
            # groups queue on the nodes: the look takes the sum over groups.
            per_look = sum(h * args.seeds_per_look / min(gpus, max_ranks)
                           for h in hours.values()) / 1
            note = "groups one after another"
        else:
            per_group_gpus = min(gpus // len(RUNGS), max_ranks)
            per_look = max(h * args.seeds_per_look / per_group_gpus for h in hours.values())
            note = (f"{len(RUNGS)} groups at once, {per_group_gpus} GPUs each "
                    f"(compute.nodes = {per_group_gpus // args.gpus_per_node}); "
                    f"{gpus - len(RUNGS) * per_group_gpus} GPUs idle")
        print(f"  {nodes:>2} node(s), {gpus:>3} GPUs: {per_look * looks:6.1f} h ({note})")


if __name__ == "__main__":
    main()
