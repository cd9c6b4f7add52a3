"""The reuse check: a campaign recomputes a secret sample of the cells it reused from the store
and compares every run with the stored copy (``flows.reuse_check``).

A manifest proves who wrote a run, not that it is what its spec computes; the attacker review of
2026-12-05 planted weak runs whose soft labels were rewritten (valid manifests), and a neutral
method became REAL. Here such a store is refused before any verdict is written.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.reuse_check import Cell, ReuseCheck, compare_runs, draw_cells, reused_cells

REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Spec:
    arm: str
    rung: str
    seed: int
    label: str
    dataset_fingerprint: str = "fp"
    hash: str = ""

    def run_hash(self) -> str:
        return self.hash


@dataclass
class _Run:
    spec: _Spec
    probs: list[float]
    soft: list[float] | None = None

    def predictions(self) -> pd.DataFrame:
        return pd.DataFrame({"example_id": [f"t{i}" for i in range(len(self.probs))],
                             "prob": self.probs})

    def soft_labels(self) -> pd.DataFrame:
        return pd.DataFrame({"example_id": [f"s{i}" for i in range(len(self.soft or []))],
                             "prob": self.soft or []})


def test_only_cells_holding_a_reused_run_are_drawn() -> None:
    runs = [_Run(_Spec("weak", "r0", 0, "weak", hash="a"), [0.5]),
            _Run(_Spec("student", "r0", 0, "vanilla", hash="b"), [0.5]),
            _Run(_Spec("weak", "r0", 1, "weak", hash="c"), [0.5]),
            _Run(_Spec("student", "r0", 1, "aux_conf", hash="d"), [0.5])]
    cells = reused_cells(runs, computed_here={"a", "b", "c"}, data_of={"fp": None})
    assert cells == {Cell("r0", "", 1): ["aux_conf"]}
    assert reused_cells(runs, {"a", "b", "c", "d"}, {"fp": None}) == {}
    many = [Cell("r0", "", s) for s in range(10)]
    drawn = draw_cells(many, 3, random.Random(0))
    assert len(set(drawn)) == 3 and set(drawn) <= set(many)
    assert draw_cells(many[:2], 5, random.Random(0)) == many[:2]


def test_compare_runs_reads_predictions_and_a_weak_runs_soft_labels() -> None:
    spec = _Spec("weak", "r0", 0, "weak")
    same = compare_runs(_Run(spec, [0.2, 0.9], [0.3]), _Run(spec, [0.2, 0.9], [0.3]), 1e-4)
    assert same == (0.0, None)
    largest, problem = compare_runs(_Run(spec, [0.2, 0.9], [0.3]),
                                    _Run(spec, [0.2, 0.9], [0.8]), 1e-4)
    assert largest == pytest.approx(0.5) and problem.startswith("its soft labels differ")
    largest, problem = compare_runs(_Run(spec, [0.2, float("nan")]), _Run(spec, [0.2, 0.9]), 0.5)
    assert problem is not None  # NaN is never within a tolerance
    student = _Spec("student", "r0", 0, "m")
    assert compare_runs(_Run(student, [0.2]), _Run(student, [0.20001]), 1e-4)[1] is None
    assert ReuseCheck().threshold(False) == 1e-4 and ReuseCheck().threshold(True) == 0.1
    assert ReuseCheck(tolerance=0.01).threshold(False) == 0.01


def _plan(tmp_path: Path, cells: int) -> Path:
    plan = yaml.safe_load((REPO / "flows/plans/micro-ci.yaml").read_text())
    plan.update(name="reuse-check", rungs=["m0"], seeds={"initial": 2, "batch": 1, "max": 2},
                reuse_check={"cells": cells})
    path = tmp_path / f"plan-{cells}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _plant(store: Path) -> int:
    """A writer of the store rewrites every weak run's soft labels, with a valid manifest."""
    from transfer.store import RunStore

    runs = RunStore(store)
    planted = 0
    for record in runs.records("weak"):
        predictions, soft = record.predictions(), record.soft_labels()
        metrics = {k: v for k, v in record.metrics.items() if k != "versions"}
        config = json.loads(record.read_bytes("config.json"))
        soft["prob"] = 1.0 - soft["prob"]
        shutil.rmtree(record.path)
        runs.put(record.spec, predictions, metrics, soft_labels=soft, config=config)
        planted += 1
    return planted


def test_a_store_with_planted_weak_runs_is_refused_before_any_verdict(
        prefect_harness, tmp_path: Path) -> None:
    from flows.reuse_check import ReuseCheckFailed
    from flows.validate import validate_flow

    store = tmp_path / "store"
    # 1. A campaign on an empty store computes every run: nothing reused, nothing to check.
    first = tmp_path / "first"
    validate_flow(str(_plan(tmp_path, 1)), str(first), str(store))
    checked = json.loads((first / "provenance.json").read_text())["reuse_check"]
    assert checked["runs_reused"] == 0 and checked["runs_compared"] == 0

    # 2. The same plan again: every run reused; one secret cell recomputed and compared.
    second = tmp_path / "second"
    validate_flow(str(_plan(tmp_path, 1)), str(second), str(store))
    checked = json.loads((second / "provenance.json").read_text())["reuse_check"]
    assert checked["runs_reused"] == 8  # 2 seeds x (weak, ceiling, vanilla, aux_conf)
    assert checked["cells_recomputed"] == 1 and checked["runs_compared"] == 4
    assert checked["largest_difference"] == 0.0  # CPU runs are bitwise reproducible
    assert not list((store / ".canary").glob("reuse-check-*")), "the scratch store is removed"

    # 3. Planted weak runs (valid manifests): the check recomputes a cell and refuses the store.
    assert _plant(store) == 2
    third = tmp_path / "third"
    with pytest.raises(ReuseCheckFailed) as caught:
        validate_flow(str(_plan(tmp_path, 2)), str(third), str(store))
    message = str(caught.value)
    assert "reuse check: the stored run " in message and "(weak, rung m0, seed " in message
    assert "its soft labels differ from the recomputation's by up to" in message
    assert not (third / "verdict.json").exists()
    assert not list((store / ".canary").glob("reuse-check-*"))


def test_the_cli_says_what_the_check_did(tmp_path: Path) -> None:
    from flows.commands.validate_cmd import _reuse_check_line

    def line(checked: dict) -> str | None:
        (tmp_path / "provenance.json").write_text(json.dumps({"reuse_check": checked}))
        return _reuse_check_line(tmp_path)

    assert line({"runs_reused": 0, "runs_compared": 0}) is None
    assert line({"runs_reused": 8, "runs_compared": 4, "cells_recomputed": 1,
                 "largest_difference": 0.0, "tolerance": 1e-4}) == (
        "reuse check: 8 run(s) reused from the store; 4 run(s) of 1 secretly drawn cell(s) "
        "recomputed, largest difference 0 (tolerance 0.0001)")
    assert "none recomputed (reuse_check.cells: 0)" in line({"runs_reused": 3,
                                                             "runs_compared": 0})
