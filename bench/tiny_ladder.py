"""The tiny ladder's three arms on every rung, per seed: accuracy, gap, vanilla PGR, time, memory.

    OMP_NUM_THREADS=1 .venv/bin/python bench/tiny_ladder.py --seeds 0 1 2 [--fresh-cache]

``--fresh-cache`` points W2S_CACHE_DIR at a new temp dir first, so the one-time pretraining of the
tiny models is included in the first seed's time (reported separately from the warm seeds).
Peak memory is this process's maximum resident set size (``ru_maxrss``).
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ladder", default="tiny")
    parser.add_argument("--fresh-cache", action="store_true")
    args = parser.parse_args()
    if args.fresh_cache:
        os.environ["W2S_CACHE_DIR"] = tempfile.mkdtemp(prefix="w2s-bench-cache-")
    store_dir = tempfile.mkdtemp(prefix="w2s-bench-store-")

    from transfer.arms import ArmContext, run_arm
    from transfer.data import load_task
    from transfer.engine import EngineConfig
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    def vanilla(data, trainer):
        return trainer.fit(data.weak_probs).predict_test()

    ladder = load_ladder(args.ladder)
    ctx = ArmContext(ladder=ladder, task=load_task(None), store=RunStore(store_dir),
                     engine_config=EngineConfig(**ladder.training))
    print("| seed | rung | weak | ceiling | vanilla student | gap (pp) | PGR |")
    print("|---|---|---|---|---|---|---|")
    rows, seconds = [], {}
    for seed in args.seeds:
        start = time.perf_counter()
        for rung in ladder.rungs:
            acc = {}
            for arm in ("weak", "ceiling", "student"):
                record = run_arm(ctx, rung.name, arm, seed,
                                 method="vanilla" if arm == "student" else None,
                                 method_fn=vanilla if arm == "student" else None)
                acc[arm] = record.metrics["accuracy"]
            gap = acc["ceiling"] - acc["weak"]
            pgr = (acc["student"] - acc["weak"]) / gap if gap else float("nan")
            rows.append((rung.name, gap, pgr))
            print(f"| {seed} | {rung.name} | {acc['weak']:.4f} | {acc['ceiling']:.4f} | "
                  f"{acc['student']:.4f} | {100 * gap:+.1f} | {pgr:.2f} |", flush=True)
        seconds[seed] = time.perf_counter() - start
    print()
    for rung in ladder.rungs:
        gaps = [g for r, g, _ in rows if r == rung.name]
        pgrs = [p for r, _, p in rows if r == rung.name]
        print(f"rung {rung.name}: mean gap {100 * sum(gaps) / len(gaps):+.1f} pp, "
              f"min gap {100 * min(gaps):+.1f} pp, mean vanilla PGR {sum(pgrs) / len(pgrs):.2f}")
    for seed, secs in seconds.items():
        print(f"seed {seed}: all arms of all rungs in {secs:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
