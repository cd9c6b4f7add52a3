"""Route class: exhausting the host (processes, memory, disk, output, time, CPU).

``python3 exhaust.py {inputs} {outputs} _ext.py MODE [N] [MIB]``:

- ``forkbomb``: fork until refused; every child sleeps; reports the number of forks;
- ``memory N MIB``: N processes each touching MIB MiB at once; reports how many held it;
- ``disk N``: N files of 1 MiB beside its outputs (each under the largest-file limit);
  reports how many it wrote;
- ``flood MIB``: MIB MiB to stdout and to stderr, then honest predictions;
- ``sleep``: sleeps past any time-out;
- ``spin``: burns CPU forever.

Counts come back in the first prediction as ``count / 10000`` (the rest 0.5).
"""
from __future__ import annotations

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

MARKER = "w2s-exhaust-child"


def forkbomb() -> int:
    forks = 0
    while forks < 100_000:
        try:
            pid = os.fork()
        except OSError:
            return forks
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)",
                                      MARKER])
        forks += 1
    return forks


def memory(count: int, mib: int) -> int:
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                block = bytearray(mib << 20)
                for offset in range(0, len(block), 4096):
                    block[offset] = 1
                time.sleep(2.0)  # all of them hold it at once
                os._exit(0)
            except MemoryError:
                os._exit(3)
        children.append(pid)
    return sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0 for pid in children)


def disk(outputs: str, count: int) -> int:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    written = 0
    chunk = b"w" * (1 << 20)
    for index in range(count):
        try:
            with open(os.path.join(outputs, f"fill-{index}"), "wb") as handle:
                handle.write(chunk)
            written += 1
        except OSError:
            break
    return written


def flood(mib: int) -> None:
    line = ("x" * 1023 + "\n").encode()
    for _ in range(mib << 10):
        os.write(1, line)
        os.write(2, line)


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    args = _ext.args_after(argv)
    mode = args[0]
    count = None
    if mode == "forkbomb":
        count = forkbomb()
    elif mode == "memory":
        count = memory(int(args[1]), int(args[2]))
    elif mode == "disk":
        count = disk(outputs, int(args[1]))
    elif mode == "flood":
        flood(int(args[1]))
    elif mode == "sleep":
        time.sleep(3600)
    elif mode == "spin":
        while True:
            pass
    probs = _ext.predictions(ids, {})
    if count is not None:
        probs[0] = min(1.0, count / 10000)
    _ext.write_predictions(outputs, ids, probs)


if __name__ == "__main__":
    main(sys.argv)
