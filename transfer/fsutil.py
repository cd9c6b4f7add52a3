"""Filesystem helpers: the cache location and first-wins directory publishing (atomic file
writes are ``w2s_common.atomic``).

Nothing here takes a lock: what two machines sharing the store need from its filesystem is an
atomic ``rename(2)`` within a directory (docs/store.md)."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Root of all caches (pretrained tiny models, features, the run store).

    ``$W2S_CACHE_DIR`` if set, else ``~/.cache/w2s-transfer``.
    """
    root = os.environ.get("W2S_CACHE_DIR") or Path.home() / ".cache" / "w2s-transfer"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
