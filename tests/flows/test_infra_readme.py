"""Issue 9, item 6: infra/README.md's commands run as written against a real Prefect server.

A `prefect server start` on a free 127.0.0.1 port (PREFECT_HOME in a temporary directory); then
every ```bash block of infra/README.md runs, in order, in one bash session with ``-e`` (the
first failing command fails the test), in the repository root. Shims stand in for what cannot
run here: ``prefect server start`` (this test started one) and ``prefect worker start`` (a
long-running worker; test_deployment.py runs one), ``docker``, ``kubectl`` and the pool
executor's ``w2s-transfer validate`` (test_pool.py runs it with two workers). The README
deploys the process deployments before it creates the Kubernetes pool (so that step shows they
need none); afterwards a deploy without W2S_IMAGE (or with it empty) or without W2S_REPO_DIR must
fail with its one-line reason.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prefect_server import Processes, api, free_port, seed_database, wait_for

REPO = Path(__file__).resolve().parents[2]
README = REPO / "infra" / "README.md"
PREFECT = [sys.executable, "-m", "prefect"]

pytestmark = pytest.mark.slow

SHIMS = r'''
set -euo pipefail
prefect() {
  case "$1 ${2:-}" in
    "server start"|"worker start") echo "shim: prefect $*";;
    *) "$W2S_TEST_PYTHON" -m prefect "$@";;
  esac
}
python() { "$W2S_TEST_PYTHON" "$@"; }
docker() { echo "shim: docker $*"; }
kubectl() { [ -t 0 ] || cat > /dev/null; echo "shim: kubectl $*"; }
w2s-transfer() { echo "shim: w2s-transfer $*"; }  # the pool executor: test_pool.py runs it
'''


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def prefect(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "W2S_IMAGE", "W2S_REPO_DIR"))}
    # A migrated database in the new PREFECT_HOME (prefect_server.template_database): the
    # commands under test run as on a fresh one, the server starts 20 s sooner.
    home = seed_database(tmp_path / "prefect-home")
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false",
                "W2S_TEST_PYTHON": sys.executable})
    processes = Processes(tmp_path)
    try:
        server = processes.start("server", [*PREFECT, "server", "start", "--host", "127.0.0.1",
                                            "--port", str(port)], env)
        wait_for(lambda: server.poll() is not None or api(url, "/health") is True, 120,
                 "the Prefect server")
        assert server.poll() is None, processes.log("server")

        # Every bash block of the README, in order, in one session; the config set runs too
        # (in the temporary PREFECT_HOME; the environment's PREFECT_API_URL keeps pointing here).
        text = README.read_text()
        blocks = bash_blocks(text)
        assert len(blocks) >= 6
        # The process deployments are deployed before any Kubernetes pool exists.
        assert text.index("infra/prefect.yaml --all") < text.index("--type kubernetes")
        script = SHIMS + "\n".join(blocks)
        done = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "--concurrency-limit" not in text.split("## 2.")[1].split("## 3.")[0]

        pools = {p["name"]: p for p in api(url, "/work_pools/filter", {})}
        assert pools["w2s-process"]["concurrency_limit"] == 1
        assert pools["w2s-k8s-gpu"]["type"] == "kubernetes"
        deployments = {d["name"]: d for d in api(url, "/deployments/filter", {})}
        assert set(deployments) == {"validate", "nightly-sweep", "validate-gpu"}
        image = deployments["validate-gpu"]["job_variables"]["image"]
        assert re.fullmatch(r"registry\.example\.com/w2s-transfer:[0-9a-f]+", image), image
        runs = api(url, "/flow_runs/filter", {})
        assert {r["parameters"].get("plan") for r in runs} >= {"flows/plans/tiny-ci.yaml"}
        assert any(r["job_variables"] == {"gpu_count": 8} for r in runs)
        blocks_saved = {b["name"] for b in api(url, "/block_documents/filter", {})}
        assert {"anthropic-api-key", "w2s-verdict-key"} <= blocks_saved

        # A missing or empty image, a missing checkout: exit 1 with the reason first.
        for image in (None, ""):
            bad = {**env, **({"W2S_IMAGE": image} if image is not None else {})}
            done = prefect(["deploy", "--prefect-file", "infra/prefect-k8s.yaml", "--all"], bad)
            assert done.returncode == 1
            assert done.stderr.startswith("W2S_IMAGE is not set"), done.stderr[:500]
        done = prefect(["deploy", "--prefect-file", "infra/prefect.yaml", "--all"], env)
        assert done.returncode == 1
        assert done.stderr.startswith("W2S_REPO_DIR must name the w2s-transfer checkout")
    finally:
        processes.stop()
