"""The label-leak audit inside the validation (``flows.plan.Audit``): each method's student arm
is rerun under two gold-label permutations in cells of its own campaign, drawn at random when
the campaign starts, so the audit and the validation are the same runs to the method (the
stand-alone `w2s-transfer audit` runs later, and a method could tell from the age of its code
copies; docs/security.md)."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from flows.audit_draw import audit_horizon, draw_audit_cells
from flows.campaign import Campaign, GroupOutcomeError
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


def install_thief(monkeypatch, kind: str = "GcSplitThief"):
    """``INSTALL_THIEF`` in this process (or another thief of ``malicious``), undone after the
    test."""
    monkeypatch.syspath_prepend(str(METHODS_TESTS))
    import malicious.gc_split
    import malicious.shy
    from cli_helpers import install_builtin

    thief = getattr(malicious.gc_split, kind, None) or getattr(malicious.shy, kind)
    return install_builtin(monkeypatch, thief())


def cell(clean: bool, seed: int = 0) -> LabelAudit:
    return LabelAudit(rung="m1", dataset="synthetic", seed=seed, clean=clean,
                      evidence="clean: ..." if clean else "label leak: ...", rule="exact",
                      isolation=["jail"])


def simulate_audits(campaign, looks, decided_at: dict[str, int], rng) -> dict[str, list]:
    """The audit cells drawn over ``looks`` (lists of seeds) by ``Campaign.run``'s calls
    (``audit_horizon``, ``draw_audit_cells``) when each entry is decided at the look
    ``decided_at`` names (1-based; absent: never)."""
    left = {e: campaign.plan.audit.cells for e in ["vanilla", "aux_conf"]}
    drawn: dict[str, list] = {e: [] for e in left}
    undecided = ["aux_conf"]
    for look, seeds in enumerate(looks, start=1):
        ran = ["vanilla", *undecided]
        undecided = [m for m in undecided if decided_at.get(m, 0) != look]
        later, finishing = audit_horizon(looks, look, ran, undecided, False)
        cells = draw_audit_cells(campaign.plan, {e: left[e] for e in ran}, campaign.rungs,
                                 seeds, later, finishing, rng)
        for entry, chosen in cells.items():
            left[entry] -= len(chosen)
            drawn[entry].extend((look, c) for c in chosen)
    return drawn


def test_every_cell_of_every_look_can_be_audited_and_each_method_gets_its_audits(tmp_path):
    """A method sees its seed, so audits drawn from the first look only left it the later
    seeds (found by an independent attacker review, 2026-12-04): each audit falls on any cell
    of any look, about uniformly, and a method decided early gets its audits at that look."""
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    looks = [[0, 1], [2]]  # micro-ci's seed batches
    every = {(rung, seed) for rung in ("m0", "m1") for seed in (0, 1, 2)}
    where = Counter()
    for trial in range(600):
        drawn = simulate_audits(campaign, looks, {}, random.Random(trial))
        for entry, cells in drawn.items():
            assert len(cells) == 1, (entry, cells)  # audit.cells: 1, never more, never fewer
            (look, cell), = cells
            assert cell.seed in looks[look - 1] and cell.data is None
            assert cell.permutations[0] != cell.permutations[1] and min(cell.permutations) >= 1
            where[(cell.rung, cell.seed)] += 1
    assert set(where) == every
    assert min(where.values()) > 1200 / 6 * 0.7, where  # about uniform over the 6 cells
    for trial in range(50):  # decided at look 1: audited there
        drawn = simulate_audits(campaign, looks, {"aux_conf": 1}, random.Random(trial))
        assert [look for look, _ in drawn["aux_conf"]] == [1]
        assert len(drawn["vanilla"]) == 1
    # The horizon: decided now, or no look to come, finishes; later seeds only if looks follow.
    assert audit_horizon(looks, 1, ["vanilla", "a", "b"], ["b"], False) == (1, {"a"})
    assert audit_horizon(looks, 1, ["vanilla", "a"], [], True) == (1, {"a"})  # controls left
    assert audit_horizon(looks, 1, ["vanilla", "a"], [], False) == (0, {"vanilla", "a"})
    assert audit_horizon(looks, 2, ["vanilla", "a"], ["a"], False) == (0, {"vanilla", "a"})


def test_real_groups_carry_no_audit_and_audit_groups_no_real_run(tmp_path) -> None:
    """During its real runs no worker holds the audit schedule (an in-process method could
    read it and be honest only where audited: found by an independent attacker review)."""
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    assert all(not g.canaries for g in campaign.groups([0, 1], ["aux_conf"]))
    cells = draw_audit_cells(campaign.plan, {"vanilla": 1, "aux_conf": 1}, campaign.rungs,
                             [0, 1], 0, {"vanilla", "aux_conf"})
    groups = campaign.audit_groups(cells)
    assert all(g.seeds == [] and g.canaries for g in groups)
    canaries = sorted((g.rung, c.method, c.seed, c.permutations)
                      for g in groups for c in g.canaries)
    assert canaries == sorted((cell.rung, entry, cell.seed, cell.permutations)
                              for entry, chosen in cells.items() for cell in chosen)
    assert all(c.rule == "auto" and c.alpha == 0.001 for g in groups for c in g.canaries)


def test_a_group_must_report_exactly_the_audits_it_was_given(tmp_path) -> None:
    campaign = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    cells = draw_audit_cells(campaign.plan, {"vanilla": 1, "aux_conf": 1}, ["m1"], [0, 1], 0,
                             {"vanilla", "aux_conf"})
    (group,) = campaign.audit_groups(cells)
    reported = [{"method": c.method, "seed": c.seed, "clean": True, "evidence": "clean: ...",
                 "rule": "exact", "isolation": ["builtin"]} for c in group.canaries]
    for bad, says in [(None, "not the ones it was asked for"),
                      (reported[1:], "not the ones it was asked for"),
                      (reported + reported[:1], "not the ones it was asked for"),
                      ("clean", "not a list of objects"),
                      ([{**reported[0], "clean": "yes"}] + reported[1:], "is malformed")]:
        with pytest.raises(GroupOutcomeError, match=says):
            campaign.record_audits(group, bad)
    campaign.audits.clear()
    campaign.record_audits(group, reported)
    label = campaign.methods[group.canaries[0].method].label
    assert campaign.audits[label][0].rung == "m1"
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
    shy = install_thief(monkeypatch, "ShyThief")
    store = tmp_path / "store"
    methods = [GroupMethod(name="vanilla"), GroupMethod(name=thief.name),
               GroupMethod(name=shy.name)]
    real = ArmGroup(ladder="micro", rung="m0", store=str(store), seeds=[0], methods=methods,
                    result="")
    outcome = run_group(real, log=lambda line: None)
    # Weak, ceiling and three students; the audit runs later, in a group of its own.
    assert len(outcome["runs"]) == 5 == len({p.parent for p in store.glob("*/*/COMPLETE")})
    audit = ArmGroup(ladder="micro", rung="m0", store=str(store), seeds=[], methods=methods,
                     canaries=[Canary(method="vanilla", seed=0, permutations=(5, 9)),
                               Canary(method=thief.name, seed=0, permutations=(3, 7),
                                      rule="follows_labels"),
                               Canary(method=shy.name, seed=0, permutations=(2, 8))],
                     result="")
    outcome = run_group(audit, log=lambda line: None)
    assert outcome["runs"] == [] and outcome["executed"] == []
    audits = {a["method"]: a for a in outcome["audits"]}
    assert audits["vanilla"]["clean"] is True, audits["vanilla"]
    assert audits["vanilla"]["rule"] == "exact"  # auto, on a machine without GPUs
    assert audits["vanilla"]["evidence"] == ("clean: predictions of the real run and under "
                                             "gold permutations 5 and 9 agree exactly on all "
                                             "2000 test examples")
    assert audits[thief.name]["clean"] is False
    assert audits[thief.name]["rule"] == "follows_labels"
    assert audits[thief.name]["evidence"].startswith("label leak: predictions ")
    assert audits[thief.name]["evidence"].endswith("the method's output follows the gold labels")
    assert audits[thief.name]["isolation"] == ["builtin"]
    # Honest under permuted labels only: the permuted runs agree, the real run does not.
    assert audits[shy.name]["clean"] is False, audits[shy.name]
    assert audits[shy.name]["evidence"].startswith(
        "label leak: predictions of the real run and under gold permutation 2 differ on ")
    # The real store still holds only the real runs.
    assert len({p.parent for p in store.glob("*/*/COMPLETE")}) == 5
    # An audit of a run that is not stored yet is refused (it would run knowing it is one).
    later = audit.model_copy(update={"canaries": [Canary(method="vanilla", seed=1,
                                                         permutations=(5, 9))]})
    with pytest.raises(InputError, match="was not in the store before its audit"):
        run_group(later, log=lambda line: None)


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
    # The real runs' groups carried no audit; the audit's group no real run, after them.
    groups = [json.loads(p.read_text()) for p in sorted((out / "work").glob("group-*.json"))]
    # (the reuse check's group, if the shared cache fed a run, recomputes apart)
    groups = [g for g in groups if not g.get("rerun_into")]
    assert sorted((bool(g["seeds"]), bool(g.get("canaries"))) for g in groups) == [
        (False, True), (True, False)]
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
