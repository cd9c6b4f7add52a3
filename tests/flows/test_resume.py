"""Issue 5 acceptance: a killed validation resumes without recomputing finished runs, and a
cancelled (SIGTERM) flow leaves no worker process behind.

The command-line runs are subprocesses that talk to the session's Prefect test server
(``PREFECT_API_URL`` of the ``prefect_harness`` fixture), so each does not start its own.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MICRO_CI = REPO / "flows" / "plans" / "micro-ci.yaml"
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]

# verdict.json keys that may differ between two runs of the same work: wall-clock stamps and
# durations (verdict.json holds none of them today: timings go to timings.json and
# provenance.json; the list keeps the comparison honest if one is added), and what the reuse
# check did (binding.reuse_check: which runs were reused or fed by shared cache entries
# depends on what the store and the cache held, not on the work).
RUN_TIME_KEYS = frozenset({"created_at", "generated_at", "timestamp", "timings", "seconds",
                           "wall_s", "elapsed_s", "reuse_check"})


def without_run_time(value):
    """``value`` with every RUN_TIME_KEYS entry removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_run_time(v) for k, v in value.items() if k not in RUN_TIME_KEYS}
    if isinstance(value, list):
        return [without_run_time(v) for v in value]
    return value


def harness_env() -> dict[str, str]:
    """This process's environment plus the test server's API URL, for child CLIs."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}


def pids_with(marker: str) -> list[int]:
    """Processes whose command line, or standard output or error, names ``marker``.

    A group worker forked from the fork server (``flows.warm_start``) has the fork server's
    command line; its output, and its children's, goes to the group's log under the work dir.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or any(marker in target for target in _outputs(entry)):
            found.append(int(entry.name))
    return found


def _outputs(process: Path) -> list[str]:
    targets = []
    for fd in ("1", "2"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(process / "fd" / fd))
    return targets


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
    return value


def complete_runs(store: Path) -> dict[str, tuple[int, int]]:
    """run hash -> (inode, mtime_ns) of its COMPLETE marker: a recomputed run gets a new one.
    Published runs only: a run killed between writing COMPLETE and its rename leaves a hidden
    staging directory (``.<hash>.*.tmp``) that no reader sees."""
    out = {}
    for marker in store.glob("*/*/COMPLETE"):
        if marker.parent.name.startswith("."):
            continue
        stat = marker.stat()
        out[marker.parent.name] = (stat.st_ino, stat.st_mtime_ns)
    return out


def executed_hashes(out: Path) -> set[str]:
    return {h for result in (out / "work").glob("result-*.json")
            for h in json.loads(result.read_text())["executed"]}


def start_cli(out: Path, store: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "validate", str(MICRO_CI), "--out", str(out), "--store",
                             str(store)], cwd=REPO, env=harness_env(), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_killed_run_resumes_without_recomputing_and_matches_a_clean_run(prefect_harness,
                                                                        tmp_path: Path) -> None:
    from flows.validate import validate_flow

    out, store = tmp_path / "out", tmp_path / "store"
    seed = random.randrange(2**32)
    delay_s = random.Random(seed).uniform(0.0, 6.0)
    print(f"kill {delay_s:.2f} s after the first finished run (random seed {seed})")

    first = start_cli(out, store, tmp_path / "first.log")
    try:
        wait_until(lambda: complete_runs(store) or first.poll() is not None, 180,
                   "the first finished run")
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(delay_s)
        stop_group(first)  # SIGKILL: no handler runs in the flow process
    finally:
        stop_group(first)
    # The orphaned worker notices its flow is gone and kills its own process group.
    wait_until(lambda: not pids_with(str(out)), 5, "the orphaned workers to exit")
    finished = complete_runs(store)
    assert finished

    second = start_cli(out, store, tmp_path / "second.log")
    try:
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-2000:]
    finally:
        stop_group(second)

    after = complete_runs(store)
    assert {h: after[h] for h in finished} == finished, "a finished run was rewritten"
    assert not executed_hashes(out) & finished.keys(), "a finished run was executed again"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["arms_executed"] == len(after) - len(finished)

    clean_out, clean_store = tmp_path / "clean", tmp_path / "clean-store"
    validate_flow(str(MICRO_CI), str(clean_out), str(clean_store))
    assert set(complete_runs(clean_store)) == set(after)
    resumed = json.loads((out / "verdict.json").read_text())
    clean = json.loads((clean_out / "verdict.json").read_text())
    # Which cells the label-leak audit reruns is drawn anew by every validation: both runs
    # audited every method, and found each clean.
    for verdict in (resumed, clean):
        audits = verdict.pop("audits")
        assert sorted(audits) == ["aux_conf", "vanilla"]
        assert all(a["clean"] for cells in audits.values() for a in cells), audits
    assert without_run_time(resumed) == without_run_time(clean)


ORPHAN = """
import sys, time
from flows.worker import watch_orchestrator
watch_orchestrator(sys.argv[3], poll_s=0.1)  # argv: -c, this code, marker, token
time.sleep(120)
"""


def test_a_worker_kills_its_group_when_its_flow_process_dies(tmp_path: Path) -> None:
    """The SIGKILL case in isolation: the flow process runs no handler, the worker's watch
    must notice and kill the worker's whole group (here: the worker and a grandchild)."""
    from flows.worker import process_token

    marker = f"w2s-orphan-test-{tmp_path.name}"
    flow_stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    worker = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
         "'import time; time.sleep(120)', sys.argv[2]]); exec(sys.argv[1])", ORPHAN,
         marker, process_token(flow_stand_in.pid)], cwd=REPO, start_new_session=True)
    try:
        wait_until(lambda: len(pids_with(marker)) == 2, 30, "the worker and its grandchild")
        time.sleep(1.0)
        assert len(pids_with(marker)) == 2, "the watch killed a worker whose flow is alive"
        flow_stand_in.kill()
        flow_stand_in.wait()
        wait_until(lambda: not pids_with(marker), 5, "the worker group to kill itself")
        assert worker.wait(timeout=5) == -signal.SIGKILL
    finally:
        flow_stand_in.kill()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        for pid in pids_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


SLEEPING_WORKER = """
import os, subprocess, sys, time
# A stand-in worker: starts a grandchild (same process group) and sleeps.
marker = os.environ["W2S_TEST_MARKER"]
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker + "-grandchild"])
print("worker started", flush=True)
time.sleep(300)
"""

DRIVER = """
import os, sys
from flows import execute

def sleeping_worker(group_file, processes=1, devices=()):
    return [sys.executable, "-c", os.environ["W2S_TEST_WORKER"], os.environ["W2S_TEST_MARKER"]]

execute.worker_command = sleeping_worker
from flows.validate import validate_flow
validate_flow(sys.argv[1], sys.argv[2], sys.argv[3])
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cancelling_the_flow_kills_the_whole_worker_group(prefect_harness, tmp_path: Path,
                                                          sig: signal.Signals) -> None:
    marker = f"w2s-cancel-test-{tmp_path.name}"
    # Cold workers: the stand-in replaces the worker command (warm ones are test_warm_start's).
    env = {**harness_env(), "W2S_TEST_WORKER": SLEEPING_WORKER, "W2S_TEST_MARKER": marker,
           "W2S_WARM_START": "off"}
    log = tmp_path / "driver.log"
    flow = subprocess.Popen([sys.executable, "-c", DRIVER, str(MICRO_CI), str(tmp_path / "out"),
                             str(tmp_path / "store")], cwd=REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_until(lambda: len(pids_with(marker)) >= 2 or flow.poll() is not None, 120,
                   "the worker and its grandchild")
        assert flow.poll() is None, log.read_text()[-2000:]
        worker_groups = {os.getpgid(pid) for pid in pids_with(marker)}
        assert len(worker_groups) == 1 and worker_groups != {os.getpgid(flow.pid)}

        os.kill(flow.pid, sig)
        returncode = flow.wait(timeout=60)
        # SIGKILL is delivered asynchronously: allow a moment before calling one a survivor.
        deadline = time.monotonic() + 5
        while (survivors := pids_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if flow.poll() is None:
            os.killpg(flow.pid, signal.SIGKILL)
            flow.wait()
        for pid in pids_with(marker):  # never leave a failed test's sleepers behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert returncode != 0, log.read_text()[-2000:]
    assert survivors == [], f"worker processes survived the {sig.name}: {survivors}"
    assert not (tmp_path / "out" / "verdict.json").exists()
