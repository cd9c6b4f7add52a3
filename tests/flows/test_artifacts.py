"""Prefect artifacts: report markdown, verdict table and progress, read back through the client."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flows.artifacts import (
    ProgressTracker,
    artifact_key,
    create_progress_artifact,
    publish_report,
    update_progress_artifact,
    verdict_table,
)
from stats.display import fmt
from stats.verdict_model import Verdict


@pytest.mark.parametrize(("name", "kind", "key"), [
    ("demo", "report", "w2s-report-demo"),
    ("Tiny_CI.v2", "verdict", "w2s-verdict-tiny-ci-v2"),
    ("--Odd  Name--", "progress", "w2s-progress-odd-name"),
])
def test_artifact_keys_are_stable_lowercase_dashes(name: str, kind: str, key: str) -> None:
    assert artifact_key(name, kind) == key


@pytest.fixture
def verdict(verdict: dict[str, Any]) -> Verdict:
    """The conftest's verdict as the typed model the artifacts read."""
    return Verdict.model_validate(verdict)


def test_verdict_table_rows_use_report_formatting(verdict) -> None:
    rows = verdict_table(verdict)
    first_cell = next(c for c in verdict.methods["aux_conf"].cells
                      if c.rung == verdict.production_rung)
    assert rows[0]["method"] == "aux_conf"
    assert rows[0]["gain (pp)"] == fmt(first_cell.gain.estimate, "gain")


async def _read_artifacts(key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


async def _read_artifact(artifact_id: Any) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id])))
        return artifact


def test_artifacts_published_inside_a_flow(prefect_harness, verdict) -> None:
    from prefect import flow

    @flow(name="w2s-artifacts-test")
    def tiny_flow(data: Verdict) -> dict[str, Any]:
        ids = publish_report("demo", "# Report\\n\\nverdicts here", data)
        tracker = ProgressTracker("demo", total=4)
        shown = [tracker.advance(), tracker.advance(1, total=8)]  # seeds added: total grows
        shown.append(tracker.set(3, 6))  # methods decided early: fewer groups remain
        manual = create_progress_artifact("demo-manual", 10)
        update_progress_artifact(manual, 150)  # clipped to 100
        return {**ids, "progress": tracker.artifact_id, "manual": manual, "shown": shown}

    ids = tiny_flow(verdict)
    (report,) = asyncio.run(_read_artifacts("w2s-report-demo"))
    assert report.type == "markdown" and report.data.startswith("# Report")
    assert report.id == ids["report"] and report.flow_run_id is not None
    (table,) = asyncio.run(_read_artifacts("w2s-verdict-demo"))
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert rows == verdict_table(verdict)
    progress = asyncio.run(_read_artifact(ids["progress"]))
    assert progress.type == "progress" and progress.key == "w2s-progress-demo"
    assert ids["shown"] == pytest.approx([25.0, 25.0, 50.0])
    assert progress.data == pytest.approx(50.0)
    assert asyncio.run(_read_artifact(ids["manual"])).data == pytest.approx(100.0)
