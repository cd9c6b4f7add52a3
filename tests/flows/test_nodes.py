"""Issue 11 item 4: one arm group on two "nodes" through torchrun's c10d rendezvous.

Two processes on 127.0.0.1, each in its own working directory and each running
``python -m flows.nodes join`` (torchrun, ``--nnodes 2 --nproc-per-node 1 --rdzv-backend c10d``)
against one endpoint, run one group of the micro ladder (weak, ceiling and the vanilla student,
seed 0) into a fresh store. The same group then runs as one process into another store. The
predictions of every run must agree within 1e-5: both see the same global batches, only the
order of float32 sums differs (tests/transfer/test_engine_dist.py measured 1.2e-7 for two local
ranks; a sharding or averaging mistake moves them by 1e-3 or more). Exactly one complete copy of
each run is published (rank 0 writes), and both nodes report the same outcome.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prefect_server import free_port

from flows.worker import ArmGroup, Canary, GroupMethod

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5

pytestmark = pytest.mark.slow


def micro_group(store: Path, result: Path) -> ArmGroup:
    return ArmGroup(ladder="micro", rung="m0", data=None, store=str(store), seeds=[0],
                    methods=[GroupMethod(name="vanilla")],
                    # The label-leak audit: its throw-away runs too are shared by the ranks.
                    canaries=[Canary(method="vanilla", seed=0, permutations=(4, 11))],
                    engine={"ds_config": "zero0", "precision": "fp32"}, jail={},
                    result=str(result))


def predictions_by_arm(store: Path) -> dict[str, np.ndarray]:
    from transfer.store import RunStore

    return {r.spec.label: r.predictions().sort_values("example_id")["prob"].to_numpy()
            for r in RunStore(store).records()}


def test_two_nodes_through_the_rendezvous_match_one_process(tmp_path: Path) -> None:
    from flows.execute import run_group_subprocess

    two = tmp_path / "two-nodes"
    group = micro_group(two / "store", two / "store" / ".groups" / "g.result.json")
    group_file = tmp_path / "group.json"
    group_file.write_text(group.model_dump_json())
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for rank in (0, 1):
        machine = tmp_path / f"node-{rank}"
        machine.mkdir()
        nodes.append(subprocess.Popen(
            [sys.executable, "-m", "flows.nodes", "join", str(group_file), "--nodes", "2",
             "--processes", "1", "--endpoint", endpoint, "--run-id", "test-rdzv",
             "--node-rank", str(rank), "--work-dir", str(machine / "groups")],
            cwd=machine, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        finished = [proc.communicate(timeout=600) for proc in nodes]
    finally:
        for proc in nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, stderr) in zip(nodes, finished):
        assert proc.returncode == 0, stderr[-3000:]
    outcomes = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in finished]
    assert outcomes[0] == outcomes[1] and len(outcomes[0]["runs"]) == 3
    assert [a["clean"] for a in outcomes[0]["audits"]] == [True], outcomes[0]["audits"]
    logs = [next((tmp_path / f"node-{r}" / "groups").glob("group-*.log")).read_text()
            for r in (0, 1)]
    # One world of two ranks, one on each node (c10d picks which node is rank 0).
    assert sorted(next(line for line in log.splitlines() if "w2s worker: rank" in line)
                  .split("w2s worker: ")[1].split(" (")[0] for log in logs) == [
        "rank 0 of 2", "rank 1 of 2"], logs

    one = tmp_path / "one-process"
    run_group_subprocess(micro_group(one / "store", Path("")).model_copy(update={"result": ""}),
                         one / "work")
    a, b = predictions_by_arm(one / "store"), predictions_by_arm(two / "store")
    assert sorted(a) == sorted(b) and len(a) == 3
    for label in a:
        np.testing.assert_allclose(b[label], a[label], rtol=0, atol=TOLERANCE, err_msg=label)
    # Exactly one published copy per run, no staging left behind by the second rank.
    runs = [p for arm in (two / "store").iterdir() if not arm.name.startswith(".")
            for p in arm.iterdir()]
    assert len([p for p in runs if not p.name.startswith(".")]) == 3
    assert not [p for p in runs if p.name.endswith(".tmp")]
