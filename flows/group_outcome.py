"""A pool group run's outcome, handed to the parent through the Prefect server.

A group run on a pool's worker reports what it computed (its runs, which ones it executed, the
content digest of each as it used it, the cache entries it found and built) as an artifact of
its own flow run; the parent reads that artifact, never a file. The outcome used to be a file in
the shared store (``STORE/.groups/<tag>.json``), where anyone who can write the store could
rewrite it before the parent read it: the pins of the campaign and what its reuse check skips
rest on it (attacker review 2026-12-05, helper-41). The file is still written, as a copy for
people; the parent does not read it.

The artifact names the submission's tag and the attempt (the flow run's ``run_count``), so a
crashed attempt's outcome is never taken for its rerun's; two outcomes for one attempt (only a
client of the server can add one) stop the validation instead of choosing.
"""
from __future__ import annotations

import json
from typing import Any

from flows.execute import GroupFailed

OUTCOME_ARTIFACT = "w2s-group-outcome"
# A page of the server (its default limit): more than a group's attempts could report
# (compute.group_reruns <= 100; an attempt reports once, when it succeeds).
MAX_OUTCOMES = 200


async def publish_outcome(record: dict[str, Any]) -> None:
    """Attach ``record`` (the group's outcome, with its ``tag`` and ``run_count``) to the
    running flow run as an artifact. Raises what the Prefect client raises."""
    from prefect.artifacts import Artifact

    await Artifact(type=OUTCOME_ARTIFACT, data=record,
                   description=f"w2s arm group outcome ({record['tag']})").acreate()


def read_outcome(client: Any, flow_run_id: Any, tag: str, attempt: int | None,
                 where: str) -> dict[str, Any] | None:
    """The outcome the group run ``flow_run_id`` reported for submission ``tag`` and its
    attempt ``attempt`` (``run_count``), or None when there is none (yet).

    Raises:
        GroupFailed: more than one outcome for that attempt, or one that is not an outcome.
    """
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
    )

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
        type=ArtifactFilterType(any_=[OUTCOME_ARTIFACT])), limit=MAX_OUTCOMES)
    if len(found) >= MAX_OUTCOMES:
        # A group run reports one outcome per attempt; a page full of them is someone else's
        # doing, and the real one could lie past it (helper-45): refused, not waited for.
        raise GroupFailed(f"{where}: group run {flow_run_id} carries {len(found)} or more "
                          "outcome artifacts; refused", 2, None)
    outcomes = []
    for artifact in found:
        data = artifact.data
        try:
            record = json.loads(data) if isinstance(data, str) else data
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("runs"), list) \
                or not isinstance(record.get("executed"), list):
            raise GroupFailed(f"{where}: group run {flow_run_id} carries an outcome artifact "
                              f"that is not one ({artifact.id}); refused", 2, None)
        if record.get("tag") == tag and record.get("run_count") == attempt:
            outcomes.append(record)
    if len(outcomes) > 1:
        raise GroupFailed(f"{where}: group run {flow_run_id} reported {len(outcomes)} outcomes "
                          f"for attempt {attempt}; refused (only one is its own)", 2, None)
    return outcomes[0] if outcomes else None
