"""A sandboxed program dies with the process that started it (a cancelled flow kills its
workers; their sandboxes, in sessions of their own, must not outlive them)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys
from methods.sandbox import run_sandboxed
run_sandboxed(["sh", "-c", "echo $$ > " + sys.argv[1] + "; exec sleep 313"], timeout_s=120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _sleepers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"sleep\x00313" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:  # the process ended while we looked
            continue
    return found


def test_sandboxed_child_is_killed_when_its_parent_dies(tmp_path):
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, str(pid_file)],
                              cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the sandboxed program never started"
        time.sleep(0.05)
    sandboxed = int(pid_file.read_text())
    # In a PID namespace the program sees itself as a small pid; find it from the outside.
    outside = _sleepers() if sandboxed < 10 else [sandboxed]
    assert outside and all(_alive(pid) for pid in outside)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in outside):
        assert time.monotonic() < deadline, "the sandboxed program outlived its parent"
        time.sleep(0.05)
