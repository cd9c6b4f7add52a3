"""Filesystem helpers: the cache location, atomic file writes and first-wins directory publishing.

Nothing here takes a lock: what two machines sharing the store need from its filesystem is an
atomic ``rename(2)`` within a directory (docs/store.md)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Root of all caches (pretrained tiny models, features, the run store).

    ``$W2S_CACHE_DIR`` if set, else ``~/.cache/w2s-transfer``.
    """
    root = os.environ.get("W2S_CACHE_DIR") or Path.home() / ".cache" / "w2s-transfer"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of one:
    a temp file in the same directory, fsync, then ``os.replace``. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def staging_dir(final: str | Path) -> Path:
    """A fresh private directory beside ``final`` (same parent, so renaming it is atomic)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and the directories themselves to stable storage, so a
    published directory survives a crash of the machine, not only of the process."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_dir(staged: str | Path, final: str | Path) -> bool:
    """Make the complete directory ``staged`` appear as ``final``: the first complete copy wins.

    One ``rename(2)`` within a directory, which is atomic on local filesystems and on NFS: a
    reader sees no ``final`` or a complete one, never a partial one, and an existing ``final``
    is never removed or replaced (``rename`` onto a non-empty directory fails with ENOTEMPTY or
    EEXIST). When another copy got there first, ``staged`` is discarded.

    Returns:
        True if ``staged`` became ``final``; False if another copy was already there (``staged``
        is removed).

    Raises:
        OSError: anything but "already there" (``final`` is a file, permissions, disk full).
    """
    staged, final = Path(staged), Path(final)
    try:
        os.rename(staged, final)
    except OSError as err:
        already = err.errno in (errno.ENOTEMPTY, errno.EEXIST)
        # NFS: a retransmitted rename whose first attempt succeeded reports ENOENT.
        retransmitted = err.errno == errno.ENOENT and not staged.exists() and final.is_dir()
        if not (already or retransmitted):
            raise
        shutil.rmtree(staged, ignore_errors=True)
        return False
    _fsync_dir(final.parent)
    return True


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a staging directory that is published as ``final`` if the block succeeds.

    First complete copy wins (see :func:`publish_dir`): if ``final`` already exists the new copy
    is discarded, never swapped in. A failed block leaves nothing behind.
    """
    tmp = staging_dir(final)
    try:
        yield tmp
        fsync_tree(tmp)
        publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
