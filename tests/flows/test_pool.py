"""Issue 11 acceptance: the pool executor on a real Prefect server with two workers.

One Prefect server on 127.0.0.1 (free port, its own PREFECT_HOME and SQLite), a process work
pool and two workers with ``--limit 1``, each a separate process group with its own working
directory: two machines in miniature sharing the run store and model caches. Worker w1 is
``w2s-transfer worker`` (Prefect's process worker with a started-ahead process per group,
``flows/standby_worker.py``), w2 is Prefect's own ``prefect worker start``: both kinds serve
the same pool.
The module's tests reuse that server and those workers:

1. the micro-ci plan with ``--executor pool`` while the same plan runs with the local executor
   into another store: groups ran on both workers (the flow runs' worker labels), the verdicts
   are equal, no run was executed twice (the group outcomes' ``executed`` lists against the
   store);
2. Ctrl-C on the parent while the standby worker trains a group: exit 130, the group run ends
   Cancelled and its processes are gone, the worker lives on;
3. the last look again, from a copy of that store without its runs: one worker (its whole
   process tree) is SIGKILLed in the middle of a group; the group run is rerun on the other
   worker, the campaign finishes with the same verdict, nothing finished was executed again;
4. bad input, one line and exit 2, nothing written: an unknown pool, a pool without workers
   (time-out; its group runs are cancelled), a worker whose mount of the store is read-only.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect_server import (
    PREFECT,
    REPO,
    Processes,
    api,
    descendants,
    free_port,
    prefect,
    seed_database,
    server_env,
    start_server,
    wait_for,
)

pytestmark = pytest.mark.slow

POOL = "w2s-test"
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]
MICRO_CI = REPO / "flows" / "plans" / "micro-ci.yaml"
LAST_LOOK_SEED = 2  # micro-ci: seeds 0 and 1, then 2


class Cluster:
    def __init__(self, base: Path, env: dict[str, str], url: str, processes: Processes,
                 workers: dict[str, subprocess.Popen]) -> None:
        self.base, self.env, self.url = base, env, url
        self.processes, self.workers = processes, workers

    def validate(self, plan: Path, out: Path, store: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*CLI, "validate", str(plan), "--out", str(out), "--store",
                                 str(store), *args], cwd=REPO, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def group_runs(self, since: str) -> list[dict]:
        """Flow runs of the run-arm-group flow started after ``since`` (ISO time)."""
        return api(self.url, "/flow_runs/filter", {
            "flows": {"name": {"any_": ["run-arm-group"]}},
            "flow_runs": {"expected_start_time": {"after_": since}}, "limit": 200})

    def now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("pool")
    port = free_port()
    # Workers poll every second (Prefect's default is 10 s); leases expire fast.
    env = server_env(seed_database(base / "prefect-home"), port, PREFECT_WORKER_QUERY_SECONDS="1",
                     W2S_LEASE_TTL_S="10")
    processes = Processes(base)
    try:
        url = start_server(processes, env)
        prefect(["work-pool", "create", POOL, "--type", "process"], env)
        workers = {}
        for name, command in (("w1", [*CLI, "worker"]), ("w2", [*PREFECT, "worker", "start"])):
            cwd = base / f"machine-{name}"
            cwd.mkdir()
            workers[name] = processes.start(
                name, [*command, "--pool", POOL, "--name", name, "--limit", "1"], env, cwd=cwd)
        wait_for(lambda: len([w for w in api(url, f"/work_pools/{POOL}/workers/filter", {})
                              if w["status"] == "ONLINE"]) == 2, 120, "two online workers")
        yield Cluster(base, env, url, processes, workers)
    finally:
        processes.stop()


def finish(proc: subprocess.Popen, timeout_s: float = 600) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"validate did not finish in {timeout_s:.0f} s:\n{stderr[-3000:]}") from err
    return proc.returncode, stdout, stderr


def comparable(verdict: dict) -> dict:
    """The verdict without where and when it was made (the binding's plan hash and results
    digest stay; its commit may move while the test runs) and with only the outcome of its
    label-leak audits (which cells are audited is drawn anew by every validation)."""
    binding = {k: v for k, v in verdict["binding"].items()
               if k in ("plan_hash", "results_sha256")}
    audits = {name: [a["clean"] for a in cells] for name, cells in verdict["audits"].items()}
    return {**{k: v for k, v in verdict.items() if k not in ("binding", "audits")},
            "binding": binding, "audits": audits}


def outcomes(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / ".groups").glob("*.json"))
            if not p.name.endswith(".result.json")]


def run_hashes(store: Path, seed: int | None = None) -> set[str]:
    from transfer.store import RunStore

    return {r.spec.run_hash() for r in RunStore(store).records()
            if seed is None or r.spec.seed == seed}


@pytest.fixture(scope="module")
def pool_and_local(cluster: Cluster) -> dict:
    base, since = cluster.base, cluster.now()
    local = cluster.validate(MICRO_CI, base / "out-local", base / "store-local",
                             "--executor", "local")
    pool = cluster.validate(MICRO_CI, base / "out-pool", base / "store-pool",
                            "--executor", "pool", "--work-pool", POOL)
    results = {"pool": finish(pool), "local": finish(local)}
    for name, (code, _, stderr) in results.items():
        assert code == 0, (name, stderr[-3000:], cluster.processes.log("w1"),
                           cluster.processes.log("w2"))
    return {"since": since, "verdict_local": json.loads((base / "out-local" / "verdict.json")
                                                        .read_text()),
            "verdict_pool": json.loads((base / "out-pool" / "verdict.json").read_text()),
            "store": base / "store-pool"}


def test_groups_run_on_both_workers_once_each_with_the_local_verdict(
        cluster: Cluster, pool_and_local: dict) -> None:
    runs = cluster.group_runs(pool_and_local["since"])
    names = sorted(r["name"] for r in runs)
    real = [n for n in names if "-seeds-" in n]
    # The reuse check recomputes one cell of every pool campaign: its workers' outcomes come
    # back through the shared store, so what they say they computed is not taken on trust.
    checks = [n for n in names if "-reuse-check-seed-" in n]
    audits = [n for n in names if n not in real and n not in checks]
    assert len(real) == 4, names  # 2 rungs x 2 looks
    assert len(checks) == 1, names
    # The label-leak audit's groups: the baseline's and aux_conf's one audit each, after the
    # look that stored the audited runs (one group per rung holding audits).
    assert 1 <= len(audits) <= 2 and all(n in ("m0-audit", "m1-audit") for n in audits), names
    assert all(r["state"]["type"] == "COMPLETED" and r["run_count"] == 1 for r in runs)
    workers = {r["labels"].get("prefect.worker.name") for r in runs}
    assert workers == {"w1", "w2"}, workers
    assert all(r["parent_task_run_id"] for r in runs)  # linked to the validate flow run

    assert comparable(pool_and_local["verdict_pool"]) == comparable(pool_and_local["verdict_local"])

    store = pool_and_local["store"]
    records = outcomes(store)
    assert len([r for r in records if "audits" not in r and "recomputed" not in r]) == 4
    assert len([r for r in records if "recomputed" in r]) == len(checks)
    assert len(records) == len(runs) and {r["worker"] for r in records} == {"w1", "w2"}
    assert all(a["clean"] for r in records for a in r.get("audits", []))
    # each group in its worker's own directory
    assert len({r["cwd"] for r in records}) == len(records)
    # w1's groups started in its standby processes, w2's as Prefect starts them.
    handed = cluster.processes.log("w1", chars=None).count("handed to standby process")
    assert handed == sum(r["worker"] == "w1" for r in records)
    assert "handed to standby" not in cluster.processes.log("w2", chars=None)
    assert "starting cold" not in cluster.processes.log("w1", chars=None)  # all warm
    executed = [h for r in records for h in r["executed"]]
    assert len(executed) == len(set(executed))  # no run executed twice
    assert set(executed) == run_hashes(store)  # and every stored run executed once


def _group_processes(worker: subprocess.Popen) -> list[int]:
    """The group worker subprocesses (``python -m flows.worker``) below a Prefect worker."""
    found = []
    for pid in descendants(worker.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"flows.worker" in argv:
            found.append(pid)
    return found


def test_interrupting_the_parent_cancels_a_running_group_and_kills_its_processes(
        cluster: Cluster, pool_and_local: dict) -> None:
    """Ctrl-C on `validate` while w1 (the standby worker) runs a group: the parent exits 130,
    the group run ends Cancelled, its processes are gone, and w1 keeps serving."""
    since = cluster.now()
    proc = cluster.validate(MICRO_CI, cluster.base / "out-cancel", cluster.base / "store-cancel",
                            "--executor", "pool", "--work-pool", POOL)
    w1 = cluster.workers["w1"]
    try:
        def w1_training():
            for run in cluster.group_runs(since):
                if (run["state"]["type"] == "RUNNING"
                        and run["labels"].get("prefect.worker.name") == "w1"
                        and _group_processes(w1)):
                    return run
            return None

        victim = wait_for(w1_training, 300, "worker w1 training a group", 0.3)
        proc.send_signal(signal.SIGINT)
        code, _, stderr = finish(proc, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, stderr[-3000:]
    wait_for(lambda: api(cluster.url, f"/flow_runs/{victim['id']}")["state"]["type"]
             == "CANCELLED", 60, "the interrupted group run Cancelled")
    wait_for(lambda: not _group_processes(w1), 30, "w1's group processes gone")
    assert w1.poll() is None  # the worker itself lives on, with a standby for the next group
    assert not list((cluster.base / "out-cancel").glob("verdict.json"))


def test_a_killed_worker_s_group_is_rerun_and_the_verdict_is_the_same(
        cluster: Cluster, pool_and_local: dict) -> None:
    from transfer.store import RunStore

    store = cluster.base / "store-kill"
    shutil.copytree(pool_and_local["store"], store, ignore=shutil.ignore_patterns(".groups"))
    last_look = run_hashes(store, LAST_LOOK_SEED)
    for record in RunStore(store).records():
        if record.spec.seed == LAST_LOOK_SEED:
            shutil.rmtree(record.path)
    since = cluster.now()
    proc = cluster.validate(MICRO_CI, cluster.base / "out-kill", store,
                            "--executor", "pool", "--work-pool", POOL)
    try:
        def w1_mid_group():
            for run in cluster.group_runs(since):
                group = run["parameters"]["group"]
                if (run["state"]["type"] == "RUNNING" and group["seeds"] == [LAST_LOOK_SEED]
                        and run["labels"].get("prefect.worker.name") == "w1"
                        and any(r.spec.rung == group["rung"]
                                for r in RunStore(store).records()
                                if r.spec.seed == LAST_LOOK_SEED)):
                    return run
            return None

        victim = wait_for(w1_mid_group, 400, "worker w1 in the middle of a last-look group", 0.3)
        Processes.kill_tree(cluster.workers["w1"])
        victim_rung = victim["parameters"]["group"]["rung"]
        # What the killed attempt had published (the other group is still running).
        published_before_kill = {r.spec.run_hash() for r in RunStore(store).records()
                                 if r.spec.seed == LAST_LOOK_SEED and r.spec.rung == victim_rung}
        code, _, stderr = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, stderr[-3000:]
    assert "running it again" in stderr, stderr[-3000:]

    rerun = api(cluster.url, f"/flow_runs/{victim['id']}")
    assert rerun["state"]["type"] == "COMPLETED" and rerun["run_count"] == 2
    assert rerun["labels"]["prefect.worker.name"] == "w2"
    verdict = json.loads((cluster.base / "out-kill" / "verdict.json").read_text())
    assert comparable(verdict) == comparable(pool_and_local["verdict_pool"])
    # The copied runs were reused: a secret cell of them was recomputed on a worker of the
    # pool (into a throw-away store) and compared with the stored copies (flows.reuse_check).
    checked = json.loads((cluster.base / "out-kill" / "provenance.json").read_text())
    assert checked["reuse_check"]["runs_compared"] >= 4
    assert checked["reuse_check"]["largest_difference"] == 0.0

    records = outcomes(store)
    executed = [h for r in records for h in r["executed"]]
    assert len(executed) == len(set(executed))
    assert not set(executed) & published_before_kill  # finished runs were not redone
    assert set(executed) | published_before_kill == last_look == run_hashes(store, LAST_LOOK_SEED)


def test_bad_pools_and_stores_are_one_line_exit_2_and_write_nothing(
        cluster: Cluster, tmp_path: Path) -> None:
    env = cluster.env
    prefect(["work-pool", "create", "w2s-idle", "--type", "process"], env)
    prefect(["work-pool", "create", "w2s-readonly", "--type", "process"], env)
    readonly = tmp_path / "store-readonly"
    readonly.mkdir()
    # A worker whose mount of the store is read-only (its own mount namespace).
    machine = tmp_path / "machine-ro"
    machine.mkdir()
    mount = (f"mount --bind {readonly} {readonly} && mount -o remount,bind,ro {readonly} && "
             f"exec {' '.join(PREFECT)} worker start --pool w2s-readonly --name ro --limit 1")
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a worker with a read-only mount")
    worker = cluster.processes.start("w-ro", ["unshare", "-m", "--propagation", "private",
                                              "sh", "-c", mount], env, cwd=machine)
    idle_plan = tmp_path / "micro-timeout.yaml"
    idle_plan.write_text(MICRO_CI.read_text().replace(
        "precision: fp32}", "precision: fp32, start_timeout_s: 5}"))
    since = cluster.now()
    cases = {
        "unknown": cluster.validate(MICRO_CI, tmp_path / "out-unknown", tmp_path / "s-unknown",
                                    "--executor", "pool", "--work-pool", "no-such-pool"),
        "idle": cluster.validate(idle_plan, tmp_path / "out-idle", tmp_path / "s-idle",
                                 "--executor", "pool", "--work-pool", "w2s-idle"),
        "readonly": cluster.validate(MICRO_CI, tmp_path / "out-ro", readonly,
                                     "--executor", "pool", "--work-pool", "w2s-readonly"),
    }
    try:
        results = {name: finish(proc, 300) for name, proc in cases.items()}
    finally:
        Processes.kill_tree(worker)
    expected = {"unknown": "no work pool 'no-such-pool'",
                "idle": "no worker of work pool 'w2s-idle' started group run",
                "readonly": "worker ro on"}
    for name, (code, _, stderr) in results.items():
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (name, stderr[-3000:])
        assert lines[0].startswith("error: ") and expected[name] in lines[0], (name, lines)
        out = tmp_path / {"unknown": "out-unknown", "idle": "out-idle", "readonly": "out-ro"}[name]
        assert not (out / "verdict.json").exists() and not (out / "report.html").exists()
    assert "micro-timeout.yaml:" in results["idle"][2]  # the plan's file and line
    assert "Read-only file system" in results["readonly"][2]
    assert not (tmp_path / "s-unknown").exists() and not (tmp_path / "s-idle").exists()
    assert list(readonly.iterdir()) == []
    idle_runs = [r for r in cluster.group_runs(since) if r["work_pool_name"] == "w2s-idle"]
    assert idle_runs and all(r["state"]["type"] == "CANCELLED" for r in idle_runs)
