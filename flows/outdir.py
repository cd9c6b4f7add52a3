"""One live validation per output directory.

Two validations writing the same ``--out`` interleave their logs and overwrite each other's
verdict. The first one holds an expiring lease on the directory (``OUT/.w2s-out.lease``, see
``transfer.leases``) for as long as it runs; a second one is refused with one line naming the
holder. The lease is released when the holder ends, in any way it can run code, and counts as
gone as soon as its process is dead (SIGKILL, the OOM killer) on this machine, or after
``$W2S_LEASE_TTL_S`` without a heartbeat when the holder ran elsewhere on a shared filesystem.

Re-entrant within a process: the CLI takes the lease before starting Prefect, and the flow it
runs (which takes it too, for runs started from a deployment) finds it already held.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from transfer import leases
from w2s_common.errors import InputError

LEASE_NAME = ".w2s-out.lease"
_HELD: dict[Path, int] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def exclusive_out(out: str | Path, what: str = "--out") -> Iterator[Path]:
    """Hold ``out`` for this process while the block runs; create it if needed (and remove it
    again if it is still empty at the end).

    Raises:
        InputError: another live process holds it (one line: the directory, the holder).
    """
    out = Path(out)
    key = out.resolve()
    with _LOCK:
        nested = key in _HELD
        if nested:
            _HELD[key] += 1
    if nested:
        try:
            yield out
        finally:
            with _LOCK:
                _HELD[key] -= 1
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lease, holder = leases.acquire_unless_held(out / LEASE_NAME)
    if lease is None:
        assert holder is not None
        host = holder.host.split("|")[0] or "another machine"
        raise InputError(f"in use by a running validation (pid {holder.pid or '?'} on {host}); "
                         f"wait for it to end or choose another {what}", path=out)
    with _LOCK:
        _HELD[key] = 1
    try:
        yield out
    finally:
        with _LOCK:
            del _HELD[key]
        lease.release()
        if created:
            # A run that failed before writing anything leaves no empty directory behind.
            with contextlib.suppress(OSError):
                out.rmdir()
