"""The local executor runs a look's groups in a window of ``compute.max_parallel_runs``, the
largest rungs first: a group starts as soon as another ends, not when a whole batch has."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

# How long each stand-in group "trains": r2 (the ladder's largest rung) longest.
SECONDS = {"r0": 0.4, "r1": 0.4, "r2": 2.0}


def test_groups_run_in_a_window_largest_rung_first(prefect_harness, monkeypatch,
                                                   tmp_path: Path) -> None:
    from prefect import flow, task

    import flows.validate as validate
    from flows.worker import ArmGroup

    events: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    @task(name="stand-in-group")
    def stand_in(group: ArmGroup, work_dir: str, processes: int) -> dict:
        with lock:
            events.append(("start", group.rung, time.monotonic()))
        time.sleep(SECONDS[group.rung])
        with lock:
            events.append(("end", group.rung, time.monotonic()))
        return {"rung": group.rung}

    monkeypatch.setattr(validate, "run_group_task", stand_in)
    groups = [ArmGroup(ladder="tiny", rung=rung, store=str(tmp_path), seeds=[1], methods=[],
                       result="") for rung in ("r0", "r1", "r2")]

    @flow(name="window-check")
    def submit_all() -> list[dict]:
        return validate._submit_with_prefect(groups, tmp_path, 1, 2)

    outcomes = submit_all()
    assert [o["rung"] for o in outcomes] == ["r0", "r1", "r2"], "outcomes follow the groups"
    start = {rung: at for kind, rung, at in events if kind == "start"}
    end = {rung: at for kind, rung, at in events if kind == "end"}
    # r2 and r1 start together (largest rungs first), r0 once r1 ends...
    assert start["r2"] <= start["r0"] and start["r1"] <= start["r0"]
    assert start["r0"] >= end["r1"] - 0.05
    # ...while r2 still runs: in batches of two it would have waited for r2.
    assert start["r0"] < end["r2"], events
    assert max(end.values()) - min(start.values()) < SECONDS["r2"] + 1.5


@pytest.mark.parametrize("parallel", [1, 3])
def test_every_group_runs_once_whatever_the_window(prefect_harness, monkeypatch, tmp_path: Path,
                                                   parallel: int) -> None:
    from prefect import flow, task

    import flows.validate as validate
    from flows.worker import ArmGroup

    ran: list[str] = []

    @task(name="stand-in-group")
    def stand_in(group: ArmGroup, work_dir: str, processes: int) -> dict:
        ran.append(group.rung)
        return {"rung": group.rung}

    monkeypatch.setattr(validate, "run_group_task", stand_in)
    rungs = ["r0", "r1", "r2", "r3"]
    groups = [ArmGroup(ladder="tiny", rung=r, store=str(tmp_path), seeds=[1], methods=[],
                       result="") for r in rungs]

    @flow(name="window-check")
    def submit_all() -> list[dict]:
        return validate._submit_with_prefect(groups, tmp_path, 1, parallel)

    assert [o["rung"] for o in submit_all()] == rungs
    assert sorted(ran) == rungs
    if parallel == 1:
        assert ran == list(reversed(rungs)), "one at a time, largest rung first"
