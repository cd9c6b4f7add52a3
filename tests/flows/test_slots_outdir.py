"""Device slots and the output-directory lease, at the library level (fast; no Prefect).

The command-line behaviour (a validation waiting, Ctrl-C, SIGKILL) is in test_concurrency.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.outdir import LEASE_NAME, exclusive_out
from flows.slots import SlotWaitAborted, device_slots, parse_slot_setting
from transfer import leases
from w2s_common.errors import InputError

REPO = Path(__file__).resolve().parents[2]

HOLD_OUT = """
import sys, time
from flows.outdir import exclusive_out
with exclusive_out(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""

HOLD_SLOT = """
import sys, time
from pathlib import Path
from flows.slots import device_slots
with device_slots(1, directory=Path(sys.argv[1])) as held:
    print("held", held.indices, flush=True)
    time.sleep(600)
"""


def holder(script: str, arg: Path, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(arg)], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("held")
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_an_out_dir_held_by_a_live_process_is_refused_until_it_dies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = holder(HOLD_OUT, out)
    try:
        with pytest.raises(InputError) as info:
            with exclusive_out(out):
                pass
        assert str(info.value) == (f"{out}: in use by a running validation (pid {proc.pid} on "
                                   f"{os.uname().nodename}); wait for it to end or choose "
                                   "another --out")
    finally:
        kill(proc)
    with exclusive_out(out):  # the dead holder's lease is broken at once
        with exclusive_out(out):  # re-entrant within a process (CLI, then its flow)
            assert (out / LEASE_NAME).exists()
        assert (out / LEASE_NAME).exists()
    assert out.exists() and not (out / LEASE_NAME).exists()


def test_an_out_dir_created_for_nothing_is_removed(tmp_path: Path) -> None:
    with exclusive_out(tmp_path / "a" / "b"):
        pass
    assert not (tmp_path / "a" / "b").exists()
    with exclusive_out(tmp_path / "c"):
        (tmp_path / "c" / "verdict.json").write_text("{}")
    assert (tmp_path / "c" / "verdict.json").exists()


def _foreign_lease(path: Path, host: str) -> None:
    """A lease written by a process on another machine (its pid means nothing here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": "t" * 32, "host": host, "pid": 1, "started": "1",
                                "job": "", "ttl_s": 0.6}))


def test_a_foreign_out_lease_is_refused_while_renewed_and_taken_once_silent(tmp_path) -> None:
    out = tmp_path / "out"
    lease = out / LEASE_NAME
    _foreign_lease(lease, "elsewhere|boot|ns")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(0.1):
            os.utime(lease)

    beat = threading.Thread(target=renew)
    beat.start()
    try:
        with pytest.raises(InputError, match="pid 1 on elsewhere"):
            with exclusive_out(out):
                pass
    finally:
        stop.set()
        beat.join()
    # Silent for one TTL (the waiter's and the lease's, 0.6 s here): broken and taken.
    taken, info = leases.acquire_unless_held(lease, ttl_s=0.6, poll_s=0.05)
    assert info is None and json.loads(lease.read_text())["pid"] == os.getpid()
    taken.release()


def test_slot_setting_parses() -> None:
    assert parse_slot_setting(None) == "auto" and parse_slot_setting(" Auto ") == "auto"
    assert parse_slot_setting("off") is None and parse_slot_setting("3") == 3
    for bad in ("0", "-1", "two", "1.5", "5000"):
        with pytest.raises(InputError, match="W2S_DEVICE_SLOTS: expected 'auto', 'off' or a "
                                             "whole number of slots from 1 to 4096"):
            parse_slot_setting(bad)


def test_a_held_slot_makes_others_wait_and_a_killed_holder_frees_it(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_DEVICE_SLOTS", "1")
    monkeypatch.setenv("W2S_LEASE_TTL_S", "600")  # a dead local holder must cost no TTL
    slots = tmp_path / "slots"
    proc = holder(HOLD_SLOT, slots, W2S_DEVICE_SLOTS="1")
    told: list[str] = []
    try:
        polls = iter(range(3))
        with pytest.raises(SlotWaitAborted):
            # stop() says "shutting down" on the third poll: the wait ends there.
            with device_slots(1, directory=slots, poll_s=0.01, on_wait=told.append,
                              stop=lambda: next(polls) == 2):
                pytest.fail("got a slot another live process holds")
        assert told == [f"waiting for 1 of 1 device slot(s) (slot 0: pid {proc.pid} on "
                        f"{os.uname().nodename})"]
    finally:
        kill(proc)
    start = time.monotonic()
    with device_slots(1, directory=slots, poll_s=0.01) as held:
        assert held.indices == (0,)
    assert time.monotonic() - start < 60, "waited for the TTL instead of seeing the death"


def test_slots_are_taken_all_at_once_or_not_at_all(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("W2S_DEVICE_SLOTS", "2")
    slots = tmp_path / "slots"
    proc = holder(HOLD_SLOT, slots, W2S_DEVICE_SLOTS="2")
    try:
        with pytest.raises(SlotWaitAborted):
            with device_slots(2, directory=slots, poll_s=0.01, stop=lambda: True):
                pass
        assert sorted(p.name for p in slots.glob("*.lease")) == ["slot-0.lease"]  # none kept
        with device_slots(1, directory=slots, poll_s=0.01) as held:
            assert held.indices == (1,)
        with pytest.raises(InputError, match="needs 3 device slots; this machine has 2"):
            with device_slots(3, directory=slots):
                pass
    finally:
        kill(proc)


def test_no_limit_without_gpus_by_default(tmp_path, monkeypatch) -> None:
    from flows import machine

    monkeypatch.delenv("W2S_DEVICE_SLOTS", raising=False)
    monkeypatch.setattr(machine, "cuda_devices", lambda: 0)
    with device_slots(8, directory=tmp_path) as held:
        assert held.indices == () and not list(tmp_path.iterdir())


def test_gpu_slots_pin_their_devices(tmp_path, monkeypatch) -> None:
    """When slots are GPUs, a group runs on the devices of its slots: CUDA_VISIBLE_DEVICES for
    one process, DeepSpeed's --include for several."""
    from flows import machine
    from transfer.engine import launcher_command

    monkeypatch.setattr(machine, "cuda_devices", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("W2S_DEVICE_SLOTS", raising=False)
    with (device_slots(1, directory=tmp_path) as first,
          device_slots(1, directory=tmp_path) as second):
        assert (first.devices, second.devices) == (("3",), ("5",))
    with device_slots(2, directory=tmp_path) as both:
        argv = launcher_command("flows.worker", ["g.json"], processes=2, devices=both.devices)
    assert argv[argv.index("--include") + 1] == "localhost:3,5" and "--num_gpus" not in argv
    monkeypatch.setenv("W2S_DEVICE_SLOTS", "4")  # more slots than GPUs: no pinning
    with device_slots(1, directory=tmp_path) as held:
        assert held.devices == ()
