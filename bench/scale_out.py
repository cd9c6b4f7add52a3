"""Scale-out of the pool executor: one worker vs two, and its overhead per group vs local.

Usage: ``python bench/scale_out.py [--worker w2s [prefect]] [--rounds N] [--datasets N]
[--seeds N] [--audit campaign|off] [--keep DIR] [--json FILE]`` (``make`` environment:
OMP_NUM_THREADS=1, offline, W2S_CACHE_DIR shared).

A real Prefect server on 127.0.0.1 (free port, PREFECT_HOME in a temporary directory), process
work pools, and workers started with ``--limit 1`` (one group at a time each, polling every
second: ``PREFECT_WORKER_QUERY_SECONDS=1``): ``w2s-transfer worker`` (``--worker w2s``, the
default: each group's flow-run process started ahead, ``flows/standby_worker.py``) and/or
Prefect's own ``prefect worker start`` (``--worker prefect``). The plan: the micro ladder's two
rungs on ``--datasets`` synthetic datasets (default 2; the built-in task drawn with data seeds
1, 2, ..., written as JSONL directories), one method, ``--seeds`` seeds (default 2) in one look:
4 similar groups per look by default, 2 per dataset; each group trains the weak, ceiling,
baseline and method arms of its seeds, so ``--seeds`` sets how long a group trains against the
campaign's fixed part (start, checks, look, verdict, report), which no worker shortens.
With the plan's audit on (``--audit campaign``, the default, as every validation runs), each
validation also runs 1 or 2 audit groups after the look, as its own secret draw puts the
method's and the baseline's audited cells in one (rung, dataset) or two; the JSON records how
many each path ran. The caches (pretrained bodies, features) are warmed first by one group per
(rung, dataset) with another seed, so every timed path trains the same arms from the same
cached bodies. Timed paths, each
`w2s-transfer validate` into a fresh run store, in every round:

1. ``local``: the local executor, one group at a time (``max_parallel_runs: 1``), with cold
   workers (``W2S_WARM_START=off``) as the pool's group runs have;
2. per worker kind, on a pool of its own: ``pool-1``, the pool executor with one worker, then
   ``pool-2`` with two. The pool's group deployment is created before either (as the first
   validation on a new pool would; a one-time cost per pool, reported as
   ``create_deployment_s``), so both run against an existing deployment, as every later
   campaign on a pool does. A started worker is timed once it has settled (its process tree
   used less than 0.05 s of CPU in a second: its start-up and its first flow-run process's
   imports are done), as a pool's long-lived workers are when a campaign arrives; before, the
   second worker's start-up overlapped pool-2.

Prints one JSON line (also to ``--json``): seconds per path and round, the pool executor's
overhead per group ((pool-1 - local) / groups; goal < 2 s), the medians over rounds, the load
average, and last the line ``scale-out ratio X`` (pool-2 / pool-1, median, first worker kind;
goal <= 0.65).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "flows"))  # the server harness the tests use
os.environ.setdefault("OMP_NUM_THREADS", "1")

from prefect_server import (  # noqa: E402
    PREFECT,
    Processes,
    api,
    cpu_seconds,
    descendants,
    free_port,
    prefect,
    server_env,
    start_server,
    wait_for,
)

POOL = "w2s-bench"
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]
GOAL_OVERHEAD_S, GOAL_RATIO = 2.0, 0.65
RUNGS = ("m0", "m1")
WORKERS = {"w2s": [*CLI, "worker"], "prefect": [*PREFECT, "worker", "start"]}


def write_datasets(base: Path, count: int) -> list[Path]:
    """The synthetic task with data seeds 1..count as generic JSONL directories."""
    from transfer.data.synthetic import synthetic_task

    paths = []
    for seed in range(1, count + 1):
        task = synthetic_task(seed=seed)
        directory = base / f"synthetic-{seed}"
        directory.mkdir(parents=True)
        for name, split in task.splits.items():
            with (directory / f"{name}.jsonl").open("w") as f:
                for ex in split:
                    f.write(json.dumps({"id": ex.id, "text": ex.text, "label": ex.label}) + "\n")
        paths.append(directory)
    return paths


def write_plan(base: Path, datasets: list[Path], audit: str, seeds: int = 2) -> Path:
    plan = base / "scale-out.yaml"
    plan.write_text(
        "name: scale-out\n"
        "methods:\n  - name: aux_conf\n    params: {}\n"
        "baseline: vanilla\nladder: micro\nrungs: all\n"
        f"datasets: [{', '.join(str(d) for d in datasets)}]\n"
        f"seeds: {{initial: {seeds}, batch: 1, max: {seeds}}}\n"
        "sesoi: 0.01\nalpha: 0.05\ncorrection: holm\n"
        "compute: {ds_config: zero0, processes: 1, max_parallel_runs: 1, precision: fp32}\n"
        f"audit: {{mode: {audit}}}\n")
    return plan


def warm_caches(base: Path, datasets: list[Path]) -> float:
    from flows.execute import run_group_subprocess
    from flows.worker import ArmGroup

    start = time.perf_counter()
    for data in datasets:
        for rung in RUNGS:
            group = ArmGroup(ladder="micro", rung=rung, data=str(data), store=str(base / "warm"),
                             seeds=[99], methods=[], engine={"ds_config": "zero0",
                                                             "precision": "fp32"}, result="")
            run_group_subprocess(group, base / "warm-work")
    return time.perf_counter() - start


def validate(plan: Path, base: Path, name: str, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([*CLI, "validate", str(plan), "--out", str(base / f"out-{name}"),
                           "--store", str(base / f"store-{name}"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def audit_groups(base: Path, name: str) -> int:
    """How many audit groups the validation ``name`` ran: one per (rung, dataset) holding an
    audited cell (``flows.campaign.Campaign.audit_groups``), drawn at random by each."""
    verdict = json.loads((base / f"out-{name}" / "verdict.json").read_text())
    audits = verdict.get("audits") or {}  # results name -> its audited cells
    return len({(a["rung"], a["dataset"]) for cells in audits.values() for a in cells})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="keep the working directory here")
    parser.add_argument("--json", type=Path, help="also write the JSON line here")
    parser.add_argument("--query-seconds", type=float, default=1.0,
                        help="the workers' PREFECT_WORKER_QUERY_SECONDS (default 1)")
    parser.add_argument("--worker", nargs="+", choices=sorted(WORKERS), default=["w2s"],
                        help="which worker(s) serve the pool (default w2s: w2s-transfer "
                             "worker); several are measured in turn, each round")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat local and every worker's pool-1/pool-2 this many times, "
                             "interleaved (the machine's load drifts; default 1)")
    parser.add_argument("--datasets", type=int, default=2,
                        help="synthetic datasets in the plan (default 2): groups per look = "
                             f"{len(RUNGS)} rungs x datasets, plus its audit groups")
    parser.add_argument("--seeds", type=int, default=2,
                        help="seeds per group, all in the one look (default 2): a group's "
                             "training time grows with it")
    parser.add_argument("--audit", choices=("campaign", "off"), default="campaign",
                        help="the plan's audit.mode (default campaign, as validations run: "
                             "1-2 audit groups more, drawn at random by each validation)")
    args = parser.parse_args()
    if args.datasets < 2:
        parser.error("--datasets: expected at least 2 (4 groups per look)")
    if args.seeds < 2:
        parser.error("--seeds: expected at least 2 (a paired analysis needs two)")
    groups = len(RUNGS) * args.datasets
    base = Path(args.keep or tempfile.mkdtemp(prefix="w2s-scale-out-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    env = server_env(base / "prefect-home", free_port(),
                     PREFECT_WORKER_QUERY_SECONDS=str(args.query_seconds))
    processes = Processes(base)
    rounds: list[dict] = []
    try:
        datasets = write_datasets(base / "data", args.datasets)
        plan = write_plan(base, datasets, args.audit, args.seeds)
        warm_s = warm_caches(base, datasets)
        url = start_server(processes, env)
        for round_ in range(args.rounds):
            # Cold workers, as the pool's group runs start them: the overhead compares the
            # orchestration, not the local executor's warm start (flows/warm_start.py).
            local_s = validate(plan, base, f"local-{round_}", {**env, "W2S_WARM_START": "off"},
                               "--executor", "local")
            local_audits = audit_groups(base, f"local-{round_}")
            for kind in args.worker:
                pool1_s, pool2_s, deployment_s, pool = pool_paths(plan, base, env, url,
                                                                   processes, kind, round_)
                audits = [local_audits, audit_groups(base, f"{pool}-1"),
                          audit_groups(base, f"{pool}-2")]
                rounds.append({"round": round_, "worker": kind, "local_s": round(local_s, 1),
                               "create_deployment_s": round(deployment_s, 2),
                               "pool_1_worker_s": round(pool1_s, 1),
                               "pool_2_workers_s": round(pool2_s, 1),
                               "audit_groups_local_pool1_pool2": audits,
                               # per group pool-1 ran; the audit draw may differ from local's
                               "overhead_per_group_s": round((pool1_s - local_s)
                                                             / (groups + audits[1]), 2),
                               "scale_out_ratio": round(pool2_s / pool1_s, 3)})
    finally:
        processes.stop()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    summary = {kind: {key: round(statistics.median(r[key] for r in rounds
                                                   if r["worker"] == kind), 3)
                      for key in ("overhead_per_group_s", "scale_out_ratio")}
               for kind in args.worker}
    result = {
        "plan": f"micro ladder x {args.datasets} synthetic datasets, 1 method, {args.seeds} seeds: "
                f"{groups} groups, 1 look, audit {args.audit}",
        "groups": groups, "warm_caches_s": round(warm_s, 1), "rounds": rounds,
        "median": summary, "goal_overhead_per_group_s": GOAL_OVERHEAD_S,
        "goal_ratio": GOAL_RATIO, "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    print(f"scale-out ratio {summary[args.worker[0]]['scale_out_ratio']:.3f}")


def pool_paths(plan: Path, base: Path, env: dict[str, str], url: str, processes: Processes,
               kind: str, round_: int) -> tuple[float, float, float, str]:
    """Seconds of the pool executor with one worker, then two, of one kind, on a pool of their
    own (so that no worker of an earlier path is counted or polls)."""
    pool = f"{POOL}-{kind}-{round_}"
    prefect(["work-pool", "create", pool, "--type", "process"], env)
    workers = []

    def start_worker(name: str) -> None:
        machine = base / f"machine-{pool}-{name}"
        machine.mkdir()
        workers.append(processes.start(
            f"{pool}-{name}", [*WORKERS[kind], "--pool", pool, "--name", name, "--limit", "1"],
            env, cwd=machine))

    def online() -> int:
        return len([w for w in api(url, f"/work_pools/{pool}/workers/filter", {})
                    if w["status"] == "ONLINE"])

    try:
        deployment_s = create_deployment(pool, env)
        start_worker("w1")
        wait_for(lambda: online() == 1, 120, "one worker")
        wait_settled(workers)
        pool1_s = validate(plan, base, f"{pool}-1", env, "--executor", "pool",
                           "--work-pool", pool)
        start_worker("w2")
        wait_for(lambda: online() == 2, 120, "two workers")
        wait_settled(workers)
        pool2_s = validate(plan, base, f"{pool}-2", env, "--executor", "pool",
                           "--work-pool", pool)
    finally:
        for worker in workers:
            Processes.kill_tree(worker)
    return pool1_s, pool2_s, deployment_s, pool


def wait_settled(workers: list[subprocess.Popen], quiet_s: float = 0.05,
                 timeout_s: float = 60.0) -> None:
    """Wait until the workers' process trees used less than ``quiet_s`` of CPU in one second."""
    def tree_cpu() -> dict[int, float]:
        seconds = {pid: cpu_seconds(pid)
                   for pid in [p for w in workers for p in (w.pid, *descendants(w.pid))]}
        return {pid: cpu for pid, cpu in seconds.items() if cpu == cpu}  # NaN: gone meanwhile

    deadline = time.monotonic() + timeout_s
    before = tree_cpu()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = tree_cpu()
        # per process: one that exited in between is not counted as negative time, and one
        # that started counts whole
        if sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items()) < quiet_s:
            return
        before = now
    raise SystemExit(f"the workers did not settle within {timeout_s:.0f} s")


def create_deployment(pool: str, env: dict[str, str]) -> float:
    """Create the pool's group deployment as the first validation on a pool does, and return
    the seconds it took: a one-time cost per pool (not per campaign), kept out of the timed
    paths so that pool-1 and pool-2 both run against an existing deployment."""
    code = ("import time, types; from flows.pool import ensure_deployment; "
            "t = time.perf_counter(); "
            f"ensure_deployment(types.SimpleNamespace(deployment=None, work_pool={pool!r})); "
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"creating the deployment of {pool}: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
