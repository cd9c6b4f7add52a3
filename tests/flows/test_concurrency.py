"""Issue 9, item 3: concurrency that cannot hang or double-count.

- an ``--out`` in use by a live validation is refused with one line (exit 2);
- device slots (``W2S_DEVICE_SLOTS``) are enforced across validations, and a slot whose holder
  was SIGKILLed is free again: the next validation proceeds (the ``gpu`` tag limit this
  replaces kept the slot forever and every later run hung);
- Ctrl-C ends a validation promptly while it waits for a slot and while its worker waits for a
  run claimed by another process (exit 130, one line, no worker left);
- stress: 4 validations of overlapping plans started together on one store compute every run
  exactly once and agree on every shared method's verdict.

The CLIs talk to the session's Prefect test server (``prefect_harness``); the embedded server's
own start is tested in test_embedded.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_resume import CLI, MICRO_CI, REPO, harness_env, pids_with, wait_until

# Holds the claim of the weak run (micro, m0, seed 0) of STORE until killed, like another
# campaign computing it.
CLAIM_HOLDER = """
import sys, time
from flows.context import arm_context
from transfer.arms import arm_spec
ctx = arm_context("micro", None, sys.argv[1])
spec = arm_spec(ctx, ctx.ladder.rung("m0"), "weak", 0)
with ctx.store.claim(spec) as done:
    assert done is None
    print("held", flush=True)
    time.sleep(3600)
"""


def micro_plan(directory: Path, name: str, methods: list[str], rungs=("m0",),
               seeds=(2, 1, 2)) -> Path:
    plan = yaml.safe_load(MICRO_CI.read_text())
    plan.update(name=name, rungs=list(rungs), methods=[{"name": m, "params": {}} for m in methods],
                seeds=dict(zip(("initial", "batch", "max"), seeds)))
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


class Cli:
    """A ``w2s-transfer`` subprocess whose stdout/stderr go to files (no pipe can fill up)."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path, name: str) -> None:
        self.out_file, self.err_file = logs / f"{name}.out", logs / f"{name}.err"
        with open(self.out_file, "wb") as out, open(self.err_file, "wb") as err:
            self.proc = subprocess.Popen(CLI + args, cwd=REPO, env=env, stdout=out, stderr=err)

    @property
    def stderr(self) -> str:
        return self.err_file.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def group_logs(out: Path) -> list[Path]:
    return list((out / "work").glob("group-*.log")) if (out / "work").exists() else []


@pytest.mark.timeout(900)
def test_out_dir_slots_sigkill_and_ctrl_c(prefect_harness, tmp_path: Path) -> None:
    env = {**harness_env(), "W2S_DEVICE_SLOTS": "1", "W2S_LEASE_TTL_S": "5"}
    plan = micro_plan(tmp_path, "slots", ["aux_conf"])
    store = tmp_path / "store"
    out_a, out_b, out_c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    holder = subprocess.Popen([sys.executable, "-c", CLAIM_HOLDER, str(store)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, text=True)
    running: list[subprocess.Popen] = [holder]
    try:
        assert holder.stdout.readline().strip() == "held"

        # A takes the only slot; its worker then waits for the run the holder claimed.
        a = Cli(["validate", str(plan), "--out", str(out_a), "--store", str(store)], env,
                tmp_path, "a")
        running.append(a.proc)
        wait_until(lambda: group_logs(out_a), 300, "A's worker to start")

        # The same --out while A lives: refused at once, one line, exit 2.
        same = subprocess.run(CLI + ["validate", str(plan), "--out", str(out_a), "--store",
                                     str(store)], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
        assert same.returncode == 2, same.stderr
        assert same.stderr.strip().splitlines() == [
            f"error: {out_a}: in use by a running validation (pid {a.proc.pid} on "
            f"{os.uname().nodename}); wait for it to end or choose another --out"]

        # B waits for the slot A holds, says so, and starts nothing.
        b = Cli(["validate", str(plan), "--out", str(out_b), "--store", str(store)], env,
                tmp_path, "b")
        running.append(b.proc)
        wait_until(lambda: "waiting for 1 of 1 device slot(s)" in b.stderr, 300,
                   "B to wait for the slot")
        assert f"slot 0: pid {a.proc.pid}" in b.stderr
        assert not group_logs(out_b)

        # Ctrl-C while waiting for a slot: prompt, one line, exit 130, out dir released.
        b.proc.send_signal(signal.SIGINT)
        assert b.wait(60) == 130, b.stderr[-3000:]
        assert b.stderr.strip().splitlines()[-1] == "error: interrupted"
        assert "Traceback" not in b.stderr
        assert not (out_b / ".w2s-out.lease").exists()

        # C waits too; then A is SIGKILLed (the OOM killer): its worker follows it, and C
        # gets the slot and starts its group without waiting for any time-out.
        c = Cli(["validate", str(plan), "--out", str(out_c), "--store", str(store)], env,
                tmp_path, "c")
        running.append(c.proc)
        wait_until(lambda: "waiting for 1 of 1 device slot(s)" in c.stderr, 300,
                   "C to wait for the slot")
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        wait_until(lambda: not pids_with(str(out_a / "work")), 30, "A's worker to exit")
        wait_until(lambda: group_logs(out_c), 120, "C to get the slot A held")

        # Ctrl-C while C's worker waits for the claimed run: prompt, no worker left.
        time.sleep(1.0)
        c.proc.send_signal(signal.SIGINT)
        assert c.wait(60) == 130, c.stderr[-3000:]
        assert c.stderr.strip().splitlines()[-1] == "error: interrupted"
        wait_until(lambda: not pids_with(str(out_c / "work")), 30, "C's worker to exit")

        # The claim holder dies too. A new validation on A's --out (its lease died with A)
        # takes the slot, computes the runs and finishes.
        holder.kill()
        holder.wait()
        d = subprocess.run(CLI + ["validate", str(plan), "--out", str(out_a), "--store",
                                  str(store)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600)
        assert d.returncode == 0, d.stderr[-3000:]
        assert "Traceback" not in d.stderr
        assert json.loads((out_a / "verdict.json").read_text())["methods"]["aux_conf"]
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.timeout(900)
def test_four_overlapping_validations_compute_every_run_once(prefect_harness,
                                                            tmp_path: Path) -> None:
    """Acceptance stress test: four plans sharing weak, ceiling and baseline runs (and pairs
    sharing a candidate) start together on one store."""
    env = harness_env()
    plans = {"p1": ["aux_conf"], "p2": ["confident"], "p3": ["aux_conf"], "p4": ["confident"]}
    store = tmp_path / "store"
    clis = {name: Cli(["validate", str(micro_plan(tmp_path, name, methods)), "--out",
                       str(tmp_path / name), "--store", str(store)], env, tmp_path, name)
            for name, methods in plans.items()}
    try:
        codes = {name: cli.wait(840) for name, cli in clis.items()}
    finally:
        for cli in clis.values():
            if cli.proc.poll() is None:
                cli.proc.kill()
    for name, cli in clis.items():
        assert codes[name] == 0, f"{name}: {cli.stderr[-3000:]}"
        assert "Traceback" not in cli.stderr, f"{name}: {cli.stderr[-3000:]}"

    executed: Counter = Counter()
    used: set[str] = set()
    for name in plans:
        for result in (tmp_path / name / "work").glob("result-*.json"):
            outcome = json.loads(result.read_text())
            executed.update(outcome["executed"])
            used.update(outcome["runs"])
    stored = {p.parent.name for p in store.glob("*/*/COMPLETE")}
    assert stored == used
    assert sorted(Counter(executed.values())) == [1], "a run was computed more than once"
    assert set(executed) == stored, "every stored run was computed by one of the four"

    verdicts = {name: json.loads((tmp_path / name / "verdict.json").read_text())
                for name in plans}
    assert verdicts["p1"]["methods"] == verdicts["p3"]["methods"]
    assert verdicts["p2"]["methods"] == verdicts["p4"]["methods"]
