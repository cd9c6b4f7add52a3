"""Issue 9, item 3: the CLI's embedded Prefect server.

Three validations start together on a fresh PREFECT_HOME, each with its own embedded server
(no PREFECT_API_URL). Before, two such starts both crashed (``index
ix_block_type_name_case_insensitive already exists``, then a time-out connecting to the
server). One of the three is SIGKILLed once it runs: its server must die with it (before, the
server kept running, orphaned). The other two finish.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from test_concurrency import Cli, group_logs, micro_plan
from test_resume import pids_with, wait_until


def children(pid: int, marker: str) -> list[int]:
    """Live processes whose parent is ``pid`` and whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("PPid:")), -1)
        state = next((line.split()[1] for line in status.splitlines()
                      if line.startswith("State:")), "")
        if ppid == pid and marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.timeout(900)
def test_concurrent_embedded_starts_on_a_fresh_home_and_no_orphan_server(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING")
    plan = micro_plan(tmp_path, "embedded", ["aux_conf"])
    store = tmp_path / "store"
    clis = {name: Cli(["validate", str(plan), "--out", str(tmp_path / name), "--store",
                       str(store)], env, tmp_path, name)
            for name in ("first", "second", "killed")}
    killed = clis["killed"]
    try:
        wait_until(lambda: group_logs(tmp_path / "killed") or killed.proc.poll() is not None,
                   600, "the third validation to run its first group")
        assert killed.proc.poll() is None, killed.stderr[-3000:]
        servers = children(killed.proc.pid, "uvicorn")
        assert len(servers) == 1, "the CLI runs its own embedded server"
        os.kill(killed.proc.pid, signal.SIGKILL)
        killed.proc.wait()
        wait_until(lambda: not alive(servers[0]), 30, "the killed CLI's server to exit")
        wait_until(lambda: not pids_with(str(tmp_path / "killed" / "work")), 30,
                   "the killed CLI's worker to exit")
        codes = {name: clis[name].wait(600) for name in ("first", "second")}
    finally:
        for cli in clis.values():
            if cli.proc.poll() is None:
                cli.proc.kill()
                cli.proc.wait()
    for name, code in codes.items():
        stderr = clis[name].stderr
        assert code == 0, f"{name}: {stderr[-3000:]}"
        assert "Traceback" not in stderr and "already exists" not in stderr, stderr[-3000:]
        verdict = json.loads((tmp_path / name / "verdict.json").read_text())
        assert verdict["methods"]["aux_conf"]["verdict"]
