"""The started-ahead flow-run process (``flows/standby.py``) without a server.

It must become exactly the process Prefect's cold path would start: run Prefect's engine as
``__main__`` with the order's environment when nothing fixed at its start differs, and
``exec`` a cold ``python -m prefect.engine`` when something does (here ``PYTHONPATH``, which a
cold interpreter acts on at start: a ``sitecustomize`` there prints a marker). An invalid flow
run id makes the engine stop at once with its own message, whichever way it started.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = "cold interpreter start"


def standby(order: dict | None, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    line = "" if order is None else json.dumps(order) + "\n"
    return subprocess.run([sys.executable, "-m", "flows.standby"], input=line, env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_a_standby_without_an_order_exits_quietly(tmp_path: Path) -> None:
    done = standby(None, base_env(), tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_the_order_runs_prefect_s_engine_in_the_started_process(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(f"print({MARKER!r})\n")
    env = base_env()
    work = tmp_path / "run"
    work.mkdir()
    order_env = {**env, "PREFECT__FLOW_RUN_ID": "not-a-uuid", "W2S_PROBE": "order"}
    warm = standby({"env": order_env, "cwd": str(work)}, env, tmp_path)
    assert warm.returncode == 1, warm.stderr[-2000:]
    assert "Invalid flow run id" in warm.stderr and MARKER not in warm.stdout

    changed = {**order_env, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}"}
    cold = standby({"env": changed, "cwd": str(work)}, env, tmp_path)
    assert cold.returncode == 1, cold.stderr[-2000:]
    assert "Invalid flow run id" in cold.stderr and MARKER in cold.stdout


def test_a_quiet_order_silences_the_process(tmp_path: Path) -> None:
    env = base_env()
    order = {"env": {**env, "PREFECT__FLOW_RUN_ID": "not-a-uuid"}, "cwd": str(tmp_path),
             "quiet": True}
    done = standby(order, env, tmp_path)
    assert done.returncode == 1 and done.stdout == "" and done.stderr == ""


def test_a_waiting_standby_yields_the_cpu_and_gets_it_back_at_hand_off() -> None:
    """The worker lowers a waiting standby's priority (its session's scheduling group and every
    thread) and restores it at hand-off; where it could not restore it, it never lowers it."""
    import anyio

    from flows.standby_worker import StandbyProcessWorker, _set_priority

    async def scenario() -> tuple[bool, list[str], list[int]]:
        process = await anyio.open_process(["sleep", "30"], start_new_session=True)
        try:
            may = StandbyProcessWorker._priority_can_be_restored(process)
            seen_group, seen_nice = [], []
            if may:
                for niceness in (10, 0):
                    _set_priority(process, niceness)
                    autogroup = Path(f"/proc/{process.pid}/autogroup")
                    if autogroup.exists():
                        seen_group.append(autogroup.read_text().split()[-1])
                    seen_nice.append(os.getpriority(os.PRIO_PROCESS, process.pid))
            return may, seen_group, seen_nice
        finally:
            process.kill()
            await process.aclose()

    may, seen_group, seen_nice = anyio.run(scenario)
    if not may:  # then the OS indeed refuses to give a lowered priority back
        probe = subprocess.Popen(["sleep", "30"])
        try:
            os.setpriority(os.PRIO_PROCESS, probe.pid, 10)
            with pytest.raises(PermissionError):
                os.setpriority(os.PRIO_PROCESS, probe.pid, 0)
        finally:
            probe.kill()
            probe.wait()
        return
    assert seen_nice == [10, 0]
    if Path("/proc/self/autogroup").exists():
        assert seen_group == ["10", "0"]
