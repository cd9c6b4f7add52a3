"""Expiring leases in a shared directory: "I am computing this; wait for my result".

Two campaigns (or two workers, or two machines) that need the same run or cache entry at the
same moment should compute it once. A lease is a small file ``<name>.lease`` naming its owner;
it is safe on any filesystem that every worker mounts, NFS included, because it needs only:

- creating a file that does not exist, atomically: ``link(2)`` of a private, complete file onto
  the lease's name (the NFS-safe idiom of open(2)'s manual; checked through ``st_nlink`` when
  the reply is lost), falling back to ``O_CREAT|O_EXCL`` where hard links are not supported;
- ``rename(2)`` within a directory, to break an expired lease (only one breaker wins);
- ``utime(2)``, to renew it: a heartbeat thread in the owner touches each lease it holds every
  ``ttl/4`` seconds.

No ``fcntl``/``flock`` lock is held, so nothing depends on a lock manager across machines.

When is a lease expired? A waiter never compares the lease's timestamp with its own clock (the
owner's machine, the file server and the waiter may disagree by minutes). It watches the lease
file's identity and modification time and declares the lease expired when that has not changed
for ``ttl`` seconds of the waiter's own monotonic clock: only the clocks' *rates* must agree.
A waiter on the owner's own machine (same host name, boot and pid namespace) also sees at once
when the owner process is gone, so a killed local owner costs no wait at all.

Leases only avoid duplicate work; correctness never depends on them. Whatever they guard is
published with a first-complete-copy-wins rename (``transfer.fsutil.publish_dir``), so if a
lease is ever broken while its owner is alive (a process suspended for longer than ``ttl``),
the worst outcome is one run computed twice, the second copy discarded.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from w2s_common.errors import InputError

LEASE_TTL_ENV = "W2S_LEASE_TTL_S"
DEFAULT_TTL_S = 60.0
LOG = logging.getLogger("transfer.leases")
T = TypeVar("T")


def lease_ttl(ttl_s: float | None = None) -> float:
    """Seconds without a heartbeat after which a lease counts as abandoned.

    ``ttl_s`` if given, else ``$W2S_LEASE_TTL_S``, else 60. Raises InputError for a bad value.
    """
    if ttl_s is not None:
        value = ttl_s
    else:
        raw = os.environ.get(LEASE_TTL_ENV)
        if raw is None or raw == "":
            return DEFAULT_TTL_S
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"expected a number of seconds > 0, got {raw!r}",
                             field=LEASE_TTL_ENV) from None
    if not (value > 0 and value < 1e6):
        raise InputError(f"expected a number of seconds in (0, 1e6), got {value!r}",
                         field=LEASE_TTL_ENV)
    return float(value)


def _process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks (field 22 of /proc/<pid>/stat): with the pid it
    names one process even after the pid is reused. '' if there is no such live process (a
    killed process not yet reaped by its parent, a zombie, counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return ""
    return fields[19]


def _host_identity() -> str:
    """Host name, boot id and pid namespace: equal only where a pid means the same process."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "|".join(parts)


def job_token() -> str:
    """Identity shared by every rank of one data-parallel launch, '' outside one.

    ``$W2S_JOB_ID`` if set; else the rendezvous the launcher gave all ranks (master address and
    port, world size, torchrun's run id). Ranks other than 0 follow the leases of their job.
    """
    if os.environ.get("W2S_JOB_ID"):
        return os.environ["W2S_JOB_ID"]
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return ""
    keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
    return "|".join(os.environ.get(k, "") for k in keys)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says about its owner, plus the file's identity when it was read."""

    path: Path
    token: str
    host: str
    pid: int
    started: str
    job: str
    ttl_s: float
    signature: tuple[int, int, int, int]  # (device, inode, mtime_ns, size)

    def owner_is_gone(self) -> bool:
        """True when the owner ran on this machine (same host, boot, pid namespace) and its
        process no longer exists. False whenever that cannot be told from here."""
        if not self.pid or self.host != _HOST:
            return False
        return _process_start(self.pid) != self.started


_HOST = _host_identity()


def read_lease(path: Path) -> LeaseInfo | None:
    """The lease at ``path``, or None if there is none.

    Opened and ``fstat``-ed rather than ``stat``-ed: on NFS, open() revalidates the file's
    attributes with the server (close-to-open consistency), so the heartbeat is seen promptly.
    An empty or unreadable body (an ``O_EXCL`` lease being written) reads as an anonymous lease.
    """
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            raw = handle.read(65536)
    except FileNotFoundError:
        return None
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            body = {}
    except ValueError:
        body = {}
    try:
        ttl = float(body.get("ttl_s") or 0.0)
        pid = int(body.get("pid") or 0)
    except (TypeError, ValueError):
        ttl, pid = 0.0, 0
    return LeaseInfo(path=path, token=str(body.get("token", "")), host=str(body.get("host", "")),
                     pid=pid, started=str(body.get("started", "")), job=str(body.get("job", "")),
                     ttl_s=ttl, signature=(st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))


class Lease:
    """A lease this process holds; renewed by the heartbeat thread until :meth:`release`."""

    def __init__(self, path: Path, token: str, ttl_s: float) -> None:
        self.path, self.token, self.ttl_s = path, token, ttl_s
        self.lost = threading.Event()  # set when another process broke or replaced it

    def renew(self) -> bool:
        """Touch the lease if it is still ours; False (and ``lost`` set) otherwise."""
        info = read_lease(self.path)
        if info is None or info.token != self.token:
            if not self.lost.is_set():
                LOG.warning("lease %s was taken over by another process; this one's result "
                            "is discarded if the other copy is published first", self.path)
            self.lost.set()
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.lost.set()
            return False
        return True

    def release(self) -> None:
        """Give the lease up (a no-op if it is no longer ours)."""
        _HEARTBEAT.remove(self)
        info = read_lease(self.path)
        if info is not None and info.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class _Heartbeat:
    """One daemon thread per process renewing every held lease each ``min(ttl)/4`` seconds."""

    def __init__(self) -> None:
        self.leases: set[Lease] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self.lock:
            self.leases.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="w2s-lease-heartbeat",
                                               daemon=True)
                self.thread.start()
        self.wake.set()

    def remove(self, lease: Lease) -> None:
        with self.lock:
            self.leases.discard(lease)

    def _run(self) -> None:
        while True:
            with self.lock:
                held = list(self.leases)
            period = min((lease.ttl_s for lease in held), default=60.0) / 4
            self.wake.wait(timeout=period)
            self.wake.clear()
            for lease in held:
                with self.lock:
                    if lease not in self.leases:
                        continue
                try:
                    lease.renew()
                except OSError as err:  # a flaky mount: try again next beat
                    LOG.warning("could not renew lease %s: %s", lease.path, err)

    def after_fork(self) -> None:
        # A forked child holds none of its parent's leases and has no heartbeat thread.
        self.leases, self.lock = set(), threading.Lock()
        self.wake, self.thread = threading.Event(), None


_HEARTBEAT = _Heartbeat()
os.register_at_fork(after_in_child=_HEARTBEAT.after_fork)


def _lease_body(token: str, ttl_s: float, job: str) -> bytes:
    pid = os.getpid()
    return json.dumps({"token": token, "host": _HOST, "pid": pid, "started": _process_start(pid),
                       "job": job, "ttl_s": ttl_s, "created_unix": time.time()}).encode()


def try_acquire(path: Path, ttl_s: float | None = None, job: str | None = None) -> Lease | None:
    """Take the lease at ``path`` if nobody holds it; None if somebody does.

    The body is written to a private file first and hard-linked onto ``path``, so the lease
    appears complete or not at all.
    """
    ttl = lease_ttl(ttl_s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    body = _lease_body(token, ttl, job_token() if job is None else job)
    private = path.with_name(f".{path.name}.{token}")
    with open(private, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        try:
            os.link(private, path)
            acquired = True
        except OSError as err:
            if err.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                             errno.EXDEV):
                acquired = _acquire_exclusive(path, body)
            else:
                # NFS: a retransmitted link whose first attempt succeeded reports EEXIST (or
                # another error); the private file's link count tells (open(2), O_EXCL).
                acquired = os.stat(private).st_nlink == 2
                if not acquired and not isinstance(err, FileExistsError):
                    raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(private)
    if not acquired:
        return None
    lease = Lease(path, token, ttl)
    _HEARTBEAT.add(lease)
    return lease


def _acquire_exclusive(path: Path, body: bytes) -> bool:
    """Fallback for filesystems without hard links: O_CREAT|O_EXCL, then write the body."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def break_lease(observed: LeaseInfo) -> bool:
    """Remove the expired lease ``observed``; False if someone else did, or it was renewed.

    The lease is renamed to a private name first (only one breaker can win that), then checked:
    if it changed since it was judged expired, it is linked back (unless a new lease exists by
    then) and left alone.
    """
    graveyard = observed.path.with_name(f".{observed.path.name}.broken-{uuid.uuid4().hex}")
    try:
        os.rename(observed.path, graveyard)
    except FileNotFoundError:
        return False
    try:
        now = read_lease(graveyard)
        if now is None or now.signature[1:3] != observed.signature[1:3]:
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(graveyard, observed.path)
            return False
        LOG.warning("lease %s expired (owner pid %s on %s stopped renewing it); taking over",
                    observed.path, observed.pid or "?", observed.host.split("|")[0] or "?")
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(graveyard)


class ExpiryWatch:
    """Decides, from this process's observations alone, when a lease has expired."""

    def __init__(self, ttl_s: float | None = None) -> None:
        self.ttl_s = lease_ttl(ttl_s)
        self.seen: dict[Path, tuple[tuple[int, int, int, int], float]] = {}

    def expired(self, info: LeaseInfo) -> bool:
        if info.owner_is_gone():
            return True
        now = time.monotonic()
        previous = self.seen.get(info.path)
        if previous is None or previous[0] != info.signature:
            self.seen[info.path] = (info.signature, now)
            return False
        # The owner renews every ttl/4 of *its* ttl; wait for the longer of the two.
        return now - previous[1] > max(self.ttl_s, info.ttl_s)


def _poll_interval(ttl: float, poll_s: float | None) -> float:
    base = poll_s if poll_s is not None else min(1.0, ttl / 20)
    return base * random.uniform(0.75, 1.25)  # jitter: waiters do not poll in lockstep


def claim_or_wait(path: Path, ready: Callable[[], T | None], *, ttl_s: float | None = None,
                  poll_s: float | None = None) -> tuple[Lease | None, T | None]:
    """Return ``(None, result)`` once ``ready()`` gives a result, or ``(lease, None)`` when this
    process holds the lease at ``path`` and should produce the result itself.

    Waits while another live process holds the lease; takes it over once it expires. ``ready``
    is called again right after the lease is taken, so a result published between the first
    check and the acquisition is returned instead of recomputed.
    """
    ttl = lease_ttl(ttl_s)
    watch = ExpiryWatch(ttl)
    while True:
        result = ready()
        if result is not None:
            return None, result
        lease = try_acquire(path, ttl)
        if lease is not None:
            try:
                result = ready()
            except BaseException:
                lease.release()
                raise
            if result is not None:
                lease.release()
                return None, result
            return lease, None
        info = read_lease(path)
        if info is not None and watch.expired(info):
            break_lease(info)
            continue
        time.sleep(_poll_interval(ttl, poll_s))


def acquire_unless_held(path: Path, *, ttl_s: float | None = None, poll_s: float | None = None
                        ) -> tuple[Lease | None, LeaseInfo | None]:
    """Take the lease at ``path`` unless a live owner holds it; never wait for the owner to end.

    Returns ``(lease, None)`` when this process now holds it, ``(None, holder)`` when a live
    owner does. An owner on this machine is judged at once (its process exists or not). One
    elsewhere is watched until its heartbeat is seen (alive) or for one TTL without one (gone:
    the lease is broken and taken), so a refusal costs at most a quarter of the owner's TTL.
    """
    ttl = lease_ttl(ttl_s)
    watch = ExpiryWatch(ttl)
    first_seen: dict[str, tuple[int, int, int, int]] = {}
    while True:
        lease = try_acquire(path, ttl)
        if lease is not None:
            return lease, None
        info = read_lease(path)
        if info is None:
            continue  # released meanwhile: try again
        if watch.expired(info):
            break_lease(info)
            continue
        if info.host == _HOST and info.pid:
            return None, info  # a live local owner (a gone one expired above)
        if first_seen.setdefault(info.token, info.signature) != info.signature:
            return None, info  # renewed while we watched: its owner is alive
        time.sleep(_poll_interval(ttl, poll_s))


def follow(path: Path, ready: Callable[[], T | None], *, job: str, poll_s: float | None = None,
           ttl_s: float | None = None) -> T | None:
    """For ranks other than 0 of a data-parallel job: wait until ``ready()`` gives a result
    (returned), or the lease at ``path`` is held by this job's rank 0 (None: compute with it).

    Followers never take or break a lease; rank 0 decides for the whole job.
    """
    ttl = lease_ttl(ttl_s)
    while True:
        result = ready()
        if result is not None:
            return result
        info = read_lease(path)
        if info is not None and info.job == job:
            return None
        time.sleep(_poll_interval(ttl, poll_s))


@contextlib.contextmanager
def held(path: Path, ready: Callable[[], T | None], **kwargs: Any
         ) -> Iterator[tuple[Lease | None, T | None]]:
    """:func:`claim_or_wait` as a context manager that releases the lease on exit."""
    lease, result = claim_or_wait(path, ready, **kwargs)
    try:
        yield lease, result
    finally:
        if lease is not None:
            lease.release()
