"""The jail's private cache of code copies: the snapshots a method's runs are keyed by and run.

The trusted side copies every file of a method's own code that a jail gets (a plugin's sources,
an ``external`` command's own files, the allowed part of this project) into a content-addressed
directory of :func:`jail_cache`, and from then on uses only the copy: the fingerprint a run is
stored under is computed from the copy (``methods.fingerprint``), and the jail mounts the copy,
never the file it was made from. So the code that runs is the code the fingerprint names, even
when the files change while the campaign runs (an agent editing its method, or swapping a file
for a link to a label file after it was checked).

Every source file is opened without following a link in its last component, non-blocking (a
FIFO never hangs the trusted process), and must be a regular file with one link, whose path as
the kernel resolved it (``/proc/self/fd``) is the path that was checked: a directory swapped
for a link during the copy leads nowhere else. The digest naming a copy is computed from the
copy's own bytes, so a source changed during the copy cannot give one content another's name.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from w2s_common.errors import InputError

JAIL_CACHE_ENV = "W2S_JAIL_CACHE_DIR"
# A plugin's sources travel into the jail as a copy; a package this large is not a method.
MAX_CODE_BYTES = 64 << 20
# An external command's own file (a script, a small checkpoint) is copied too; a larger model
# belongs in a plugin's trainer, whose checkpoints are mounted, not copied.
MAX_OWN_FILE_BYTES = 4 << 30
# The copies of own files the jail cache keeps (``files/``): beyond this, the least recently
# used ones no live process holds go first (see :func:`file_copy`).
MAX_FILE_COPIES_BYTES = 32 << 30
_SPARSE_FLOOR = 1 << 20
_CHUNK = 1 << 20


class JailSetupError(RuntimeError):
    """The trusted side cannot assemble the jail as asked (a programming or configuration error)."""


def jail_cache() -> Path:
    """The directory of the jail's code copies: ``$W2S_JAIL_CACHE_DIR`` or
    ``/var/tmp/w2s-transfer-jail-<euid>`` (created 0700), on this host, never shared.

    Raises:
        InputError: it is a link, not a directory, not owned by this user, or writable by its
            group or others (anyone who could write it could change the code jails run).
    """
    raw = os.environ.get(JAIL_CACHE_ENV)
    root = Path(raw).absolute() if raw else Path("/var/tmp") / f"w2s-transfer-jail-{os.geteuid()}"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=0o700)
        info = os.lstat(root)
    except OSError as err:
        raise InputError(f"cannot use {root} for the jail's code: {err.strerror}",
                         field=JAIL_CACHE_ENV) from None
    problem = ("is a link" if stat.S_ISLNK(info.st_mode) else
               "is not a directory" if not stat.S_ISDIR(info.st_mode) else
               f"is owned by uid {info.st_uid}, not {os.geteuid()}"
               if info.st_uid != os.geteuid() else
               f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
               if info.st_mode & 0o022 else "")
    if problem:
        raise InputError(f"{root} {problem}: the jail's code is kept only where no one else can "
                         f"change it; remove it or set {JAIL_CACHE_ENV} to a private local "
                         "directory", field=JAIL_CACHE_ENV)
    return root


@contextlib.contextmanager
def open_checked(path: str | os.PathLike[str]) -> Iterator[tuple[int, os.stat_result]]:
    """Open ``path`` (absolute, free of links: the caller checked it) for reading and yield
    ``(fd, stat)``, or raise :class:`JailSetupError` if what was opened is not that path's
    regular file of its own (a link, a FIFO, a hard link, or a file reached through a
    directory that became a link)."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise JailSetupError(f"{path}: cannot open it as a regular file ({err.strerror})"
                             ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise JailSetupError(f"{path}: not a regular file of its own (a link or special "
                                 "file); a method's code is copied only from such files")
        opened = os.readlink(f"/proc/self/fd/{fd}")
        if opened != path:
            raise JailSetupError(f"{path}: opened as {opened} (a directory on its path changed "
                                 "into a link while it was read)")
        yield fd, info
    finally:
        os.close(fd)


class _Budget:
    """Bytes a copy may still read: counted as read, so a file that grows after it was listed
    cannot make the trusted side copy more than the bound (review 2026-12-05, F3)."""

    def __init__(self, limit: int | None, what: str) -> None:
        self.left, self.limit, self.what = limit, limit, what

    def take(self, count: int, source: Path) -> None:
        if self.left is None:
            return
        self.left -= count
        if self.left < 0:
            raise JailSetupError(f"{source}: {self.what} holds more than {self.limit} bytes; "
                                 "refused")


def _read_checked(source: Path, root: Path, digest, budget: _Budget,
                  target: Path | None = None) -> int:
    """Stream ``source`` (see :func:`open_checked`) into ``digest`` as its path relative to
    ``root``, its length and its bytes (and into ``target`` when given), within ``budget``;
    return its permission bits (setuid, setgid, sticky and write by others left out)."""
    with open_checked(source) as (fd, info), \
            (open(target, "xb") if target is not None else contextlib.nullcontext()) as out:
        if info.st_size > _SPARSE_FLOOR and info.st_blocks * 512 < info.st_size // 2:
            # Free to its owner, a sparse file would cost its full size in every copy.
            raise JailSetupError(f"{source}: a sparse file ({info.st_blocks * 512} bytes on "
                                 f"disk of {info.st_size}); refused")
        budget.take(info.st_size, source)
        digest.update(f"{source.relative_to(root)}\0{info.st_size}\0".encode())
        read = 0
        while chunk := os.read(fd, _CHUNK):
            read += len(chunk)
            if read > info.st_size:
                break
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
        if read != info.st_size:  # the length hashed first must be the bytes' length
            raise JailSetupError(f"{source} changed while it was read ({info.st_size} bytes, "
                                 f"then {read})")
        return stat.S_IMODE(info.st_mode) & 0o755


def content_digest(root: Path, files: Sequence[Path], *, copy_to: Path | None = None,
                   limit: int | None = None, what: str = "the copy") -> str:
    """sha256 (hex) over each file's path relative to ``root``, its length, its bytes and its
    permission bits, each file read as :func:`open_checked` allows, at most ``limit`` bytes in
    all (and copied under ``copy_to`` at its relative path, from the very bytes hashed, with
    its permission bits, when given).

    The length makes the encoding prefix-free: without it one file holding ``A NUL path NUL B``
    hashed like two files holding ``A`` and ``B``, so a plugin could publish, under a rival's
    digest, a copy the rival's later jails would reuse (found by an independent review).

    Raises:
        JailSetupError: a file is not a regular file of its own at its path, changed while it
            was read, or the files hold more than ``limit`` bytes.
    """
    digest = hashlib.sha256()
    budget = _Budget(limit, what)
    for path in files:
        target = None
        if copy_to is not None:
            target = copy_to / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
        mode = _read_checked(path, root, digest, budget, target)
        if target is not None:
            target.chmod(mode | stat.S_IRUSR)  # publish_copy settles the final modes
        digest.update(f"\0{mode:o}\0".encode())
    return digest.hexdigest()


def published(final: Path, digest: str) -> bool:
    """Whether ``final`` is a complete copy of the content ``digest`` names."""
    try:
        return (final / ".complete").read_text().strip() == digest
    except OSError:
        return False


def publish_copy(parent: Path, root: Path, files: Sequence[Path], *, into: str = "",
                 prepare: Callable[[Path], None] | None = None, limit: int | None = None,
                 what: str = "the copy", keep_modes: bool = False) -> tuple[Path, str]:
    """A content-addressed copy of ``files`` (paths under ``root``, which has no links) in
    ``parent``, at ``<digest[:24]>/<into>/<path relative to root>``: reused when published,
    else copied into a fresh directory, named by the digest of the copied bytes
    (:func:`content_digest`, at most ``limit`` bytes), completed by ``prepare``, made read-only
    to others and published by one rename. Concurrent builders race to the rename and the first
    complete copy wins (``.complete`` holds the digest). Code copies are made readable by all
    (0644, 0755 where the owner may execute); with ``keep_modes`` each file keeps its own
    permission bits (an ``external`` command's file the jail's uid could not read as a bind
    mount is not made readable by copying it).

    Returns:
        ``(the published directory, its digest)``.

    Raises:
        JailSetupError: a source is not a regular file of its own at its path
            (:func:`open_checked`), or the directory of that name holds other content.
    """
    digest = content_digest(root, files, limit=limit, what=what)
    final = parent / digest[:24]
    if published(final, digest):
        with contextlib.suppress(OSError):
            os.utime(final / ".complete")  # used now: the last to be evicted
        return final, digest
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".build-"))
    try:
        # Named by what was copied, never by what was read before: a file changed in between
        # gives the copy its own name, not the name of the content checked first.
        digest = content_digest(root, files, copy_to=tmp / into, limit=limit, what=what)
        final = parent / digest[:24]
        if published(final, digest):
            return final, digest
        copied = {tmp / into / path.relative_to(root) for path in files}
        if prepare is not None:
            prepare(tmp)
        (tmp / ".complete").write_text(digest + "\n")
        for path in [tmp, *tmp.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            if path.is_dir():
                path.chmod(0o755)
            elif keep_modes and path in copied:
                path.chmod(mode & 0o755)
            else:
                path.chmod(0o755 if mode & stat.S_IXUSR else 0o644)
        try:
            os.rename(tmp, final)
        except OSError:
            if published(final, digest):
                return final, digest  # another builder published the same content first
            if os.path.lexists(final):
                raise JailSetupError(f"{final} is not a copy of the content it is named after "
                                     f"({digest[:12]}...); remove it") from None
            raise
        return final, digest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def code_files(location: Path) -> list[Path]:
    """The Python sources of a top-level package (every ``.py`` below it) or a module file:
    what of a plugin's code goes into the jail, and what its fingerprint covers.

    Raises:
        JailSetupError: a source that is a symbolic link or has another hard link (it could
            be a label file under a harmless name), or more than ``MAX_CODE_BYTES`` in all.
    """
    if location.is_file():
        found = [location]
    else:
        found = []
        for directory, subdirs, names in os.walk(location, followlinks=False):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            found += [Path(directory, n) for n in sorted(names) if n.endswith(".py")]
    total = 0
    for path in found:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise JailSetupError(f"{path}: a plugin's sources must be regular files of their own "
                                 "(not links)")
        total += info.st_size
    if total > MAX_CODE_BYTES:
        raise JailSetupError(f"{location}: {total} bytes of Python sources, more than the "
                             f"{MAX_CODE_BYTES} a plugin may bring")
    return found


def code_copy(location: Path) -> Path:
    """A content-addressed copy, in the cache, of :func:`code_files` of ``location`` (a package
    directory or module file), named like it: the snapshot a plugin's fingerprint is computed
    from and its jails get. Read through its real path, so that no link on the way can lead
    the copy elsewhere while it is made."""
    real = Path(os.path.realpath(location))
    final, _ = publish_copy(jail_cache() / "code", real.parent, code_files(real),
                            limit=MAX_CODE_BYTES, what=f"the plugin's sources ({real})")
    return final / real.name


def file_copy(path: str) -> tuple[str, str]:
    """A content-addressed copy of one of an ``external`` command's own files (``path``:
    absolute, reached through no link; its permission bits kept, at most
    :data:`MAX_OWN_FILE_BYTES`), and the digest of its content (:func:`content_digest`: name,
    size, bytes, permission bits): what the jail mounts at ``path`` and what the fingerprint
    covers, without reading a large file once more for it.

    The calling process holds the copy (a shared ``flock`` on its ``.complete``) until it
    exits: every process that mounts a copy made it through here (the campaign's, each group's),
    and :func:`evict_file_copies` never removes a copy some live process holds, however long
    its group runs. Held before it is used and checked to be the published copy, so an eviction
    between publishing and holding makes a fresh copy, never a jail without its file.

    Raises:
        JailSetupError: the file is not a regular file of its own (:func:`open_checked`), too
            large, or the copy could not be held.
    """
    source = Path(path)
    parent = jail_cache() / "files"
    for _ in range(3):
        final, digest = publish_copy(parent, source.parent, [source], limit=MAX_OWN_FILE_BYTES,
                                     what="an external command's own file", keep_modes=True)
        if _hold(final):
            evict_file_copies(parent, MAX_FILE_COPIES_BYTES)
            return str(final / source.name), digest
    raise JailSetupError(f"the copy of {path} in {parent} was removed three times while it was "
                         "being held; is another process evicting it?")


# The copies this process holds: ``.complete`` path -> the descriptor whose shared lock holds it.
_HELD: dict[str, int] = {}


def _hold(final: Path) -> bool:
    """Hold the published copy ``final`` for the life of this process; False when it was
    evicted (renamed away) before the hold was taken."""
    marker = str(final / ".complete")
    if marker in _HELD:
        return True
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        held, now = os.fstat(fd), os.stat(marker, follow_symlinks=False)
    except OSError:
        os.close(fd)
        return False
    if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
        os.close(fd)  # evicted between opening and locking: the lock holds nothing
        return False
    _HELD[marker] = fd
    return True


def evict_file_copies(parent: Path, budget: int) -> list[Path]:
    """Remove the least recently used copies under ``parent`` (by their ``.complete``'s
    mtime, which every use touches) that no live process holds (:func:`file_copy`), until the
    rest hold at most ``budget`` bytes on disk. Returns what was removed.

    A method's author who edits a large own file between resolutions makes the trusted side
    copy it each time; this bounds what such copies can take (review 2026-12-05, helper-41 F2)
    without removing one a running group still needs: a copy is taken out by an exclusive
    ``flock`` (refused while anyone holds it) and a rename, so a process that opens it
    afterwards sees it gone and copies anew.
    """
    entries = []
    for entry in parent.iterdir() if parent.is_dir() else ():
        if entry.name.startswith(".evicted-"):
            shutil.rmtree(entry, ignore_errors=True)  # left by an eviction that did not finish
            continue
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            used = (entry / ".complete").stat().st_mtime
        except OSError:
            used = 0.0
        size = sum(f.lstat().st_blocks * 512 for f in entry.iterdir())
        entries.append((used, size, entry))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= budget:
            break
        if str(entry / ".complete") in _HELD or not _take_out(entry):
            continue
        total -= size
        removed.append(entry)
    return removed


def _take_out(entry: Path) -> bool:
    """Remove the copy ``entry`` unless a live process holds it."""
    try:
        fd = os.open(entry / ".complete", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = None  # never completed: nothing can hold it
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        gone = entry.with_name(f".evicted-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(entry, gone)
        except OSError:
            return False
        shutil.rmtree(gone, ignore_errors=True)
        return True
    finally:
        if fd is not None:
            os.close(fd)


@dataclass(frozen=True)
class Snapshot:
    """What a running method's jails get of its own code, fixed when it was fingerprinted
    (``methods.fingerprint.MethodCode``).

    Attributes:
        copies: a plugin's top-level package name, or an ``external`` command's own file path
            -> its private copy.
        argv: an ``external`` command's argv as fingerprinted (its program resolved, relative
            file names made absolute), run as it is whatever the files say now; None for a
            plugin.
    """

    copies: Mapping[str, str]
    argv: tuple[str, ...] | None = None


_RUNNING: ContextVar[Snapshot | None] = ContextVar("w2s_code_snapshot", default=None)


@contextlib.contextmanager
def running_snapshot(snapshot: Snapshot | None) -> Iterator[None]:
    """Make ``snapshot`` the running method's for a block (None: no fingerprint was taken)."""
    token = _RUNNING.set(snapshot)
    try:
        yield
    finally:
        _RUNNING.reset(token)


def current_snapshot() -> Snapshot | None:
    """The running method's snapshot, or None outside :func:`running_snapshot`."""
    return _RUNNING.get()
