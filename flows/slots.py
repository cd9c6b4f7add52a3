"""Device slots: how many arm groups train at once on this machine, across every flow run.

Each arm group holds ``compute.processes`` slots while its worker runs. A slot is an expiring
lease (``transfer.leases``) at ``$W2S_CACHE_DIR/slots/<host>/slot-<i>.lease``, held by the flow
process and renewed by its heartbeat. So a slot is free again:

- when the group ends, fails or is cancelled (released in ``finally``);
- at once when its holder process is gone on this machine (SIGKILL, the OOM killer): waiters
  see that the holder's pid is dead;
- after ``$W2S_LEASE_TTL_S`` without a heartbeat otherwise (a holder in another pid namespace
  sharing the cache, a frozen process).

This replaces the ``gpu`` task-tag concurrency limit, whose slot stayed taken forever after the
holder was killed. Prefect 3.9 keeps such slots in its server: a killed holder's task run stays
Running and keeps its tag slot; a global limit's lease (``prefect.concurrency``, at least 60 s)
does expire, but only a server running the lease repossessor gives the slot back, and an
ephemeral server (the CLI's embedded one) does not run that service.

``W2S_DEVICE_SLOTS``: ``auto`` (default) = one slot per visible CUDA device, and no limit on a
machine without one; a number N >= 1 = N slots; ``off`` = no limit. When slots are GPUs (a GPU
machine and N <= its devices), slot ``i`` is visible device ``i``: a group holding slots runs on
exactly those devices (``CUDA_VISIBLE_DEVICES``), so parallel groups never share a GPU.

A wait for a slot gives up as soon as ``stop()`` says the flow is shutting down (Ctrl-C,
SIGTERM), so a signal never leaves a thread waiting on a slot.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from transfer import leases
from w2s_common.errors import InputError

SLOTS_ENV = "W2S_DEVICE_SLOTS"
MAX_SLOTS = 4096


class ShutdownInProgress(RuntimeError):
    """Work refused or abandoned because the flow is shutting down (Ctrl-C, SIGTERM, a
    cancelled flow run): the command ends as interrupted (exit 130), not as a failure."""


class SlotWaitAborted(ShutdownInProgress):
    """The wait for a slot was given up because the flow is shutting down."""


def parse_slot_setting(raw: str | None) -> int | str | None:
    """``W2S_DEVICE_SLOTS`` as ``"auto"``, ``None`` (off) or a count; InputError otherwise."""
    value = (raw or "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value == "off":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SLOTS:
        raise InputError(f"expected 'auto', 'off' or a whole number of slots from 1 to "
                         f"{MAX_SLOTS}, got {raw!r}", field=SLOTS_ENV)
    return count


def slot_count() -> int | None:
    """How many slots this machine has, or None for no limit."""
    from flows.machine import cuda_devices

    setting = parse_slot_setting(os.environ.get(SLOTS_ENV))
    if setting == "auto":
        return cuda_devices() or None
    return setting  # type: ignore[return-value]


def slots_dir() -> Path:
    from transfer.fsutil import cache_dir

    return cache_dir() / "slots" / (socket.gethostname() or "localhost")


@dataclass(frozen=True)
class HeldSlots:
    """Slots a group holds: their indices and, when slots are GPUs, the devices to run on."""

    indices: tuple[int, ...]
    devices: tuple[str, ...] = ()


def _devices_for(indices: list[int], count: int) -> tuple[str, ...]:
    from flows.machine import visible_device_ids

    ids = visible_device_ids()
    if not ids or count > len(ids):
        return ()
    return tuple(ids[i] for i in indices)


def _holders(directory: Path, count: int) -> str:
    described = []
    for index in range(count):
        info = leases.read_lease(directory / f"slot-{index}.lease")
        if info is not None:
            described.append(f"slot {index}: pid {info.pid or '?'} on "
                             f"{info.host.split('|')[0] or '?'}")
    return "; ".join(described) or "none held"


@contextlib.contextmanager
def device_slots(occupy: int, *, stop: Callable[[], bool] = lambda: False,
                 on_wait: Callable[[str], None] | None = None, poll_s: float | None = None,
                 directory: Path | None = None) -> Iterator[HeldSlots]:
    """Hold ``occupy`` device slots for the block; wait while they are taken.

    Slots are taken all at once or not at all (a waiter never holds some while waiting for the
    rest, so two multi-slot groups cannot deadlock). Expired slots (dead or silent holders) are
    broken and taken over.

    Args:
        occupy: slots needed (a group's ``compute.processes``).
        stop: polled while waiting; when it returns True the wait ends with SlotWaitAborted.
        on_wait: called once, with who holds the slots, when the group has to wait.
        poll_s: seconds between attempts (default: a twentieth of the lease TTL, at most 1 s).
        directory: where the slot leases live (default :func:`slots_dir`).

    Yields:
        the held slots (empty when ``W2S_DEVICE_SLOTS`` sets no limit).

    Raises:
        InputError: more slots asked for than exist (it could never start).
        SlotWaitAborted: ``stop()`` became true while waiting.
    """
    count = slot_count()
    if count is None:
        yield HeldSlots(())
        return
    if occupy > count:
        raise InputError(f"a run needs {occupy} device slots; this machine has {count}",
                         field=SLOTS_ENV)
    directory = directory or slots_dir()
    ttl = leases.lease_ttl()
    watch = leases.ExpiryWatch(ttl)
    pause = poll_s if poll_s is not None else min(1.0, ttl / 20)
    held: list[tuple[int, leases.Lease]] = []
    told = False
    while True:
        for index in range(count):
            path = directory / f"slot-{index}.lease"
            lease = leases.try_acquire(path, ttl, job="")
            if lease is None:
                info = leases.read_lease(path)
                if info is not None and watch.expired(info) and leases.break_lease(info):
                    lease = leases.try_acquire(path, ttl, job="")
            if lease is not None:
                held.append((index, lease))
                if len(held) == occupy:
                    break
        if len(held) == occupy:
            break
        for _, lease in held:
            lease.release()
        held = []
        if stop():
            raise SlotWaitAborted("gave up waiting for a device slot: the flow is shutting down")
        if not told and on_wait is not None:
            on_wait(f"waiting for {occupy} of {count} device slot(s) "
                    f"({_holders(directory, count)})")
            told = True
        time.sleep(pause)
    try:
        indices = [index for index, _ in held]
        yield HeldSlots(tuple(indices), _devices_for(indices, count))
    finally:
        for _, lease in held:
            lease.release()
