"""Cost of the run store's integrity checks and first-wins writes, against the unchecked store.

Usage: ``python bench/store_verify.py [--runs N] [--test-size M] [--rounds R]``.

Builds a store of N weak runs whose test split has M examples (the tiny ladder's default test
split is 2000) and times, in alternating rounds in this one process:

- reuse, checked: ``store.get(spec)`` (manifest, sha256 of every file, spec binding) then
  ``record.predictions()`` and ``record.metrics`` (each hashing the bytes it parses), which is
  what ``run_arm`` and the results table do with a reused run;
- reuse, unchecked (the baseline; what the store did before): an existence check of
  ``COMPLETE`` then ``pd.read_parquet`` and ``json.loads`` of the same files;
- write, checked: ``store.put`` (files, manifest, fsync, one rename) of a fresh run;
- claim: ``store.claim(spec)`` of a run nobody holds, entered and left (lease created, heartbeat
  registered, lease removed), the coordination cost a computed run pays;
- write, unchecked: the same files (package versions included) written into a temp directory
  and renamed, no manifest, no fsync: the store's earlier write path.

Prints the median per run of each and the ratios; the last line is ``verify ratio X`` (checked
reuse time / unchecked reuse time).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from transfer.store import COMPLETE, RunSpec, RunStore, versions  # noqa: E402


def spec(seed: int) -> RunSpec:
    return RunSpec(arm="weak", ladder="tiny", rung="r0", dataset="synthetic",
                   dataset_fingerprint="f" * 16, seed=seed, model="tiny-48x2",
                   model_fingerprint="m" * 16, hparams={"lr": 0.01, "epochs": 5})


def frames(test_size: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    prob = rng.uniform(size=test_size)
    pred = (prob > 0.5).astype(np.int64)
    predictions = pd.DataFrame({"example_id": [f"test-{i:06d}" for i in range(test_size)],
                                "prob": prob, "pred": pred,
                                "correct": rng.integers(0, 2, size=test_size)})
    soft = pd.DataFrame({"example_id": [f"unl-{i:06d}" for i in range(test_size)],
                         "prob": rng.uniform(size=test_size)})
    return predictions, soft


def reuse_checked(store: RunStore, specs: list[RunSpec]) -> float:
    start = time.perf_counter()
    for s in specs:
        record = store.get(s)
        record.predictions(), record.metrics
    return (time.perf_counter() - start) / len(specs)


def reuse_unchecked(store: RunStore, specs: list[RunSpec]) -> float:
    start = time.perf_counter()
    for s in specs:
        path = store.path(s)
        assert (path / COMPLETE).exists()
        pd.read_parquet(path / "predictions.parquet")
        json.loads((path / "metrics.json").read_text())
    return (time.perf_counter() - start) / len(specs)


def claim_free(store: RunStore, seed: int) -> float:
    start = time.perf_counter()
    with store.claim(spec(seed)) as done:
        assert done is None
    return time.perf_counter() - start


def write_checked(root: Path, predictions, soft, seed: int) -> float:
    store = RunStore(root)
    start = time.perf_counter()
    store.put(spec(seed), predictions, {"accuracy": 0.5}, soft_labels=soft)
    return time.perf_counter() - start


def write_unchecked(root: Path, predictions, soft, seed: int) -> float:
    final = root / "weak" / spec(seed).run_hash()
    final.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".", suffix=".tmp"))
    (tmp / "spec.json").write_text(spec(seed).model_dump_json(indent=2))
    predictions.to_parquet(tmp / "predictions.parquet", index=False)
    soft.to_parquet(tmp / "soft_labels.parquet", index=False)
    (tmp / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "versions": versions()}))
    (tmp / "config.json").write_text("{}")
    (tmp / COMPLETE).write_text(spec(seed).run_hash() + "\n")
    os.replace(tmp, final)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="w2s-store-bench-"))
    try:
        store = RunStore(work / "store")
        specs = [spec(i) for i in range(args.runs)]
        for i, s in enumerate(specs):
            predictions, soft = frames(args.test_size, i)
            store.put(s, predictions, {"accuracy": 0.5}, soft_labels=soft)
        predictions, soft = frames(args.test_size, 0)
        times: dict[str, list[float]] = {
            k: [] for k in ("reuse_checked", "reuse_unchecked", "write_checked", "write_unchecked",
                            "claim")}
        for round_ in range(args.rounds):
            times["reuse_unchecked"].append(reuse_unchecked(store, specs))
            times["reuse_checked"].append(reuse_checked(store, specs))
            for j in range(5):
                seed = 10_000 + round_ * 10 + j
                times["write_unchecked"].append(write_unchecked(work / "plain", predictions,
                                                                soft, seed))
                times["write_checked"].append(write_checked(work / "checked", predictions,
                                                            soft, seed))
                times["claim"].append(claim_free(store, seed))
        size = sum(f.stat().st_size for f in store.path(specs[0]).iterdir())
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"{args.runs} runs, test split {args.test_size}, {size / 1024:.0f} KiB per run, "
              f"{args.rounds} rounds (medians, ms per run)")
        print(f"reuse checked {med['reuse_checked']:.2f} ms, unchecked {med['reuse_unchecked']:.2f}"
              f" ms: +{med['reuse_checked'] - med['reuse_unchecked']:.2f} ms per reused run")
        print(f"write checked {med['write_checked']:.2f} ms, unchecked "
              f"{med['write_unchecked']:.2f} ms (ratio "
              f"{med['write_checked'] / med['write_unchecked']:.2f})")
        print(f"claim of a free run (lease taken and released) {med['claim']:.2f} ms")
        print(f"verify ratio {med['reuse_checked'] / med['reuse_unchecked']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
