"""Concurrent writers and readers of one store (issue 9's race script): every write succeeds, the
first complete copy of a run wins and is never replaced, and a reader never sees a run without
its manifest or with content other than the winner's."""
from __future__ import annotations

import multiprocessing
import os

import pandas as pd

from transfer.fsutil import publish_dir, staging_dir
from transfer.store import COMPLETE, RunSpec, RunStore

WRITERS, ROUNDS = 6, 25
FORK = multiprocessing.get_context("fork")


def _spec(seed: int) -> RunSpec:
    return RunSpec(arm="weak", ladder="tiny", rung="r0", dataset="synthetic",
                   dataset_fingerprint="f", seed=seed, model="tiny-48x2", model_fingerprint="m")


def _predictions(writer: int, n: int = 4000) -> pd.DataFrame:
    # Big enough that writing takes a while, so writes of one round overlap.
    return pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "prob": [0.25] * n,
                         "pred": [0] * n, "correct": [(i + writer) % 2 for i in range(n)]})


def _writer(root, writer, barrier, queue):
    errors, won = [], 0
    store = RunStore(root)
    try:
        for seed in range(ROUNDS):
            barrier.wait(timeout=60)  # every writer starts the same run at once
            try:
                record = store.put(_spec(seed), _predictions(writer), {"writer": writer})
                record.metrics, record.predictions()  # the returned run reads back verified
            except Exception as err:  # noqa: BLE001 - the test counts every kind
                errors.append(f"{type(err).__name__}: {err}")
        won = len(store.executed) - len(store.discarded)
    finally:
        queue.put(("writer", writer, errors, won))


def _reader(root, stop, queue):
    """Poll every run: once its directory exists it must verify, and its writer never change."""
    store, seen, violations, reads = RunStore(root), {}, [], 0
    while not stop.is_set():
        for seed in range(ROUNDS):
            spec = _spec(seed)
            if not os.path.lexists(store.path(spec)):
                continue
            try:
                record = store.get(spec)
                writer = record.metrics["writer"]
                reads += 1
            except Exception as err:  # noqa: BLE001
                violations.append(f"seed {seed}: {type(err).__name__}: {err}")
                continue
            if seen.setdefault(seed, writer) != writer:
                violations.append(f"seed {seed}: writer {seen[seed]} replaced by {writer}")
    queue.put(("reader", violations, reads))


def test_race_many_writers_of_the_same_runs_and_a_reader(tmp_path):
    root = tmp_path / "store"
    RunStore(root)
    barrier, stop, queue = FORK.Barrier(WRITERS), FORK.Event(), FORK.Queue()
    reader = FORK.Process(target=_reader, args=(root, stop, queue))
    writers = [FORK.Process(target=_writer, args=(root, w, barrier, queue))
               for w in range(WRITERS)]
    reader.start()
    for process in writers:
        process.start()
    results = [queue.get(timeout=300) for _ in writers]
    stop.set()
    reader_result = queue.get(timeout=60)
    for process in writers + [reader]:
        process.join(timeout=30)
    errors = [e for _, _, errs, _ in results for e in errs]
    assert errors == [], errors[:5]
    # Exactly one writer's copy won each run: WRITERS x ROUNDS writes, ROUNDS winners.
    assert sum(won for *_, won in results) == ROUNDS
    _, violations, reads = reader_result
    assert violations == [], violations[:5]
    assert reads > 0
    # One complete copy per run, nothing else left behind (no staging directories).
    assert sorted(p.name for p in (root / "weak").iterdir()) == sorted(
        _spec(s).run_hash() for s in range(ROUNDS))
    assert all((root / "weak" / _spec(s).run_hash() / COMPLETE).exists() for s in range(ROUNDS))


def test_publish_keeps_the_first_copy_and_discards_the_second(tmp_path):
    final = tmp_path / "run"
    first, second = staging_dir(final), staging_dir(final)
    (first / "x").write_text("first")
    (second / "x").write_text("second")
    assert publish_dir(first, final) is True
    inode = final.stat().st_ino
    assert publish_dir(second, final) is False
    assert (final / "x").read_text() == "first" and final.stat().st_ino == inode
    assert not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_publish_fills_an_empty_placeholder(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    staged = staging_dir(final)
    (staged / "x").write_text("content")
    assert publish_dir(staged, final) is True
    assert (final / "x").read_text() == "content"
