"""The label-leak audit inside the validation (``flows.plan.Audit``): each method's student arm
is rerun under two gold-label permutations in cells of its own campaign, drawn at random when
the campaign starts, so the audit and the validation are the same runs to the method (the
stand-alone `w2s-transfer audit` runs later, and a method could tell from the age of its code
copies; docs/security.md)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from flows.campaign import Campaign, GroupOutcomeError, draw_audit_cells
from flows.commands.validate_cmd import DEMO_PLAN
from flows.guards import audit_reasons
from stats.verdict_model import LabelAudit
from w2s_common.errors import InputError

MICRO = DEMO_PLAN.parent / "micro-ci.yaml"
METHODS_TESTS = Path(__file__).resolve().parents[1] / "methods"


# A label-reading method installed as a trusted built-in wherever Python starts.
INSTALL_THIEF = """
from malicious.gc_split import GcSplitThief
from methods import registry

registry._load_builtins()
thief = GcSplitThief()
info = registry.MethodInfo(thief, thief.name, "builtin", "tests")
registry._BUILTINS[thief.name] = info
registry._RESOLVED[id(thief)] = info
"""


def install_thief(monkeypatch):
    """``INSTALL_THIEF`` in this process, undone after the test."""
    monkeypatch.syspath_prepend(str(METHODS_TESTS))
    from malicious.gc_split import GcSplitThief

    from methods import registry

    thief = GcSplitThief()
    info = registry.MethodInfo(thief, thief.name, "builtin", "tests")
    registry._load_builtins()
    monkeypatch.setitem(registry._BUILTINS, thief.name, info)
    monkeypatch.setitem(registry._RESOLVED, id(thief), info)
    return thief


def cell(clean: bool, seed: int = 0) -> LabelAudit:
    return LabelAudit(rung="m1", dataset="synthetic", seed=seed, clean=clean,
                      evidence="clean: ..." if clean else "label leak: ...", rule="exact",
                      isolation=["jail"])


def test_cells_are_drawn_among_the_first_look_for_every_method(tmp_path) -> None:
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    plan = campaign.plan.model_copy(update={"audit": campaign.plan.audit.model_copy(
        update={"cells": 3})})
    first_look = {(rung, None, seed) for rung in ("m0", "m1") for seed in (0, 1)}
    seen = set()
    for trial in range(50):
        drawn = draw_audit_cells(plan, campaign.rungs, [0, 1], random.Random(trial))
        assert list(drawn) == ["vanilla", "aux_conf"]  # the baseline is audited too
        for cells in drawn.values():
            keys = [(c.rung, c.data, c.seed) for c in cells]
            assert len(keys) == 3 == len(set(keys)) and set(keys) <= first_look
            assert all(c.permutations[0] != c.permutations[1] and min(c.permutations) >= 1
                       for c in cells)
            seen.update(keys)
    assert seen == first_look  # every first-look cell can be drawn
    # More cells asked for than the first look has: each of them, once.
    plan = plan.model_copy(update={"audit": plan.audit.model_copy(update={"cells": 64})})
    assert len(draw_audit_cells(plan, campaign.rungs, [0, 1])["aux_conf"]) == 4


def test_each_audit_goes_to_the_group_of_its_cell_in_the_first_look_only(tmp_path) -> None:
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    campaign.audit_cells = draw_audit_cells(campaign.plan, campaign.rungs, [0, 1])
    first = campaign.groups([0, 1], ["aux_conf"])
    canaries = [(g.rung, c.method, c.seed, c.permutations) for g in first for c in g.canaries]
    expected = [(cell.rung, entry, cell.seed, cell.permutations)
                for entry, cells in campaign.audit_cells.items() for cell in cells]
    assert sorted(canaries) == sorted(expected)
    assert all(not g.canaries for g in campaign.groups([2], ["aux_conf"]))
    # A group's key changes with its canaries (its files must not be another group's).
    with_canary = next(g for g in first if g.canaries)
    assert with_canary.key() != with_canary.model_copy(update={"canaries": []}).key()


def test_a_group_must_report_exactly_the_audits_it_was_given(tmp_path) -> None:
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    campaign.audit_cells = draw_audit_cells(campaign.plan, campaign.rungs, [0, 1])
    group = next(g for g in campaign.groups([0, 1], ["aux_conf"]) if g.canaries)
    reported = [{"method": c.method, "seed": c.seed, "clean": True, "evidence": "clean: ...",
                 "rule": "exact", "isolation": ["builtin"]} for c in group.canaries]
    for bad, says in [(None, "not the ones it was asked for"),
                      (reported[1:], "not the ones it was asked for"),
                      (reported + reported[:1], "not the ones it was asked for"),
                      ("clean", "not a list of objects"),
                      ([{**reported[0], "clean": "yes"}] + reported[1:], "is malformed")]:
        with pytest.raises(GroupOutcomeError, match=says):
            campaign.record_audits(group, bad)
    assert campaign.audits == {} or all(len(v) < 2 for v in campaign.audits.values())
    campaign.audits.clear()
    campaign.record_audits(group, reported)
    label = campaign.methods[group.canaries[0].method]["label"]
    assert campaign.audits[label][0].rung == group.rung
    assert campaign.audits[label][0].dataset == "synthetic"


def test_a_flagged_missing_or_flagged_baseline_audit_blocks_promotion() -> None:
    assert audit_reasons({"m": [cell(True)], "base": [cell(True)]}, "m", "base") == []
    flagged = audit_reasons({"m": [cell(True), cell(False, seed=2)], "base": [cell(True)]},
                            "m", "base")
    assert flagged == ["the label-leak audit flagged it at rung m1 (synthetic) seed 2: "
                       "label leak: ..."]
    missing = audit_reasons({"base": [cell(True)]}, "m", "base")
    assert len(missing) == 1 and missing[0].startswith("no label-leak audit of it")
    baseline = audit_reasons({"m": [cell(True)], "base": [cell(False)]}, "m", "base")
    assert baseline == ["the label-leak audit flagged the baseline base at rung m1 (synthetic) "
                        "seed 0: label leak: ..."]


def test_the_worker_flags_a_method_that_reads_labels_and_clears_one_that_does_not(
        tmp_path, monkeypatch) -> None:
    """In a real group: a built-in that finds the task's labels in memory (the routes a jailed
    plugin lacks) is flagged; the sealed baseline is clean; the real store gets no permuted
    run."""
    from flows.worker import ArmGroup, Canary, GroupMethod, run_group

    thief = install_thief(monkeypatch)
    store = tmp_path / "store"
    group = ArmGroup(ladder="micro", rung="m0", store=str(store), seeds=[0],
                     methods=[GroupMethod(name="vanilla"), GroupMethod(name=thief.name)],
                     canaries=[Canary(method="vanilla", seed=0, permutations=(5, 9)),
                               Canary(method=thief.name, seed=0, permutations=(3, 7),
                                      rule="follows_labels")],
                     result="")
    outcome = run_group(group, log=lambda line: None)
    audits = {a["method"]: a for a in outcome["audits"]}
    assert audits["vanilla"]["clean"] is True, audits["vanilla"]
    assert audits["vanilla"]["rule"] == "exact"  # auto, on a machine without GPUs
    assert audits[thief.name]["clean"] is False
    assert audits[thief.name]["rule"] == "follows_labels"
    assert audits[thief.name]["evidence"].startswith(
        "label leak: predictions under gold permutations 3 and 7 differ on ")
    assert audits[thief.name]["evidence"].endswith("the method's output follows the gold labels")
    assert audits[thief.name]["isolation"] == ["builtin"]
    # Only the group's own runs are in the real store: weak, ceiling and two students.
    assert len(outcome["runs"]) == 4 == len({p.parent for p in store.glob("*/*/COMPLETE")})


def test_a_validation_records_its_audits_and_never_promotes_a_flagged_method(
        prefect_harness, tmp_path, monkeypatch) -> None:
    """End to end through the local executor (a worker subprocess): a built-in that reads the
    labels its worker holds (installed in every interpreter by a ``sitecustomize``, as trusted
    code would be) is flagged by its own campaign's audit and not promoted, and the verdict
    re-derives with the audit as an input (gate --plan)."""
    from flows.gate import check_promotion
    from flows.validate import validate_flow

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(INSTALL_THIEF)
    monkeypatch.syspath_prepend(str(METHODS_TESTS))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{METHODS_TESTS}")
    install_thief(monkeypatch)  # and in this process, which prepares the campaign
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: audited\nmethods: [{name: malicious_gc_split}]\n"
                    "ladder: micro\nrungs: [m0]\nseeds: {initial: 2, batch: 1, max: 2}\n"
                    "compute: {ds_config: zero0, precision: fp32}\n")
    out = tmp_path / "out"
    validate_flow(str(plan), str(out), str(tmp_path / "store"))
    verdict = json.loads((out / "verdict.json").read_text())
    audits = verdict["audits"]
    assert sorted(audits) == ["malicious_gc_split", "vanilla"]
    assert [a["clean"] for a in audits["vanilla"]] == [True]
    (flagged,) = audits["malicious_gc_split"]
    assert flagged["clean"] is False and flagged["rung"] == "m0" and flagged["seed"] in (0, 1)
    entry = verdict["methods"]["malicious_gc_split"]
    assert entry["promote"] is False
    assert any(r.startswith("the label-leak audit flagged it at rung m0 (synthetic) seed ")
               for r in entry["guards"])
    assert "label-leak audit FLAGGED at 1 of 1 cells" in (out / "report.md").read_text()
    decision = check_promotion(out / "verdict.json", "malicious_gc_split", plan=plan)
    assert not decision.passed  # and the file re-derived from its inputs (else InputError)
    # The audit is an input of the re-derivation: a file whose audit says clean while the
    # entry stays blocked, or the reverse, is refused.
    forged = dict(verdict, audits={**audits, "malicious_gc_split": [{**flagged, "clean": True}]})
    (out / "verdict.json").write_text(json.dumps(forged))
    with pytest.raises(InputError, match="does not match its re-derivation"):
        check_promotion(out / "verdict.json", "malicious_gc_split", plan=plan)
