"""Issue 5 acceptance: the `validate` deployment of infra/prefect.yaml runs end to end.

A real Prefect server on 127.0.0.1 (free port, PREFECT_HOME in a temporary directory, analytics
off), the process work pool, `prefect deploy` of the `validate` deployment, a worker that takes
one flow run, `prefect deployment run` pointed at the micro-ci plan; then the flow run must
complete and publish the report artifact ``w2s-report-micro-ci``. Every wait is bounded and every
process started here is stopped (its whole process group).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect_server import (
    PREFECT,
    TERMINAL,
    Processes,
    api,
    free_port,
    prefect,
    seed_database,
    server_env,
    wait_for,
)

MICRO_CI = "flows/plans/micro-ci.yaml"
POOL = "w2s-process"  # the pool infra/prefect.yaml's process deployments use

pytestmark = pytest.mark.slow


def test_validate_deployment_runs_on_a_process_worker_and_publishes_the_report(
        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = seed_database(tmp_path / "prefect-home")
    env = server_env(home, port)
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
