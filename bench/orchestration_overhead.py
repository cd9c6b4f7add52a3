"""Wall time of a plan under Prefect (the `validate` flow) over the same campaign run directly.

Usage: ``python bench/orchestration_overhead.py [--plan flows/plans/demo.yaml] [--repeats N]
[--json FILE] [--keep DIR]``.

Both paths run the same :class:`flows.campaign.Campaign` (same groups, same worker
subprocesses, same sequential looks, same outputs): the Prefect path through ``validate_flow``
(tasks with retries, a thread-pool task runner, logs, progress and report artifacts, all talking
to a Prefect server), the direct path with a plain loop that calls
``flows.execute.run_group_subprocess``. Each path gets a fresh temporary run store, so both
compute every arm; the pretrained-model and feature caches ($W2S_CACHE_DIR) are shared and
warmed first by one real group (weak, ceiling and baseline arms of seed 0 on every rung) in a
throw-away store. The one-time server start (``prefect server start`` on 127.0.0.1, PREFECT_HOME
in a temporary directory, analytics off) and the import of prefect are timed separately and
excluded from the ratio. With ``--repeats`` > 1 the order of the two paths alternates.

Prints a table and one JSON line (also written to ``--json``): seconds per path, the ratio
prefect/direct (goal <= 1.10), arms executed per path, server start, and the load average.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "flows"))  # the server harness the tests use
os.environ.setdefault("OMP_NUM_THREADS", "1")

from prefect_server import cpu_seconds, free_port  # noqa: E402

DEFAULT_PLAN = REPO_ROOT / "flows" / "plans" / "demo.yaml"
GOAL_RATIO = 1.10


def start_server(home: Path, log: Path, timeout_s: float = 180.0) -> tuple[subprocess.Popen, float]:
    """Start ``prefect server start`` and point this process at it (before prefect is imported).

    Returns:
        The server process (its own process group) and the seconds until /api/health answered.
    """
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    from flows.embedded import EMBEDDED_SETTINGS

    # The same settings as the CLI's embedded mode, which is what `make demo` runs.
    os.environ.update({**EMBEDDED_SETTINGS, "PREFECT_HOME": str(home), "PREFECT_API_URL": api})
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], stdout=log.open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if json.loads(response.read()) is True:
                    return server, time.perf_counter() - start
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise SystemExit(f"the Prefect server did not start; see {log}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """Stop a process and everything in its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class CpuMeter:
    """CPU seconds spent during a block: this process (the orchestrating threads), the workers
    it started and reaped, and the Prefect server process."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self._own, self._server = os.times(), cpu_seconds(self.server_pid, reaped_children=True)
        return self

    def __exit__(self, *_: object) -> None:
        own = os.times()
        self.result = {
            "orchestrator_cpu_s": round(own.user + own.system
                                        - self._own.user - self._own.system, 2),
            "workers_cpu_s": round(own.children_user + own.children_system
                                   - self._own.children_user - self._own.children_system, 2),
            "server_cpu_s": round(cpu_seconds(self.server_pid, reaped_children=True)
                                  - self._server, 2)}


def plain_submit(groups, work_dir: Path, processes: int, parallel: int) -> list[dict]:
    """The direct path's ``submit``: the same groups, ``parallel`` at a time, no Prefect."""
    from flows.execute import run_group_subprocess

    outcomes: list[dict] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        for start in range(0, len(groups), parallel):
            batch = groups[start:start + parallel]
            outcomes.extend(pool.map(lambda g: run_group_subprocess(g, work_dir, processes),
                                     batch))
    return outcomes


def warm_caches(plan_path: Path, scratch: Path) -> float:
    """Run seed 0's weak, ceiling and baseline arms of every rung into a throw-away store, so
    pretrained bodies and features are cached before either path is timed. Returns seconds."""
    from flows.campaign import Campaign
    from flows.execute import run_group_subprocess

    campaign = Campaign.prepare(plan_path, scratch / "out", scratch / "store")
    start = time.perf_counter()
    for group in campaign.groups([0], []):
        run_group_subprocess(group, scratch / "work", campaign.plan.compute.processes)
    return time.perf_counter() - start


def run_direct(plan_path: Path, root: Path) -> dict:
    from flows.campaign import Campaign
    from flows.execute import install_signal_handlers

    install_signal_handlers()
    start = time.perf_counter()
    campaign = Campaign.prepare(plan_path, root / "out", root / "store")
    verdict = campaign.run(submit=plain_submit)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "arms_executed": len(campaign.executed_arms),
            "verdicts": {m: d.verdict for m, d in verdict.methods.items()},
            "timings": dict(campaign.timings)}


def run_prefect(plan_path: Path, root: Path) -> dict:
    from flows.validate import validate_flow

    start = time.perf_counter()
    verdict = validate_flow(str(plan_path), str(root / "out"), str(root / "store"))
    seconds = time.perf_counter() - start
    provenance = json.loads((root / "out" / "provenance.json").read_text())
    timings = json.loads((root / "out" / "timings.json").read_text())
    return {"seconds": seconds, "arms_executed": provenance["arms_executed"],
            "verdicts": {m: d.verdict for m, d in verdict.methods.items()},
            "timings": timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="plan YAML")
    parser.add_argument("--repeats", type=int, default=1, help="runs per path (order alternates)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", type=Path, help="keep stores and outputs here (default: temp)")
    args = parser.parse_args(argv)
    if not args.plan.is_file():
        parser.error(f"--plan {args.plan}: no such file")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    root = args.keep or Path(tempfile.mkdtemp(prefix="w2s-orchestration-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    server, server_start_s = start_server(root / "prefect-home", root / "server.log")
    try:
        start = time.perf_counter()
        import flows.validate  # noqa: F401 - imports prefect; timed apart from both paths
        import_s = time.perf_counter() - start
        warm_s = warm_caches(args.plan, root / "warm")
        runs: dict[str, list[dict]] = {"direct": [], "prefect": []}
        for repeat in range(args.repeats):
            order = ["direct", "prefect"] if repeat % 2 == 0 else ["prefect", "direct"]
            for path in order:
                target = root / f"{path}-{repeat}"
                with CpuMeter(server.pid) as cpu:
                    run = run_direct(args.plan, target) if path == "direct" else run_prefect(
                        args.plan, target)
                run.update(cpu.result)
                runs[path].append(run)
                print(f"{path:8s} repeat {repeat}: {run['seconds']:.1f} s, "
                      f"{run['arms_executed']} arms, {run['verdicts']}, cpu s: orchestrator "
                      f"{cpu.result['orchestrator_cpu_s']}, workers {cpu.result['workers_cpu_s']}, "
                      f"server {cpu.result['server_cpu_s']}", flush=True)
    finally:
        stop(server)
    load_after = os.getloadavg()

    direct = statistics.median(r["seconds"] for r in runs["direct"])
    prefect = statistics.median(r["seconds"] for r in runs["prefect"])
    same_work = len({r["arms_executed"] for r in runs["direct"] + runs["prefect"]}) == 1
    result = {
        "plan": str(args.plan), "repeats": args.repeats, "direct_s": round(direct, 2),
        "prefect_s": round(prefect, 2), "ratio": round(prefect / direct, 4),
        "goal_ratio": GOAL_RATIO, "meets_goal": prefect / direct <= GOAL_RATIO,
        "same_work": same_work, "server_start_s": round(server_start_s, 2),
        "prefect_import_s": round(import_s, 2), "cache_warm_s": round(warm_s, 2),
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after], "runs": runs}
    print(f"direct {direct:.1f} s, prefect {prefect:.1f} s, ratio {prefect / direct:.3f} "
          f"(goal <= {GOAL_RATIO}); server start {server_start_s:.1f} s (excluded); "
          f"same work: {same_work}")
    print(json.dumps(result))
    if args.json:
        from w2s_common.atomic import atomic_write_json

        atomic_write_json(args.json, result)
    return 0 if same_work else 1


if __name__ == "__main__":
    raise SystemExit(main())
