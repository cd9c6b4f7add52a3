"""A pool group run's outcome reaches the parent through the Prefect server, never through a
file in the shared store that the store's other writers could rewrite (the open item of the
2026-12-05 reviews: pins and what the reuse check skips rested on STORE/.groups/<tag>.json)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flows.execute import GroupFailed


def _group_run(tag: str, extra: list[dict] | None = None):
    """A finished flow run that reported one outcome for ``tag`` (and ``extra`` artifacts),
    as ``flows.group_flow.run_arm_group`` does; returns its id and attempt."""
    from prefect import flow
    from prefect.artifacts import Artifact
    from prefect.runtime import flow_run

    from flows.group_outcome import OUTCOME_ARTIFACT, publish_outcome

    @flow(persist_result=False)
    async def group_run() -> None:
        await publish_outcome({"runs": ["r1"], "executed": ["r1"], "tag": tag,
                               "run_count": flow_run.run_count})
        for data in extra or []:
            await Artifact(type=OUTCOME_ARTIFACT, data=data).acreate()

    state = asyncio.run(group_run(return_state=True))
    return state.state_details.flow_run_id


def _read(flow_run_id, tag: str):
    from prefect.client.orchestration import get_client

    from flows.group_outcome import read_outcome

    with get_client(sync_client=True) as client:
        attempt = client.read_flow_run(flow_run_id).run_count
        return read_outcome(client, flow_run_id, tag, attempt, "rung m0 seeds [0]")


def test_the_parent_reads_the_outcome_the_group_run_reported_not_the_store_s_file(
        prefect_harness, tmp_path: Path) -> None:
    from flows.group_flow import group_paths

    run_id = _group_run("tag-a", extra=[{"runs": [], "executed": [], "tag": "tag-b",
                                         "run_count": 1}])
    # A writer of the shared store rewrites the file copy: nothing the parent reads changes.
    copy = group_paths(tmp_path, "tag-a").outcome
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps({"runs": ["planted"], "executed": []}))
    outcome = _read(run_id, "tag-a")
    assert outcome["runs"] == ["r1"] and outcome["executed"] == ["r1"]
    assert _read(run_id, "tag-c") is None  # none for that submission (yet)


@pytest.mark.parametrize("extra, expected", [
    ([{"runs": ["forged"], "executed": [], "tag": "tag-a", "run_count": 1}],
     "reported 2 outcomes for attempt 1; refused"),
    (["not an outcome"], "carries an outcome artifact that is not one"),
])
def test_a_second_outcome_for_one_attempt_stops_the_validation(
        prefect_harness, extra, expected) -> None:
    run_id = _group_run("tag-a", extra=extra)
    with pytest.raises(GroupFailed, match=expected):
        _read(run_id, "tag-a")


def test_a_flood_of_outcome_artifacts_is_refused_at_once(prefect_harness, monkeypatch) -> None:
    """helper-45: the reader reads one page of artifacts; a client adding decoys could push the
    real outcome past it, and the parent then waited for one that never came."""
    from flows import group_outcome

    monkeypatch.setattr(group_outcome, "MAX_OUTCOMES", 3)
    run_id = _group_run("tag-a", extra=[{"runs": [], "executed": [], "tag": "x",
                                         "run_count": 1}] * 3)
    with pytest.raises(GroupFailed, match="carries 3 or more outcome artifacts; refused"):
        _read(run_id, "tag-a")
