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
from w2s_common.errors import InputError

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

    metrics: dict | None = None
    config: bytes = b"{}"

    def soft_labels(self) -> pd.DataFrame:
        return pd.DataFrame({"example_id": [f"s{i}" for i in range(len(self.soft or []))],
                             "prob": self.soft or []})

    def __post_init__(self) -> None:
        self.metrics = self.metrics or {"accuracy": 0.5, "seconds": 1.0}

    def read_bytes(self, name: str) -> bytes:
        assert name == "config.json"
        return self.config


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
    # Metrics (but the duration and versions) and the training config are compared too.
    timed = _Run(student, [0.2], metrics={"accuracy": 0.5, "seconds": 9.0})
    assert compare_runs(_Run(student, [0.2]), timed, 1e-4)[1] is None
    relabelled = _Run(student, [0.2], metrics={"accuracy": 0.5, "seconds": 1.0,
                                              "isolation": "unjailed"})
    assert "metrics.json isolation" in compare_runs(_Run(student, [0.2]), relabelled, 1e-4)[1]
    reconfigured = _Run(student, [0.2], config=b'{"lr": 1}')
    assert "config.json" in compare_runs(_Run(student, [0.2]), reconfigured, 1e-4)[1]
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


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch) -> Path:
    """A model cache of this test's own (the session's is warm: its entries were built by
    other processes, which makes every cell one the check may draw)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    return cache


def test_a_store_with_planted_weak_runs_is_refused_before_any_verdict(
        prefect_harness, tmp_path: Path, empty_cache: Path) -> None:
    from flows.reuse_check import ReuseCheckFailed
    from flows.validate import validate_flow

    store = tmp_path / "store"
    # 1. A campaign on an empty store and cache computes every run: nothing to check.
    first = tmp_path / "first"
    validate_flow(str(_plan(tmp_path, 1)), str(first), str(store))
    checked = json.loads((first / "provenance.json").read_text())["reuse_check"]
    assert checked["runs_reused"] == 0 and checked["runs_compared"] == 0
    assert checked["runs_from_shared_cache"] == 0 and checked["cells_eligible"] == 0

    # 2. The same plan again: every run reused; one secret cell recomputed and compared.
    second = tmp_path / "second"
    validate_flow(str(_plan(tmp_path, 1)), str(second), str(store))
    checked = json.loads((second / "provenance.json").read_text())["reuse_check"]
    assert checked["runs_reused"] == 8  # 2 seeds x (weak, ceiling, vanilla, aux_conf)
    assert checked["cells_recomputed"] == 1 and checked["runs_compared"] == 4
    assert checked["largest_difference"] == 0.0  # CPU runs are bitwise reproducible
    assert not list((store / ".canary").glob("reuse-check-*")), "the scratch store is removed"
    # The verdict binds what the check did, and the gate can require it.
    from flows.gate import check_promotion

    bound = json.loads((second / "verdict.json").read_text())["binding"]["reuse_check"]
    assert bound == checked and checked["cells_asked"] == 1 and checked["cells_eligible"] == 2
    met = check_promotion(second / "verdict.json", "aux_conf", min_reuse_check_cells=1)
    assert met.unmet == () and ("reuse check: 1 of 2 cell(s) recomputed (8 run(s) reused from "
                                "the store and 0 computed from shared cache entries), 4 run(s) "
                                "compared") in met.checks
    short = check_promotion(second / "verdict.json", "aux_conf", min_reuse_check_cells=5)
    assert short.unmet == ("the verdict rests on 8 run(s) reused from the store and 0 computed "
                           "from shared cache entries; its reuse check recomputed 1 of the 2 "
                           "cell(s) holding them; the gate requires 2 (--min-reuse-check-cells "
                           "5)",)
    assert not short.passed and short.exit_code == 1
    fresh = check_promotion(first / "verdict.json", "aux_conf", min_reuse_check_cells=5)
    assert fresh.unmet == () and ("reuse check: no run reused from the store or computed "
                                  "from another process's cache entries (HF checkpoints are "
                                  "not covered)") in fresh.checks
    # Re-derived (--plan), the record is held to what results.parquet can bound.
    plan = _plan(tmp_path, 1)
    assert check_promotion(second / "verdict.json", "aux_conf", plan=plan,
                           min_reuse_check_cells=1).unmet == ()
    inflated = json.loads((second / "verdict.json").read_text())
    inflated["binding"]["reuse_check"].update(cells_eligible=5)
    (second / "inflated.json").write_text(json.dumps(inflated))
    with pytest.raises(InputError, match="binding.reuse_check: the reuse check's record cannot "
                                         "be true of results.parquet: cells_eligible is 5; the "
                                         "table has 2 cell"):
        check_promotion(second / "inflated.json", "aux_conf", plan=plan)
    older = json.loads((second / "verdict.json").read_text())
    del older["binding"]["reuse_check"]  # as written before verdicts bound the check
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert check_promotion(tmp_path / "older.json", "aux_conf").unmet == ()
    assert check_promotion(tmp_path / "older.json", "aux_conf", min_reuse_check_cells=1).unmet \
        == ("the verdict records no reuse check (written before verdicts bound it); rerun "
            "validate",)

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


# --- A writer of the store active during the campaign (review 2026-12-05, R3a and R3c) --------

def _copy_run(src: Path, target: Path) -> None:
    staged = target.parent / f".w2s-test-{target.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, staged)
    staged.rename(target)


def _run_with_writer(writer, store: Path, plan: Path, out: Path) -> list[str]:
    """Validate ``plan`` while ``writer(store, stop, log)`` runs in a thread; returns its log."""
    import threading

    from flows.validate import validate_flow

    stop, log = threading.Event(), []
    thread = threading.Thread(target=writer, args=(store, stop, log), daemon=True)
    thread.start()
    try:
        validate_flow(str(plan), str(out), str(store))
    finally:
        stop.set()
        thread.join()
    return log


def _scratch_planter(store: Path, stop, log: list) -> None:
    """As soon as a reuse check's store appears, copy every stored run into it."""
    import time

    seen: set[Path] = set()
    while not stop.is_set():
        for scratch in (store / ".canary").glob("reuse-check-*"):
            if scratch not in seen:
                seen.add(scratch)
                for arm in ("weak", "ceiling", "student"):
                    for run in (store / arm).iterdir():
                        if not run.name.startswith("."):
                            _copy_run(run, scratch / arm / run.name)
                            log.append(run.name)
        time.sleep(0.005)


def test_runs_planted_in_the_checks_own_store_are_refused(prefect_harness,
                                                          tmp_path: Path) -> None:
    """R3a: the check's store lives in the shared store; a writer copying the planted runs into
    it, so that the "recomputation" finds them there, is caught: every compared copy must be the
    one the check's worker computed and published itself."""
    from flows.reuse_check import ReuseCheckFailed
    from flows.validate import validate_flow

    store = tmp_path / "store"
    validate_flow(str(_plan(tmp_path, 1)), str(tmp_path / "first"), str(store))
    assert _plant(store) == 2
    third = tmp_path / "third"
    with pytest.raises(ReuseCheckFailed, match="its recomputation was not the worker's own "
                                               "copy"):
        _run_with_writer(_scratch_planter, store, _plan(tmp_path, 2), third)
    assert not (third / "verdict.json").exists()


def _ceiling_replacer(store: Path, stop, log: list) -> None:
    """0.3 s after each ceiling run is published, replace it (valid manifest) by one whose test
    predictions and accuracy are the weak run's of its seed: the PGR denominator forged."""
    import time

    from transfer.store import RunStore

    runs, done = RunStore(store), set()
    while not stop.is_set():
        for path in list((store / "ceiling").iterdir()) if (store / "ceiling").is_dir() else []:
            record = runs.find(path.name) if not path.name.startswith(".") else None
            weak = [r for r in runs.records("weak")
                    if record is not None and r.spec.seed == record.spec.seed
                    and r.spec.rung == record.spec.rung]
            if record is None or path.name in done or not weak:
                continue
            time.sleep(0.3)
            metrics = {k: v for k, v in record.metrics.items() if k != "versions"}
            metrics.update(accuracy=weak[0].metrics["accuracy"])
            side = RunStore(store / ".w2s-test-side")
            forged = side.put(record.spec, weak[0].predictions(), metrics,
                              config=json.loads(record.read_bytes("config.json")))
            trash = store / f".w2s-test-trash-{path.name}"
            path.rename(trash)
            forged.path.rename(path)
            shutil.rmtree(trash)
            done.add(path.name)
            log.append(path.name)
        time.sleep(0.005)


def test_a_run_replaced_after_its_worker_used_it_is_refused(prefect_harness,
                                                            tmp_path: Path) -> None:
    """R3c: the campaign pins each run's content digest as its worker reports it, and refuses a
    copy that changed afterwards (here a ceiling run replaced by the weak run's predictions,
    manifest and all, which no audit reruns)."""
    from transfer.store import StoreIntegrityError

    out = tmp_path / "out"
    with pytest.raises(StoreIntegrityError, match="changed in the store after its worker used "
                                                  "it"):
        log = _run_with_writer(_ceiling_replacer, tmp_path / "store", _plan(tmp_path, 1), out)
        assert log, "the writer replaced nothing: the test proves nothing"
    assert not (out / "verdict.json").exists()


def test_the_check_builds_cache_entries_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """R3c': a writer of the shared cache replaces a features entry and rewrites its manifest;
    the campaign would use it, but a reuse check's group builds its entries in a private
    directory, so its recomputation does not share the forgery."""
    from transfer.cache import cached_entry, entry_path, private_entries
    from transfer.manifest import write_manifest

    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "shared"))
    builds: list[Path] = []

    def build(directory: Path) -> None:
        builds.append(directory)
        (directory / "features.npy").write_bytes(b"honest features")

    cached_entry("features", "key", build)
    entry = entry_path("features", "key")
    (entry / "features.npy").write_bytes(b"PLANTED features")
    (entry / "MANIFEST.json").unlink()
    write_manifest(entry, "MANIFEST.json", extra={"kind": "features", "key": "key"})
    assert cached_entry("features", "key", build).read_verified("features.npy") == \
        b"PLANTED features"  # the shared cache: the manifest is no signature
    with private_entries(tmp_path / "private"):
        own = cached_entry("features", "key", build)
        assert own.read_verified("features.npy") == b"honest features"
        assert own.root.is_relative_to(tmp_path / "private")
    assert len(builds) == 2
    assert entry_path("features", "key") == entry  # the shared cache again after the block


def test_workers_refuse_a_run_that_changed_since_an_earlier_group_used_it(
        tmp_path: Path) -> None:
    """The campaign hands its pins to every later group (here the label-leak audit, which
    re-reads the real student run and its weak run): a weak run replaced between the groups,
    manifest and all, is refused by the audit's worker instead of steering the audit."""
    from flows.worker import ArmGroup, Canary, GroupMethod, run_group
    from transfer.store import StoreIntegrityError

    store = tmp_path / "store"
    methods = [GroupMethod(name="vanilla")]
    real = run_group(ArmGroup(ladder="micro", rung="m0", store=str(store), seeds=[0],
                              methods=methods, result=""), log=lambda line: None)
    audit = ArmGroup(ladder="micro", rung="m0", store=str(store), seeds=[], methods=methods,
                     canaries=[Canary(method="vanilla", seed=0, permutations=(5, 9))],
                     pinned=real["contents"], result="")
    assert run_group(audit, log=lambda line: None)["audits"][0]["clean"] is True
    assert _plant(store) == 1
    with pytest.raises(StoreIntegrityError, match="changed in the store after its worker used "
                                                  "it"):
        run_group(audit, log=lambda line: None)
    # Without the pins the same worker would have used the planted copy.
    unpinned = audit.model_copy(update={"pinned": {}})
    assert run_group(unpinned, log=lambda line: None)["audits"][0]["method"] == "vanilla"


def test_every_group_of_a_campaign_carries_its_pins(tmp_path: Path) -> None:
    from flows.audit_draw import AuditCell
    from flows.campaign import Campaign

    campaign = Campaign.prepare(_plan(tmp_path, 1), tmp_path / "out", tmp_path / "store")
    assert all(g.pinned == {} for g in campaign.groups([0], []))
    campaign.pinned["a" * 20] = "b" * 64
    groups = campaign.groups([1], []) + campaign.audit_groups(
        {"vanilla": [AuditCell(rung="m0", data=None, seed=0, permutations=(1, 2))]})
    assert groups and all(g.pinned == {"a" * 20: "b" * 64} for g in groups)
    assert groups[0].key() == campaign.groups([1], [])[0].model_copy(
        update={"pinned": {}}).key(), "pins are not part of a group's identity"


def test_a_bound_reuse_check_must_be_consistent_and_old_verdicts_do_not_meet_a_minimum(
        tmp_path: Path) -> None:
    from pydantic import ValidationError

    from flows.gate_binding import BoundReuseCheck

    fields = dict(cells_asked=1, runs_reused=8, runs_from_shared_cache=0, cells_eligible=2,
                  cells_recomputed=1,
                  runs_compared=4, largest_difference=0.0, tolerance=1e-4)
    assert BoundReuseCheck(**fields).unmet(1) is None
    for forged in ({"cells_recomputed": 2}, {"runs_compared": 0}, {"runs_reused": 0},
                   {"cells_eligible": 0}):
        with pytest.raises(ValidationError):
            BoundReuseCheck(**{**fields, **forged})
    unchecked = BoundReuseCheck(**{**fields, "cells_asked": 0, "cells_recomputed": 0,
                                   "runs_compared": 0, "largest_difference": None,
                                   "tolerance": None})
    assert unchecked.unmet(1).startswith("the verdict rests on 8 run(s) reused from the store "
                                         "and 0 computed from shared cache entries; its reuse "
                                         "check recomputed 0 of the 2")


def _forge_features(cache: Path) -> int:
    """A writer of the shared cache rewrites every features entry (rows shuffled), with a valid
    manifest: every arm computed from them learns from other texts' features."""
    import numpy as np

    from transfer.manifest import write_manifest

    forged = 0
    for entry in sorted((cache / "features").iterdir()):
        if entry.name.startswith("."):
            continue
        manifest = json.loads((entry / "MANIFEST.json").read_text())
        features = np.load(entry / "features.npy")
        np.save(entry / "features.npy", features[np.random.default_rng(0).permutation(
            len(features))])
        (entry / "MANIFEST.json").unlink()
        write_manifest(entry, "MANIFEST.json", extra={"kind": manifest["kind"],
                                                      "key": manifest["key"]})
        forged += 1
    return forged


def test_runs_computed_from_forged_shared_cache_entries_are_refused(
        prefect_harness, tmp_path: Path, empty_cache: Path) -> None:
    """A campaign on an empty store computes every run, but from shared cache entries another
    process built: their cells are drawn too, and the check recomputes them from entries of its
    own. With honest entries it passes; with forged features (valid manifests) it stops the
    campaign before any verdict."""
    from flows.reuse_check import ReuseCheckFailed
    from flows.validate import validate_flow

    validate_flow(str(_plan(tmp_path, 1)), str(tmp_path / "warm"), str(tmp_path / "store-a"))
    honest = tmp_path / "honest"
    validate_flow(str(_plan(tmp_path, 1)), str(honest), str(tmp_path / "store-b"))
    checked = json.loads((honest / "provenance.json").read_text())["reuse_check"]
    assert checked["runs_reused"] == 0 and checked["runs_from_shared_cache"] == 8
    assert checked["cells_eligible"] == 2 and checked["cells_recomputed"] == 1
    assert checked["runs_compared"] == 4 and checked["largest_difference"] == 0.0

    assert _forge_features(empty_cache) > 0
    forged = tmp_path / "forged"
    with pytest.raises(ReuseCheckFailed, match="is not what its spec computes"):
        validate_flow(str(_plan(tmp_path, 1)), str(forged), str(tmp_path / "store-c"))
    assert not (forged / "verdict.json").exists()


def test_a_pool_campaign_takes_no_worker_s_word_for_what_it_computed() -> None:
    """helper-41 F1: a pool's outcomes pass through the shared store, where a writer could
    rewrite ``executed`` and ``cache_found`` so that planted runs read as computed here; so
    with the pool executor every cell may be drawn."""
    from types import SimpleNamespace

    from flows.reuse_check import checked_here

    campaign = SimpleNamespace(computed_runs={"a", "b", "c"}, cache_fed_runs={"c"},
                               outcomes_private=True)
    assert checked_here(campaign) == {"a", "b"}
    campaign.outcomes_private = False
    assert checked_here(campaign) == set()


def test_entries_one_of_the_campaign_s_groups_built_feed_no_check(tmp_path: Path) -> None:
    """The demo runs two groups at a time on one cache: an entry one built and the other
    found is the campaign's own, not another process's (before, every demo checked a cell)."""
    from flows.campaign import Campaign

    campaign = Campaign.prepare(_plan(tmp_path, 1), tmp_path / "out", tmp_path / "store")
    campaign.note_cache_use({"r1"}, {"cache_found": ["features/x"], "cache_built": []})
    campaign.note_cache_use({"r2"}, {"cache_found": [], "cache_built": ["features/x"]})
    assert campaign.cache_fed_runs == set()
    campaign.note_cache_use({"r3"}, {"cache_found": ["models/y"], "cache_built": []})
    assert campaign.cache_fed_runs == {"r3"}
    campaign.note_cache_use({"r4"}, {"executed": []})  # a worker that does not say
    campaign.note_cache_use({"r5"}, {"cache_found": ["*"], "cache_built": ["*"]})  # ranks
    assert campaign.cache_fed_runs == {"r3", "r4", "r5"}


def test_an_honest_pool_campaign_on_an_empty_store_writes_a_verdict_the_gate_reads(
        prefect_harness, tmp_path: Path, empty_cache: Path, monkeypatch) -> None:
    """helper-42 R2: a pool campaign draws from every cell, but its record said nothing was
    reused or cache-fed, which the gate's consistency check refused (exit 2). The runs only
    its workers vouch for are counted as such."""
    from flows.campaign import Campaign
    from flows.gate import check_promotion
    from flows.validate import validate_flow

    check_reuse = Campaign.check_reuse

    def as_a_pool(self, submit):  # what Campaign.run sets for `executor: pool`
        self.outcomes_private = False
        return check_reuse(self, submit)

    monkeypatch.setattr(Campaign, "check_reuse", as_a_pool)
    out = tmp_path / "pool-like"
    validate_flow(str(_plan(tmp_path, 1)), str(out), str(tmp_path / "store"))
    bound = json.loads((out / "verdict.json").read_text())["binding"]["reuse_check"]
    assert bound["runs_reused"] == 0 and bound["runs_from_shared_cache"] == 0
    assert bound["runs_unverified"] == 8 and bound["cells_eligible"] == 2
    assert bound["cells_recomputed"] == 1 and bound["runs_compared"] == 4
    decision = check_promotion(out / "verdict.json", "aux_conf", min_reuse_check_cells=1,
                               plan=_plan(tmp_path, 1))
    assert decision.unmet == ()
    assert ("reuse check: 1 of 2 cell(s) recomputed (0 run(s) reused from the store and 0 "
            "computed from shared cache entries, and 8 only a pool's workers say they "
            "computed), 4 run(s) compared") in decision.checks


def test_cache_entries_are_told_apart_by_content_not_only_by_name(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """helper-42 R1: entries were matched by name, so a planted entry one group found, then
    deleted and rebuilt honestly by a later group, counted as the campaign's own."""
    import transfer.cache as cache
    from transfer.manifest import write_manifest

    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "shared"))
    monkeypatch.setattr(cache, "_SHARED_FOUND", set())
    monkeypatch.setattr(cache, "_SHARED_BUILT", set())
    cache.cached_entry("features", "key", lambda d: (d / "f.npy").write_bytes(b"honest"))
    (built,) = cache.shared_entries_built()
    assert built.startswith("features/key@") and cache.shared_entries_found() == []
    entry = cache.entry_path("features", "key")
    (entry / "f.npy").write_bytes(b"PLANTED")
    (entry / "MANIFEST.json").unlink()
    write_manifest(entry, "MANIFEST.json", extra={"kind": "features", "key": "key"})
    monkeypatch.setattr(cache, "_SHARED_BUILT", set())  # another process, later
    cache.cached_entry("features", "key", lambda d: None)
    (found,) = cache.shared_entries_found()
    assert found.startswith("features/key@") and found != built
