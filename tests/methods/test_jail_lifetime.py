"""A jailed program dies with the process that started it (a cancelled flow kills its
workers; their jails, in sessions of their own, must not outlive them)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from methods.jail import jail_available

SCRIPT = """
import sys
from methods.jail import JailSpec, Mount, run_jailed, system_mounts
spec = JailSpec(mounts=(*system_mounts(), Mount("rw", "/out", sys.argv[1])),
                env={"PATH": "/usr/bin:/bin"})
run_jailed(["sh", "-c", "echo $$ > /out/pid; exec sleep 313"], spec, timeout_s=120)
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


@pytest.mark.skipif(not jail_available(), reason="no jail builder works here")
def test_jailed_program_is_killed_when_its_parent_dies(tmp_path):
    pid_file = tmp_path / "pid"
    os.chmod(tmp_path, 0o777)
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                              cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the jailed program never started"
        time.sleep(0.05)
    # In its PID namespace the program sees itself as a small pid; find it from the outside,
    # once the shell that wrote the pid file has exec'd the sleep (a moment after the write).
    while not (outside := _sleepers()):
        assert time.monotonic() < deadline, "the jailed program never exec'd its sleep"
        time.sleep(0.05)
    assert all(_alive(pid) for pid in outside)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in outside):
        assert time.monotonic() < deadline, "the jailed program outlived its parent"
        time.sleep(0.05)
