"""Run claims: processes sharing one store compute each run once; a killed claim holder's lease
expires and the next process proceeds; a live holder's lease is renewed and never taken over;
ranks other than 0 follow their own job's rank 0."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from transfer import leases
from transfer.store import RunSpec, RunStore

FORK = multiprocessing.get_context("fork")


def _spec(seed: int = 0) -> RunSpec:
    return RunSpec(arm="weak", ladder="tiny", rung="r0", dataset="synthetic",
                   dataset_fingerprint="f", seed=seed, model="tiny-48x2", model_fingerprint="m")


# --- two processes running the same arms through run_arm ------------------------------------

class _FakeFitted:
    def __init__(self, backend, seed):
        self.backend, self.seed = backend, seed

    def predict(self, split):
        rng = np.random.default_rng([self.seed, len(self.backend.model_name), len(split)])
        return rng.uniform(size=self.backend.sizes[split])


class _FakeBackend:
    """Stands in for a tiny-model backend: every fit is logged to a shared counter file."""

    params = 1000

    def __init__(self, model_name, sizes, counter):
        self.model_name, self.sizes, self.counter = model_name, sizes, counter

    def fit(self, split, targets, *, seed, engine_config, weights=None, hooks=None):
        with open(self.counter, "a") as handle:
            handle.write(f"{os.getpid()} fit {self.model_name} {split} seed={seed}\n")
        time.sleep(0.3)  # long enough for the other process to ask for the same run
        return _FakeFitted(self, seed)

    def split_size(self, split):
        return self.sizes[split]

    def without(self, split):
        return self


def _context(root, counter):
    from transfer.arms import ArmContext
    from transfer.data import synthetic_task
    from transfer.engine import EngineConfig
    from transfer.ladder import load_ladder

    ladder = load_ladder("micro")
    task = synthetic_task(seed=0, n_train_label=40, n_train_unlabel=40, n_test=40, n_corpus=100)
    sizes = {name: len(split.ids) for name, split in task.splits.items()}
    backends = {name: _FakeBackend(name, sizes, counter) for name in ladder.models()}
    return ArmContext(ladder=ladder, task=task, store=RunStore(root, poll_s=0.02),
                      engine_config=EngineConfig(**ladder.training), _backends=backends)


def _campaign(root, counter, order, barrier, queue):
    from transfer.arms import run_arm

    def method(data, trainer):
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()} method seed={data.seed}\n")
        time.sleep(0.3)
        return np.full(len(data.test_ids), 0.7)

    ctx = _context(root, counter)
    barrier.wait(timeout=60)
    try:
        for seed, arm in order:
            run_arm(ctx, "m0", arm, seed, method=method.__name__ if arm == "student" else None,
                    method_fn=method if arm == "student" else None)
        queue.put([s.run_hash() for s in ctx.store.executed])
    except Exception as err:  # noqa: BLE001
        queue.put(f"{type(err).__name__}: {err}")


def test_two_campaigns_on_one_store_compute_every_run_once(tmp_path):
    import transfer.arms  # imported once here, not in each forked child
    import transfer.engine.core  # noqa: F401 (torch; the package itself imports it lazily)

    root, counter = tmp_path / "store", tmp_path / "fits.log"
    work = [(seed, arm) for seed in range(3) for arm in ("weak", "ceiling", "student")]
    barrier, queue = FORK.Barrier(2), FORK.Queue()
    processes = [FORK.Process(target=_campaign, args=(root, counter, order, barrier, queue))
                 for order in (work, work[::-1])]
    for process in processes:
        process.start()
    executed = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert all(isinstance(e, list) for e in executed), executed
    first, second = map(set, executed)
    assert first and second, "both campaigns should have computed some runs"
    assert not first & second, "a run was computed by both campaigns"
    assert len(first | second) == len(work)
    fits = counter.read_text().splitlines()
    assert len(fits) == len(work), fits  # each weak, ceiling and student computed once
    assert len(list((root / "weak").iterdir())) == 3


# --- a claim holder killed with SIGKILL -------------------------------------------------------

def _hold_claim(root, ttl, claimed):
    store = RunStore(root, lease_ttl_s=ttl)
    with store.claim(_spec()) as done:
        assert done is None
        claimed.set()
        time.sleep(600)


def _waiter(store):
    box = {}

    def wait():
        with store.claim(_spec()) as done:
            box["done"], box["at"] = done, time.monotonic()
            box["holder"] = leases.read_lease(store.lease_path(_spec()))

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.parametrize("same_machine", [True, False])
def test_a_killed_holders_claim_expires_and_the_next_process_proceeds(tmp_path, monkeypatch,
                                                                     same_machine):
    ttl = 0.8
    root = tmp_path / "store"
    claimed = FORK.Event()
    holder = FORK.Process(target=_hold_claim, args=(root, ttl, claimed))
    holder.start()
    try:
        assert claimed.wait(timeout=30)
        if not same_machine:
            # As seen from another machine: the owner's pid says nothing here, so only the
            # lease's missing heartbeat can show that it died.
            monkeypatch.setattr(leases, "_HOST", "another-machine|boot|ns")
        store = RunStore(root, lease_ttl_s=ttl, poll_s=0.02)
        thread, box = _waiter(store)
        # The holder is alive and renews its lease: three TTLs later it still holds the claim.
        thread.join(timeout=3 * ttl)
        assert thread.is_alive() and "at" not in box
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        thread.join(timeout=ttl + 10)
        assert not thread.is_alive(), "the waiter never took over the dead holder's claim"
        waited = box["at"] - killed
        assert box["done"] is None  # nothing was computed: the waiter must compute it now
        assert box["holder"].pid == os.getpid()
        if same_machine:
            assert waited < ttl, f"a local dead owner should be seen at once, took {waited:.2f}s"
        else:
            assert ttl * 0.7 < waited < ttl + 5, waited
    finally:
        if holder.is_alive():
            os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=10)


def test_a_claim_returns_the_run_another_process_published_while_waiting(tmp_path):
    import pandas as pd

    store = RunStore(tmp_path, poll_s=0.02)
    other = leases.try_acquire(store.lease_path(_spec()), ttl_s=30, job="other-campaign")
    thread, box = _waiter(store)
    time.sleep(0.3)
    assert thread.is_alive()
    frame = pd.DataFrame({"example_id": ["a"], "prob": [0.9], "pred": [1], "correct": [1]})
    RunStore(tmp_path).put(_spec(), frame, {"accuracy": 1.0})
    other.release()
    thread.join(timeout=10)
    assert box["done"] is not None and box["done"].metrics["accuracy"] == 1.0


# --- ranks of one data-parallel job -----------------------------------------------------------

def _rank1(root, queue):
    os.environ.update({"RANK": "1", "WORLD_SIZE": "2", "W2S_JOB_ID": "job-A"})
    store = RunStore(root, poll_s=0.02)
    with store.claim(_spec()) as done:
        queue.put(("claimed", done))
        import pandas as pd

        frame = pd.DataFrame({"example_id": ["a"], "prob": [0.2], "pred": [0], "correct": [0]})
        record = store.put(_spec(), frame, {"accuracy": 0.0, "rank": 1})
        queue.put(("put", record.metrics["rank"], leases.read_lease(store.lease_path(_spec()))))


def test_other_ranks_follow_their_own_rank_zero(tmp_path, monkeypatch):
    import pandas as pd

    root = tmp_path / "store"
    store = RunStore(root, poll_s=0.02)
    foreign = leases.try_acquire(store.lease_path(_spec()), ttl_s=30, job="job-B")
    queue = FORK.Queue()
    follower = FORK.Process(target=_rank1, args=(root, queue))
    follower.start()
    try:
        time.sleep(0.5)
        assert queue.empty(), "rank 1 must not start while another job holds the run"
        foreign.release()
        time.sleep(0.5)
        assert queue.empty(), "rank 1 never takes a lease itself"
        monkeypatch.setenv("W2S_JOB_ID", "job-A")
        with store.claim(_spec()) as done:  # rank 0 of job-A
            assert done is None
            assert queue.get(timeout=10) == ("claimed", None)
            time.sleep(0.3)
            assert queue.empty(), "rank 1's put waits for rank 0's copy"
            frame = pd.DataFrame({"example_id": ["a"], "prob": [0.9], "pred": [1],
                                  "correct": [1]})
            store.put(_spec(), frame, {"accuracy": 1.0, "rank": 0})
        kind, writer, _ = queue.get(timeout=10)
        assert (kind, writer) == ("put", 0)
    finally:
        follower.join(timeout=10)
        if follower.is_alive():
            follower.kill()
    assert not Path(store.lease_path(_spec())).exists()


def test_lease_ttl_is_validated(monkeypatch):
    from w2s_common.errors import InputError

    monkeypatch.setenv(leases.LEASE_TTL_ENV, "soon")
    with pytest.raises(InputError, match="W2S_LEASE_TTL_S"):
        leases.lease_ttl()
    monkeypatch.setenv(leases.LEASE_TTL_ENV, "-1")
    with pytest.raises(InputError, match="W2S_LEASE_TTL_S"):
        leases.lease_ttl()
    monkeypatch.setenv(leases.LEASE_TTL_ENV, "5")
    assert leases.lease_ttl() == 5.0


# --- lease primitives -------------------------------------------------------------------------

def test_a_lease_is_exclusive_and_only_its_owner_removes_it(tmp_path):
    path = tmp_path / "x.lease"
    first = leases.try_acquire(path, ttl_s=30)
    assert first is not None and leases.try_acquire(path, ttl_s=30) is None
    impostor = leases.Lease(path, "not-the-token", 30)
    impostor.release()
    assert path.exists() and leases.read_lease(path).token == first.token
    first.release()
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no private files left


def test_breaking_a_lease_renewed_meanwhile_puts_it_back(tmp_path):
    path = tmp_path / "x.lease"
    lease = leases.try_acquire(path, ttl_s=30)
    judged_expired = leases.read_lease(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the owner's heartbeat
    assert leases.break_lease(judged_expired) is False
    assert leases.read_lease(path).token == lease.token
    assert lease.renew() and not lease.lost.is_set()
    assert leases.break_lease(leases.read_lease(path)) is True
    assert not path.exists()
    assert lease.renew() is False and lease.lost.is_set()  # the owner notices
    lease.release()


def test_the_heartbeat_renews_held_leases(tmp_path):
    lease = leases.try_acquire(tmp_path / "x.lease", ttl_s=0.4)
    first = leases.read_lease(lease.path).signature
    time.sleep(0.5)
    assert leases.read_lease(lease.path).signature != first
    lease.release()
