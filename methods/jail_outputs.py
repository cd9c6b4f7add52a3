"""How a jail's outputs reach the caller: framed bytes over a capped pipe, never a bound directory.

A jail's program writes its outputs into a size-limited tmpfs inside the jail. Copying them into
a host directory bound into the jail would let a program that has the copier's uid (every jail of
a caller that is not root) write that directory directly, past the tmpfs bound. So no host
directory is writable from a jail. Instead:

- the jail's first process is a small collector (:data:`COLLECTOR`, Python's standard library
  only) that makes itself non-dumpable (so a program of the same uid cannot open its file
  descriptors through ``/proc`` or ptrace it), runs the program without the pipe, and when the
  program has exited sends the allowed names found in the outputs directory as frames on a pipe
  inherited from the caller (never following a link, never recursing, at most the outputs'
  bound in file bytes);
- the caller reads that pipe in a thread, at most ``max_bytes``, and parses the frames strictly
  (:class:`OutputsPipe`): only the allowed names, each once, every length bounded, an end frame
  required. Anything else discards every output of the job (fail closed).

The frame format is this module's own, deliberately tiny: a 10-byte header (kind, name index,
length) and a payload. An archive format was tried first (``tar``, parsed with ``tarfile``): an
independent review (2026-12-03) showed that a program able to write into the pipe could make
the trusted caller write a 1 GiB file from a 512-byte sparse header, spin for minutes on a pax
header (CVE-2024-6232 in Python 3.11.7), raise a traceback, or hold gigabytes of member records
in memory. A parser that accepts six frame kinds has none of those paths.
"""
from __future__ import annotations

import fcntl
import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

# kind (1 byte), index into the allowed names (1 byte), length of the payload or, for
# TOO_LARGE, the file's size (8 bytes, big-endian).
FRAME = struct.Struct(">BBQ")
END, BEGIN, BYTES, LINK, OTHER, TOO_LARGE, ZEROS = range(7)
CHUNK_BYTES = 1 << 20  # largest BYTES payload (and ZEROS length)
LINK_BYTES = 4096  # largest link text (PATH_MAX)
# A TOO_LARGE file is recreated on the host as a sparse file of its size (no blocks), so the
# reader refuses it by its size as it would the real one; sizes beyond this are shown as this.
LARGEST_SHOWN_SIZE = 1 << 40
# The frames' headers beyond the files' bytes (a header per MiB and per name, and the end).
ARCHIVE_SLACK_BYTES = 64 * 1024
# Every process of a jail is gone when its first process is; a stream still open this long after
# is not waited for (and its outputs are not kept).
PIPE_END_TIMEOUT_S = 30.0

# The jail's first process. Arguments: FD SOURCE NAMES(comma-separated) LIMIT COMMAND...
# Exits with the program's status (128 + N when signal N killed it).
COLLECTOR = r"""
import ctypes, os, stat, struct, subprocess, sys
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/PID/fd, no ptrace
fd, source, names, limit = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
status = subprocess.call(sys.argv[5:], stdin=subprocess.DEVNULL)  # close_fds: not the pipe
frame, sent = struct.Struct(">BBQ"), 0
try:
    with os.fdopen(fd, "wb") as pipe:
        for index, name in enumerate(names):
            path = os.path.join(source, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                text = os.fsencode(os.readlink(path))[:4096]
                pipe.write(frame.pack(3, index, len(text)) + text)
                continue
            try:
                handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                pipe.write(frame.pack(4, index, 0))
                continue
            try:
                info = os.fstat(handle)
                if not stat.S_ISREG(info.st_mode):
                    pipe.write(frame.pack(4, index, 0))
                elif info.st_size > limit - sent:
                    pipe.write(frame.pack(5, index, info.st_size))
                else:
                    pipe.write(frame.pack(1, index, 0))
                    left = info.st_size
                    while left > 0:
                        chunk = os.read(handle, min(left, 1 << 20))
                        if not chunk:
                            break
                        if chunk.count(0) == len(chunk):  # a hole stays a hole on the host
                            pipe.write(frame.pack(6, index, len(chunk)))
                        else:
                            pipe.write(frame.pack(2, index, len(chunk)) + chunk)
                        left -= len(chunk)
                        sent += len(chunk)
            finally:
                os.close(handle)
        pipe.write(frame.pack(0, 0, 0))
except BrokenPipeError:
    pass
sys.exit(status if status >= 0 else 128 - status)
"""


@dataclass(frozen=True)
class Collect:
    """Files the jail hands back when its program ends (see the module's docstring).

    ``source`` is the outputs directory inside the jail (a tmpfs of ``file_bytes``),
    ``destination`` the job's private host directory (no jail mounts it), ``names`` the files
    that may come back, ``python`` the interpreter (mounted in the jail) that runs the
    collector. Each regular file's bytes arrive as a regular file, a link as a link (the reader
    refuses it), anything else as an empty directory (refused as not a regular file), a file
    larger than what is left of ``file_bytes`` as a sparse file of its size (refused by size).
    """

    source: str
    destination: str
    names: tuple[str, ...]
    file_bytes: int
    python: str

    def __post_init__(self) -> None:
        if not 0 < len(self.names) < 256:
            raise ValueError(f"{len(self.names)} output names: expected 1 to 255")
        for name in self.names:
            if not name or "/" in name or name in (".", "..") or "," in name or "\0" in name:
                raise ValueError(f"output name {name!r}: expected a plain file name")

    @property
    def max_bytes(self) -> int:
        """The most the caller reads from the pipe."""
        return self.file_bytes + ARCHIVE_SLACK_BYTES

    def wrap(self, command: list[str], fd: int) -> list[str]:
        """``command`` under the collector (the jail's first process), sending on ``fd``."""
        return [self.python, "-I", "-S", "-c", COLLECTOR, str(fd), self.source,
                ",".join(self.names), str(self.file_bytes), *command]


class Refused(Exception):
    """The outputs stream broke a rule; nothing of it is kept."""


def _above_stdio(fd: int) -> int:
    """``fd`` moved to a descriptor >= 3 (close-on-exec, as os.pipe makes them): a caller
    started with stdin or stdout closed gets 0 or 1 from os.pipe, which the jail's process would
    then have as its stdin or stdout."""
    if fd > 2:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


class OutputsPipe:
    """The caller's end of :class:`Collect`: a pipe whose write end the jail inherits, and a
    thread that parses the frames into ``collect.destination`` as they come, reading at most
    ``collect.max_bytes``. :meth:`finish` says whether the stream was complete and well formed;
    if not, whatever it wrote is removed."""

    def __init__(self, collect: Collect) -> None:
        self.collect = collect
        self.destination = Path(collect.destination)
        self._read_end, self.write_end = (_above_stdio(end) for end in os.pipe())
        self.problem: str | None = None
        self._received = 0
        self._file_bytes = 0  # the bytes and holes of regular files, at most collect.file_bytes
        self._written: list[Path] = []
        self._thread = threading.Thread(target=self._drain, name="w2s-jail-outputs", daemon=True)
        self._thread.start()

    # -- the reading thread ----------------------------------------------------------------------

    def _drain(self) -> None:
        try:
            self._receive()
        except Refused as err:
            self.problem = str(err)
        except (OSError, ValueError) as err:  # ValueError: a NUL in a link's text
            self.problem = f"the outputs could not be written: {err}"
        finally:
            os.close(self._read_end)

    def _read(self, size: int) -> bytes:
        parts, left = [], size
        while left > 0:
            chunk = os.read(self._read_end, min(left, CHUNK_BYTES))
            if not chunk:
                raise Refused("the outputs stream broke off")
            self._received += len(chunk)
            if self._received > self.collect.max_bytes:
                raise Refused(f"the outputs exceeded {self.collect.max_bytes} bytes")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _receive(self) -> None:
        names, seen = self.collect.names, set()
        current: tuple[int, int] | None = None  # (name index, open descriptor)
        try:
            while True:
                kind, index, length = FRAME.unpack(self._read(FRAME.size))
                if kind in (BYTES, ZEROS):
                    if current is None or current[0] != index or not 0 < length <= CHUNK_BYTES:
                        raise Refused("file bytes out of place in the outputs stream")
                    # The jail's outputs tmpfs holds file_bytes in all, holes included: a stream
                    # of ZEROS frames must not make a terabyte-sized sparse file either.
                    self._file_bytes += length
                    if self._file_bytes > self.collect.file_bytes:
                        raise Refused(f"the outputs' files exceeded {self.collect.file_bytes} "
                                      "bytes")
                    if kind == ZEROS:
                        os.lseek(current[1], length, os.SEEK_CUR)
                        continue
                    data = memoryview(self._read(length))
                    while data:
                        data = data[os.write(current[1], data):]
                    continue
                if current is not None:
                    self._close(current[1])
                    current = None
                if kind == END:
                    if index or length:
                        raise Refused("a malformed end of the outputs stream")
                    return
                if index >= len(names) or index in seen:
                    raise Refused("an output name out of place in the outputs stream")
                seen.add(index)
                target = self.destination / names[index]
                if kind == BEGIN and length == 0:
                    current = (index, self._create(target))
                elif kind == LINK and 0 < length <= LINK_BYTES:
                    text = self._read(length)
                    os.symlink(text, target)
                    self._written.append(target)
                elif kind == OTHER and length == 0:
                    os.mkdir(target, 0o700)
                    self._written.append(target)
                elif kind == TOO_LARGE:
                    handle = self._create(target)
                    try:
                        os.ftruncate(handle, min(length, LARGEST_SHOWN_SIZE))
                    finally:
                        os.close(handle)
                else:
                    raise Refused(f"an unknown frame (kind {kind}) in the outputs stream")
        finally:
            if current is not None:
                os.close(current[1])

    @staticmethod
    def _close(handle: int) -> None:
        """Close a received file, its size set where it ends in a hole."""
        try:
            os.ftruncate(handle, os.lseek(handle, 0, os.SEEK_CUR))
        finally:
            os.close(handle)

    def _create(self, target: Path) -> int:
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        self._written.append(target)
        return handle

    # -- the caller --------------------------------------------------------------------------

    def finish(self) -> str | None:
        """Close the caller's copy of the write end (the jail's processes are gone, so the
        reader then sees the end of the stream) and wait for the reader. Returns None when
        every output arrived, else why none were kept (and removes what had been written)."""
        if self.write_end >= 0:
            os.close(self.write_end)
            self.write_end = -1
        self._thread.join(timeout=PIPE_END_TIMEOUT_S)
        if self._thread.is_alive():
            self.problem = "the outputs stream did not end"
        if self.problem is not None:
            for path in self._written:
                try:
                    if stat.S_ISDIR(os.lstat(path).st_mode):
                        os.rmdir(path)
                    else:
                        os.unlink(path)
                except OSError:
                    pass
        return self.problem

    def __enter__(self) -> OutputsPipe:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
