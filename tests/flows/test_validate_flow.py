"""Issue 5 acceptance: the `validate` flow shares the weak and ceiling arms between methods and
reuses every complete run of the store.

With M student methods (the baseline and the candidates) the flow executes
``rungs x datasets x seeds x (2 + M)`` arms: weak and ceiling once per (rung, dataset, seed),
whatever the number of methods. The sequential design may stop giving seeds to a decided method,
so the expected count is built look by look from verdict.json's record of the looks.

The pretrained micro models come from the project's cache ($W2S_CACHE_DIR, as configured); the
run store is a fresh temporary directory, passed explicitly.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from stats.verdict_model import Verdict

REPO = Path(__file__).resolve().parents[2]
MICRO_CI = REPO / "flows" / "plans" / "micro-ci.yaml"


def two_method_plan(directory: Path) -> Path:
    """micro-ci with two candidate methods (so three student arms per seed with the baseline)."""
    plan = yaml.safe_load(MICRO_CI.read_text())
    plan["name"] = "micro-two-methods"
    plan["methods"] = [{"name": "aux_conf", "params": {}}, {"name": "confident", "params": {}}]
    path = directory / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def executed_per_result_file(out: Path) -> list[str]:
    """Arm labels every worker reported as executed (not reused), over all RESULT files."""
    labels: list[str] = []
    for result in sorted((out / "work").glob("result-*.json")):
        labels.extend(json.loads(result.read_text())["executed_arms"])
    return labels


def expected_arm_counts(verdict: Verdict, plan: dict, n_rungs: int) -> Counter:
    """Arms per label the flow must have executed, replaying the looks recorded in verdict.json.

    At each look every (rung, dataset) runs weak, ceiling and the baseline for the look's seeds,
    and each method still undecided before that look runs its student arm for them.
    """
    cells = n_rungs * len(plan["datasets"])
    undecided = [m["name"] for m in plan["methods"]]
    counts: Counter = Counter()
    for look in verdict.sequential.looks:
        seeds = len(look.seeds)
        for label in ["weak", "ceiling", plan["baseline"], *undecided]:
            counts[label] += cells * seeds
        undecided = [m for m in undecided if not look.decisions[m]["decided"]]
    return counts


def test_weak_and_ceiling_are_shared_and_a_second_run_executes_nothing(prefect_harness,
                                                                      tmp_path: Path) -> None:
    from flows.validate import validate_flow
    from transfer.ladder import load_ladder

    plan_path = two_method_plan(tmp_path)
    plan = yaml.safe_load(plan_path.read_text())
    n_rungs = len(load_ladder(plan["ladder"]).rungs)
    store, first, second = tmp_path / "store", tmp_path / "first", tmp_path / "second"

    verdict = validate_flow(str(plan_path), str(first), str(store))

    expected = expected_arm_counts(verdict, plan, n_rungs)
    seeds_run = sum(len(look.seeds) for look in verdict.sequential.looks)
    # Every label of one seed is there once per (rung, dataset): weak/ceiling are not per method.
    assert expected["weak"] == expected["ceiling"] == n_rungs * len(plan["datasets"]) * seeds_run
    executed = executed_per_result_file(first)
    assert Counter(executed) == expected
    provenance = json.loads((first / "provenance.json").read_text())
    assert provenance["arms_executed"] == sum(expected.values())
    assert len(list(store.glob("*/*/COMPLETE"))) == sum(expected.values())
    # When no method stops early the total is exactly rungs x datasets x seeds x (2 + M).
    if all(len(used) == seeds_run for used in verdict.sequential.seeds_used.values()):
        students = 1 + len(plan["methods"])
        assert sum(expected.values()) == (n_rungs * len(plan["datasets"]) * seeds_run
                                          * (2 + students))

    again = validate_flow(str(plan_path), str(second), str(store))

    assert executed_per_result_file(second) == []
    assert json.loads((second / "provenance.json").read_text())["arms_executed"] == 0
    # Which runs the label-leak audit reran is drawn anew by each validation: every method
    # and the baseline audited once (audit.cells 1), clean, in both.
    for run in (verdict, again):
        assert sorted(run.audits) == sorted(["vanilla", *[m["name"] for m in plan["methods"]]])
        assert all(len(cells) == 1 and cells[0].clean for cells in run.audits.values())
    # What the reuse check did differs (the second run reused every run and checked a cell).
    assert again.binding.pop("reuse_check")["runs_reused"] > 0
    assert verdict.binding.pop("reuse_check")["runs_reused"] == 0
    assert again.model_copy(update={"audits": None}) == verdict.model_copy(update={"audits": None})


def test_micro_ci_plan_is_the_small_plan_the_brief_asks_for() -> None:
    from flows.plan import load_plan

    plan = load_plan(MICRO_CI)
    assert plan.ladder == "micro" and plan.datasets == ["synthetic"]
    assert len(plan.method_names) == 1
    assert (plan.seeds.initial, plan.seeds.batch, plan.seeds.max) == (2, 1, 3)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_handlers_chain_the_previous_handler_and_kill_workers(signal_name: str, monkeypatch,
                                                              tmp_path: Path) -> None:
    """The flow's handler kills every registered worker group, then runs the handler it
    replaced (Prefect's SIGTERM bridge inside a flow run), and refuses new workers after."""
    import signal

    from flows import execute
    from flows.slots import ShutdownInProgress

    sig = getattr(signal, signal_name)
    calls: list[int] = []
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(execute, "_LIVE", {424242})
    monkeypatch.setattr(execute, "_SHUTTING_DOWN", type(execute._SHUTTING_DOWN)())
    monkeypatch.setattr(execute.os, "killpg", lambda pgid, s: killed.append((pgid, s)))
    previous = signal.signal(sig, lambda signum, frame: calls.append(signum))
    try:
        assert execute.install_signal_handlers()
        assert execute.install_signal_handlers()  # idempotent: no handler chained to itself
        signal.getsignal(sig)(sig, None)
    finally:
        signal.signal(sig, previous)
    assert calls == [sig]
    assert killed == [(424242, signal.SIGKILL)]
    assert execute.shutting_down()
    # No worker starts once the flow shuts down, and the command ends as interrupted (exit
    # 130), not as a failed group (exit 1), as in the pool executor.
    with pytest.raises(ShutdownInProgress, match="shutting down"):
        execute.run_group_subprocess(
            execute.ArmGroup(ladder="micro", rung="m0", store="s", seeds=[0], methods=[],
                             result=""), tmp_path)


def test_a_worker_killed_by_the_shutdown_is_an_interruption_not_a_failure(
        monkeypatch, tmp_path: Path) -> None:
    """A signal whose chained handler does not raise (an event loop's SIGINT handler only sets
    a flag) leaves the group waiting on its killed worker: its -9 must end the command as
    interrupted (exit 130), not as a failed group (exit 1); seen once in test_concurrency."""
    import sys
    import threading
    import time

    from flows import execute
    from flows.slots import ShutdownInProgress

    monkeypatch.setattr(execute, "_LIVE", set())
    monkeypatch.setattr(execute, "_SHUTTING_DOWN", type(execute._SHUTTING_DOWN)())

    def shut_down_once_started() -> None:
        deadline = time.monotonic() + 60
        while not execute._LIVE and time.monotonic() < deadline:
            time.sleep(0.05)
        execute.kill_children()  # what the handler does before the chained one

    threading.Thread(target=shut_down_once_started, daemon=True).start()
    group = execute.ArmGroup(ladder="micro", rung="m0", store="s", seeds=[0], methods=[],
                             result="")
    with pytest.raises(ShutdownInProgress, match="worker stopped"):
        execute.run_group_subprocess(
            group, tmp_path, command=lambda _: [sys.executable, "-c", "import time; "
                                                "time.sleep(60)"])


def test_a_signal_while_the_main_thread_starts_a_worker_does_not_hang() -> None:
    """The handler takes the lock the main thread holds while it starts a worker (a group run's
    task runs on the main thread): with a plain Lock the process hung until SIGKILL."""
    import subprocess
    import sys

    code = ("import os, signal; from flows import execute; execute.install_signal_handlers(); "
            "signal.signal(signal.SIGTERM, execute._KillChildrenThenChain(signal.SIG_IGN)); "
            "execute._LOCK.acquire(); os.kill(os.getpid(), signal.SIGTERM); "
            "print('handled', execute.shutting_down())")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "handled True"), done.stderr[-1000:]


def test_a_plan_with_a_ladder_file_beside_it_validates(prefect_harness, tmp_path: Path,
                                                       monkeypatch) -> None:
    """helper-45: the groups named the ladder by its resolved path, which the outcome check
    compared with the runs' ladder name, so every plan naming a ladder file failed with "run
    ... is of mine rung m0, not of this group" (and did before, unless the file's `name:` was
    the plan's ladder string). Run from another directory: the file is the plan's neighbour."""
    from flows.validate import validate_flow
    from transfer.ladder import LADDER_DIR

    folder = tmp_path / "plans"
    folder.mkdir()
    ladder = yaml.safe_load((LADDER_DIR / "micro.yaml").read_text())
    ladder["name"] = "mine"
    (folder / "my-ladder.yaml").write_text(yaml.safe_dump(ladder, sort_keys=False))
    plan = yaml.safe_load(MICRO_CI.read_text())
    plan.update(ladder="my-ladder.yaml", rungs=["m0"], seeds={"initial": 2, "batch": 1, "max": 2})
    (folder / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    verdict = validate_flow(str(folder / "plan.yaml"), str(tmp_path / "out"),
                            str(tmp_path / "store"))
    assert set(verdict.methods) == {"aux_conf"} and verdict.production_rung == "m0"
