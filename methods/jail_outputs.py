"""How a jail's outputs reach the caller: an archive over a capped pipe, never a bound directory.

A jail's program writes its outputs into a size-limited tmpfs inside the jail. Copying them
into a host directory bound into the jail would let a program that has the copier's uid (every
jail of a caller that is not root) write that directory directly, past the tmpfs bound. So no
host directory is writable from a jail: the jail's first process archives the allowed names
onto a pipe, the caller reads at most a cap from it and writes the allowed names itself.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

# The outputs archive's headers and padding beyond the files themselves (tar: 512 bytes per
# member, its last block padded, records of 10 KiB).
ARCHIVE_SLACK_BYTES = 64 * 1024
# Every process of a jail is gone when its first process is; a stream still open this long after
# is not waited for (and its outputs are not kept).
PIPE_END_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Collect:
    """Files the jail hands back when its program ends.

    The program's outputs directory ``source`` is a size-limited tmpfs inside the jail (so it
    cannot fill the host's disk). Once the program exits, the jail's first process archives the
    ``names`` present there (``tar``, never recursively: a link as a link, a directory as an
    empty entry, a FIFO as a FIFO, nothing read from them) onto its standard input, which is the
    write end of a pipe that the caller reads, at most ``max_bytes``. The caller writes each
    named regular file's bytes into ``destination``, a host directory no jail mounts; a link
    arrives as a link and anything else as an empty directory, both of which the trusted reader
    refuses. So no host directory is writable from the jail whatever uid its program has (a
    caller that is not root runs the program as its own uid), and the outputs' bound holds for
    the host's disk: a program that writes into the pipe itself (through ``/proc``, as the
    first process's uid) adds at most ``max_bytes``, and its bytes are parsed as an archive of
    the allowed names only.
    """

    source: str
    destination: str
    names: tuple[str, ...]
    max_bytes: int

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` inside the collecting shell (the jail's first process)."""
        return ["sh", "-c", COLLECT_SCRIPT, "w2s-collect", self.source, ",".join(self.names),
                *command]

    def __post_init__(self) -> None:
        for name in self.names:
            if not name or "/" in name or name in (".", "..") or "," in name:
                raise ValueError(f"output name {name!r}: expected a plain file name")


# Runs as the jail's first process: run the program with its stdin from /dev/null (fd 0 of this
# process is the caller's pipe), then archive the named outputs onto that pipe; exits with the
# program's status. A program still running may swap a name after the test; tar then archives
# whatever the name is at that moment, never following a link and never recursing.
COLLECT_SCRIPT = r"""
source=$1; names=$2; shift 2
"$@" </dev/null
status=$?
if cd "$source" 2>/dev/null; then
  IFS=,
  set --
  for name in $names; do
    if [ -L "$name" ] || [ -e "$name" ]; then set -- "$@" "$name"; fi
  done
  if [ $# -gt 0 ]; then
    tar --create --no-recursion --format=gnu --file=- -- "$@" >&0 2>/dev/null
  fi
fi
exit $status
"""


class OutputsPipe:
    """The caller's end of :class:`Collect`: a pipe whose write end becomes the jail's stdin, and
    a thread that drains the read end into an anonymous file, at most ``max_bytes`` (past that
    it stops reading and closes its end, so the writer gets EPIPE)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.archive = tempfile.TemporaryFile()
        self._read_end, self.write_end = os.pipe()
        self.overflow = False
        self._thread = threading.Thread(target=self._drain, name="w2s-jail-outputs", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        total = 0
        try:
            while chunk := os.read(self._read_end, 1 << 20):
                total += len(chunk)
                if total > self.max_bytes:
                    self.overflow = True
                    return
                self.archive.write(chunk)
        finally:
            os.close(self._read_end)

    def finish(self) -> bool:
        """Close the caller's copy of the write end (the jail's processes are gone, so the
        reader then sees the end of the stream) and wait for it; True if the stream overflowed
        or did not end (then nothing is kept either)."""
        if self.write_end >= 0:
            os.close(self.write_end)
            self.write_end = -1
        self._thread.join(timeout=PIPE_END_TIMEOUT_S)
        return self.overflow or self._thread.is_alive()

    def unpack(self, destination: Path, names: tuple[str, ...]) -> None:
        """Write the archive's members that ``names`` allows into ``destination``, each once:
        a regular file's bytes, a link as a link, anything else as an empty directory. An
        archive that breaks off keeps what came before; the reader finds the rest missing."""
        self.archive.seek(0, os.SEEK_END)
        if self.archive.tell() == 0:
            return
        self.archive.seek(0)
        with contextlib.suppress(tarfile.TarError, EOFError), \
                tarfile.open(fileobj=self.archive, mode="r:") as archive:
            for member in archive:
                target = destination / member.name
                if member.name not in names or os.path.lexists(target):
                    continue
                if member.isreg():
                    source = archive.extractfile(member)
                    with source, open(target, "xb") as sink:
                        shutil.copyfileobj(source, sink)
                elif member.issym():
                    try:
                        os.symlink(member.linkname, target)
                    except (OSError, ValueError):  # a name the host cannot hold as a link
                        target.mkdir()
                else:
                    target.mkdir()

    def __enter__(self) -> OutputsPipe:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
        self.archive.close()
