"""The started-ahead flow-run process (``flows/standby.py``) without a server.

It must become exactly the process Prefect's cold path would start: run Prefect's engine as
``__main__`` with the order's environment when nothing a cold start acts on differs, and
``exec`` a cold ``python -m prefect.engine`` when something does (here ``PYTHONPATH``, which a
cold interpreter acts on at start: a ``sitecustomize`` there prints a marker). An invalid flow
run id makes the engine stop at once with its own message, whichever way it started.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.standby import cold_reason, module_files

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


def as_ordered(env: dict[str, str], work: Path) -> dict[str, str]:
    """The order's environment as the worker composes it: per-run values, the working
    directory first on PYTHONPATH."""
    return {**env, "PREFECT__FLOW_RUN_ID": "not-a-uuid",
            "PYTHONPATH": os.pathsep.join([str(work), env["PYTHONPATH"]])}


def test_a_standby_without_an_order_exits_quietly(tmp_path: Path) -> None:
    done = standby(None, base_env(), tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_the_order_runs_prefect_s_engine_in_the_started_process(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(f"print({MARKER!r})\n")
    env = base_env()
    work = tmp_path / "run"
    work.mkdir()
    warm = standby({"env": as_ordered(env, work), "cwd": str(work)}, env, tmp_path)
    assert warm.returncode == 1, warm.stderr[-2000:]
    assert "Invalid flow run id" in warm.stderr and MARKER not in warm.stdout
    assert "starting cold" not in warm.stderr

    changed = {**as_ordered(env, work), "PYTHONPATH": os.pathsep.join(
        [str(work), str(tmp_path / "site"), str(REPO)])}
    cold = standby({"env": changed, "cwd": str(work)}, env, tmp_path)
    assert cold.returncode == 1, cold.stderr[-2000:]
    assert "Invalid flow run id" in cold.stderr and MARKER in cold.stdout
    assert "starting cold (environment differs: PYTHONPATH)" in cold.stderr


def test_a_quiet_order_silences_the_process(tmp_path: Path) -> None:
    env = base_env()
    order = {"env": as_ordered(env, tmp_path), "cwd": str(tmp_path), "quiet": True}
    done = standby(order, env, tmp_path)
    assert done.returncode == 1 and done.stdout == "" and done.stderr == ""


def test_what_sends_an_order_cold(tmp_path: Path) -> None:
    """The allow-list: only Prefect's per-run values and the working directory's place on
    PYTHONPATH may differ; imported files must be unchanged; the working directory must not
    shadow an imported module."""
    work = tmp_path / "run"
    work.mkdir()
    started = {"PATH": "/usr/bin", "PYTHONPATH": "/repo", "OMP_NUM_THREADS": "1"}
    ordered = {**started, "PREFECT__FLOW_RUN_ID": "x", "PREFECT__CONTROL_TOKEN": "t",
               "PYTHONPATH": f"{work}{os.pathsep}/repo"}
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    files = {str(module): (module.stat().st_size, module.stat().st_mtime_ns)}
    assert cold_reason(ordered, str(work), started, files) is None

    assert "OMP_NUM_THREADS" in cold_reason({**ordered, "OMP_NUM_THREADS": "4"}, str(work),
                                            started, files)
    assert "LANG" in cold_reason({**ordered, "LANG": "C"}, str(work), started, files)

    module.write_text("x = 22\n")
    assert "changed since the standby started" in cold_reason(ordered, str(work), started,
                                                              files)
    module.unlink()
    assert "changed since the standby started" in cold_reason(ordered, str(work), started,
                                                              files)

    (work / "json.py").write_text("")  # imported by now; a cold start would import this one
    assert "shadows imported modules: json" in cold_reason(ordered, str(work), started, {})
    (work / "json.py").unlink()
    (work / "prefect.toml").write_text("")  # a cold engine would read settings from it
    assert "holds Prefect settings: prefect.toml" in cold_reason(ordered, str(work), started,
                                                                 {})


def test_the_standby_remembers_the_files_it_imported() -> None:
    files = module_files()
    assert files[json.__file__] == (os.stat(json.__file__).st_size,
                                    os.stat(json.__file__).st_mtime_ns)


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


def test_a_worker_with_no_free_slot_asks_the_server_seldom(monkeypatch) -> None:
    """Each ask for scheduled runs costs the server CPU; a worker whose slots are all taken
    cannot take a run, so it asks only every FULL_POLL_S, and at once when a slot frees up.
    A skipped ask keeps Prefect's health check green only while the last real ask worked."""
    import anyio
    from prefect.workers.process import ProcessWorker

    from flows.standby_worker import FULL_POLL_S, StandbyProcessWorker

    asked, failing = [], []

    async def ask_server(self) -> list:
        asked.append(self._limiter.available_tokens if self._limiter else None)
        if failing:
            raise OSError("the server is down")
        return []

    monkeypatch.setattr(ProcessWorker, "get_and_submit_flow_runs", ask_server)

    async def scenario() -> tuple[list, list]:
        worker = StandbyProcessWorker(work_pool_name="p", limit=1)
        shutil.rmtree(worker._standby_cwd)  # made by __init__; no standby starts here
        worker._limiter = anyio.CapacityLimiter(1)
        refreshed = []

        async def poll() -> None:
            worker._last_polled_time = None
            with contextlib.suppress(OSError):
                await worker.get_and_submit_flow_runs()
            refreshed.append(worker._last_polled_time is not None)

        await poll()  # a free slot: asks
        worker._limiter.acquire_on_behalf_of_nowait("group-1")
        await poll()  # full, asked just now: skipped
        worker._server_polled_at -= FULL_POLL_S / 2
        await poll()  # full, asked FULL_POLL_S / 2 ago: skipped
        worker._server_polled_at -= FULL_POLL_S
        failing.append(True)
        await poll()  # full but due: asks (keeps the queue READY); the server fails
        await poll()  # skipped, and the health check no longer told all is well
        failing.clear()
        worker._limiter.release_on_behalf_of("group-1")
        await poll()  # a slot is free again: asks at once
        worker._limiter = None  # no --limit: never full
        await poll()
        return asked, refreshed

    asked_with, refreshed = anyio.run(scenario)
    assert asked_with == [1, 0, 1, None]
    # the base class's own ask would refresh the time; the fake does not
    assert refreshed == [False, True, True, False, False, False, False]
