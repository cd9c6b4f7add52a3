"""A control group per jail: one memory and process budget for everything the jail runs.

Resource limits (setrlimit) bound each process: N processes may take N times the address-space
limit, and the jail's tmpfs (``/tmp``, ``/dev/shm``) is not in any process's address space. A
control group bounds them together: ``memory`` (charged for every page the jail's processes use,
tmpfs included) and ``pids`` (every process and thread of the jail). cgroup v1 (a ``memory`` and
a ``pids`` hierarchy) and v2 (the unified hierarchy, where the caller's own group has the
controllers delegated) are both supported; where neither can be written (no root, no
delegation), :func:`jail_cgroup` returns None and the jail keeps the rlimits alone
(``JailResult.cgroup`` is False).

The group is created under the caller's own group (so it nests within whatever bounds the
caller), the jail's first process joins it before exec (its children inherit it), and it is
emptied (SIGKILL) and removed when the jail ends.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str:
    """The caller's group in ``controller``'s v1 hierarchy ('' for v2's), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return "/"


def _parent(hierarchy: Path, own: str) -> Path:
    """Where to create children: the caller's own group if this mount shows it (a host's
    view), else the mount's root (a container's view, which is its own group)."""
    candidate = hierarchy / own.lstrip("/")
    return candidate if own != "/" and candidate.is_dir() else hierarchy


@dataclass
class JailCgroup:
    """The groups of one jail (one directory per hierarchy) and how to join and remove them."""

    directories: list[Path]

    def join(self) -> None:
        """Move the calling process into the groups (called in the child before exec)."""
        for directory in self.directories:
            (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def remove(self, wait_s: float = 5.0) -> None:
        """SIGKILL whatever is left in the groups and remove them (best effort)."""
        deadline = time.monotonic() + wait_s
        for directory in self.directories:
            while directory.exists():
                with contextlib.suppress(OSError):
                    for pid in (directory / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError, ValueError):
                            os.kill(int(pid), signal.SIGKILL)
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


def _v1(memory_bytes: int | None, processes: int | None, name: str) -> JailCgroup | None:
    made: list[Path] = []
    try:
        for controller, settings in (
                ("memory", {"memory.limit_in_bytes": memory_bytes,
                            "memory.memsw.limit_in_bytes": memory_bytes}),
                ("pids", {"pids.max": processes})):
            hierarchy = ROOT / controller
            if not (hierarchy / "cgroup.procs").exists():
                raise OSError(f"no {controller} hierarchy")
            directory = _parent(hierarchy, _own_path(controller)) / name
            directory.mkdir()
            made.append(directory)
            for file, value in settings.items():
                if value is not None and (directory / file).exists():
                    (directory / file).write_text(f"{value}\n")
    except OSError:
        JailCgroup(made).remove(wait_s=0.5)
        return None
    return JailCgroup(made)


def _v2(memory_bytes: int | None, processes: int | None, name: str) -> JailCgroup | None:
    parent = _parent(ROOT, _own_path(""))
    try:
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError:
        return None
    if not {"memory", "pids"} <= set(enabled):
        return None
    directory = parent / name
    try:
        directory.mkdir()
        for file, value in (("memory.max", memory_bytes), ("memory.swap.max", 0 if memory_bytes
                                                            else None), ("pids.max", processes)):
            if value is not None and (directory / file).exists():
                (directory / file).write_text(f"{value}\n")
    except OSError:
        JailCgroup([directory]).remove(wait_s=0.5)
        return None
    return JailCgroup([directory])


def jail_cgroup(memory_bytes: int | None, processes: int | None) -> JailCgroup | None:
    """Create the groups of one jail with these budgets, or None where none can be made."""
    if memory_bytes is None and processes is None:
        return None
    name = f"w2s-jail-{uuid.uuid4().hex[:12]}"
    if (ROOT / "memory").is_dir() or (ROOT / "pids").is_dir():
        return _v1(memory_bytes, processes, name)
    if (ROOT / "cgroup.controllers").exists():
        return _v2(memory_bytes, processes, name)
    return None
