"""Issue 5 acceptance: the `validate` deployment of infra/prefect.yaml runs end to end.

A real Prefect server on 127.0.0.1 (free port, PREFECT_HOME in a temporary directory, analytics
off), the process work pool, `prefect deploy` of the `validate` deployment, a worker that takes
one flow run, `prefect deployment run` pointed at the micro-ci plan; then the flow run must
complete and publish the report artifact ``w2s-report-micro-ci``. Every wait is bounded and every
process started here is stopped (its whole process group).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
MICRO_CI = "flows/plans/micro-ci.yaml"
POOL = "w2s-process"  # the pool infra/prefect.yaml's process deployments use
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(url: str, path: str, body: dict | None = None):
    """GET (or POST ``body``) a Prefect REST endpoint; returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if value := condition():
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


class Processes:
    """Background processes, each in its own session; stop() kills their whole groups."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.started = logs, []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=REPO, env=env,
                                stdout=(self.logs / f"{name}.log").open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):  # anything left in its group
                os.killpg(proc.pid, signal.SIGKILL)


def prefect(args: list[str], env: dict[str, str], timeout_s: float = 120) -> str:
    done = subprocess.run([*PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_validate_deployment_runs_on_a_process_worker_and_publishes_the_report(
        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false",
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                "W2S_REPO_DIR": str(REPO),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    out, store = tmp_path / "out", tmp_path / "store"
    processes = Processes(tmp_path)
    try:
        server = processes.start("server", [*PREFECT, "server", "start", "--host", "127.0.0.1",
                                            "--port", str(port)], env)
        wait_for(lambda: server.poll() is not None or api(url, "/health") is True, 120,
                 "the Prefect server")
        assert server.poll() is None, processes.log("server")

        prefect(["work-pool", "create", POOL, "--type", "process"], env)
        prefect(["deploy", "--prefect-file", "infra/prefect.yaml", "--name", "validate"], env)
        triggered = prefect(["deployment", "run", "validate/validate",
                             "--param", f"plan={MICRO_CI}", "--param", f"out={out}",
                             "--param", f"store={store}"], env)
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", triggered).group(1)

        worker = processes.start("worker", [*PREFECT, "worker", "start", "--pool", POOL,
                                            "--run-once", "--limit", "1"], env)
        state = wait_for(
            lambda: (api(url, f"/flow_runs/{flow_run_id}")["state"] or {}).get("type") in TERMINAL
            and api(url, f"/flow_runs/{flow_run_id}")["state"], 240, "the flow run to finish", 1.0)
        assert state["type"] == "COMPLETED", (state, processes.log("worker"))
        assert worker.wait(timeout=60) == 0, processes.log("worker")

        artifacts = api(url, "/artifacts/filter", {
            "artifacts": {"key": {"any_": ["w2s-report-micro-ci"]},
                          "flow_run_id": {"any_": [flow_run_id]}}})
        assert len(artifacts) == 1 and artifacts[0]["type"] == "markdown"
        assert "aux_conf" in artifacts[0]["data"]
        verdict = json.loads((out / "verdict.json").read_text())
        assert verdict["plan"]["name"] == "micro-ci"
        assert (out / "report.html").exists()
    finally:
        processes.stop()
