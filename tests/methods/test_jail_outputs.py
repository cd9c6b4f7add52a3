"""The caller's parser of a jail's outputs stream (methods/jail_outputs.py), fed hostile bytes
directly: whatever arrives, it writes only allowed names into the destination, never more bytes
than its cap, never raises, and keeps nothing of a stream that breaks a rule (fail closed).

The shapes come from an independent review of the first version, which parsed a tar archive
with ``tarfile`` (2026-12-03): a 512-byte sparse header became a 1 GiB file on the host, a pax
header made the caller spin for minutes, a malformed one raised a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from methods.jail_outputs import (
    BEGIN,
    BYTES,
    CHUNK_BYTES,
    END,
    FRAME,
    LARGEST_SHOWN_SIZE,
    LINK,
    OTHER,
    TOO_LARGE,
    ZEROS,
    Collect,
    OutputsPipe,
)

NAMES = ("predictions.jsonl", "describe.json")
FILE_BYTES = 4 << 20


def frame(kind: int, index: int = 0, payload: bytes = b"", length: int | None = None) -> bytes:
    return FRAME.pack(kind, index, len(payload) if length is None else length) + payload


def receive(tmp_path: Path, stream: bytes) -> tuple[str | None, dict[str, object]]:
    """Send ``stream`` into the parser as the jail would; its verdict and what it left."""
    destination = tmp_path / "out"
    destination.mkdir(parents=True)
    pipe = OutputsPipe(Collect("/w2s/out", str(destination), NAMES, FILE_BYTES, "python3"))

    def send() -> None:
        try:
            view = memoryview(stream)
            while view:
                view = view[os.write(pipe.write_end, view[:1 << 16]):]
        except BrokenPipeError:  # the parser stopped reading: what a jail's writer gets too
            pass

    writer = threading.Thread(target=send)
    writer.start()
    writer.join(timeout=30)
    problem = pipe.finish()
    left = {}
    for path in destination.iterdir():
        info = path.lstat()
        left[path.name] = ("dir" if path.is_dir() and not path.is_symlink() else
                           os.readlink(path) if path.is_symlink() else
                           (info.st_size, info.st_blocks))
    return problem, left


def honest() -> bytes:
    return (frame(BEGIN, 0) + frame(BYTES, 0, b'{"id": "a", "prob": 0.5}\n')
            + frame(LINK, 1, b"/etc/passwd") + frame(END))


def test_an_honest_stream_gives_the_files_links_and_placeholders(tmp_path):
    problem, left = receive(tmp_path, honest())
    assert problem is None
    assert left["predictions.jsonl"][0] == 25 and left["describe.json"] == "/etc/passwd"
    problem, left = receive(tmp_path / "2", frame(OTHER, 1) + frame(END))
    assert problem is None and left == {"describe.json": "dir"}


def test_zeros_arrive_as_holes(tmp_path):
    stream = (frame(BEGIN, 0) + frame(ZEROS, 0, length=CHUNK_BYTES) + frame(BYTES, 0, b"x")
              + frame(ZEROS, 0, length=CHUNK_BYTES) + frame(END))
    problem, left = receive(tmp_path, stream)
    assert problem is None
    size, blocks = left["predictions.jsonl"]
    assert size == 2 * CHUNK_BYTES + 1 and blocks * 512 < 64 << 10


def test_a_file_too_large_arrives_as_its_size_without_blocks(tmp_path):
    problem, left = receive(tmp_path, frame(TOO_LARGE, 0, length=(1 << 64) - 1) + frame(END))
    # A 1 TiB sparse predictions.jsonl left in /tmp was read whole by a label-thief test that
    # walks /tmp in-process, until the OOM killer took the pytest worker (CI, 2026-12-03).
    (tmp_path / "out" / "predictions.jsonl").unlink()
    assert problem is None and left == {"predictions.jsonl": (LARGEST_SHOWN_SIZE, 0)}


@pytest.mark.parametrize("stream, expected", [
    # more bytes than the cap: 64 chunks of 1 MiB against 4 MiB + 64 KiB
    (frame(BEGIN, 0) + frame(BYTES, 0, b"x" * CHUNK_BYTES) * 64 + frame(END), "exceeded"),
    # holes count too: 50 bytes of frames must not become a sparse file past the outputs bound
    (frame(BEGIN, 0) + frame(ZEROS, 0, length=CHUNK_BYTES) * 5 + frame(END), "exceeded"),
    # a name twice (the second would replace or extend the first)
    (honest()[:-FRAME.size] + frame(BEGIN, 0) + frame(END), "out of place"),
    # a name that is not allowed
    (frame(BEGIN, 2) + frame(END), "out of place"),
    # bytes of a file that was not begun, or of another name than the open one
    (frame(BYTES, 0, b"x") + frame(END), "out of place"),
    (frame(BEGIN, 0) + frame(BYTES, 1, b"x") + frame(END), "out of place"),
    # a chunk longer than the largest the collector sends, or a run of zeros
    (frame(BEGIN, 0) + frame(BYTES, 0, length=CHUNK_BYTES + 1), "out of place"),
    (frame(BEGIN, 0) + frame(ZEROS, 0, length=1 << 62) + frame(END), "out of place"),
    (frame(ZEROS, 0, length=1) + frame(END), "out of place"),
    # an unknown kind, a link with a length of 0 or past PATH_MAX, a malformed end
    (frame(9, 0) + frame(END), "unknown frame"),
    (frame(LINK, 0, b"") + frame(END), "unknown frame"),
    (frame(LINK, 0, length=5000) + b"x" * 5000 + frame(END), "unknown frame"),
    (frame(BEGIN, 0) + frame(END, 1), "malformed end"),
    # a link text the host cannot hold
    (frame(LINK, 0, b"a\0b") + frame(END), "could not be written"),
    # a stream that stops without its end (a collector killed half-way)
    (frame(BEGIN, 0) + frame(BYTES, 0, b"partial"), "broke off"),
    (b"\x01\x00", "broke off"),
    # 512 bytes of a tar header: not frames
    (b"predictions.jsonl".ljust(512, b"\0"), "out of place"),
])
def test_a_stream_that_breaks_a_rule_leaves_nothing(tmp_path, stream, expected):
    problem, left = receive(tmp_path, stream)
    assert problem is not None and expected in problem, problem
    assert left == {}


def test_bytes_after_the_end_are_not_read_into_anything(tmp_path):
    problem, left = receive(tmp_path, honest() + frame(BEGIN, 1) + b"y" * (8 << 20))
    assert problem is None and set(left) == {"predictions.jsonl", "describe.json"}


def test_the_pipe_never_takes_the_standard_descriptors(tmp_path):
    # A caller started with stdin and stdout closed gets 0 and 1 from os.pipe: the jail's process
    # would then read and write its outputs stream as its standard input and output.
    code = ("import sys\n"
            "from methods.jail_outputs import Collect, OutputsPipe\n"
            f"pipe = OutputsPipe(Collect('/w2s/out', {str(tmp_path)!r}, ('a',), 1, 'python3'))\n"
            "sys.stderr.write(f'{pipe._read_end} {pipe.write_end}')\n"
            "pipe.finish()\n")
    done = subprocess.run(["sh", "-c", 'exec 0<&- 1>&- "$0" -c "$1"', sys.executable, code],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    read_end, write_end = map(int, done.stderr.split()[-2:])
    assert read_end > 2 and write_end > 2, done.stderr
