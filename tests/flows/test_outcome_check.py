"""The runs a group reports must be exactly the runs the parent asked for (flows/campaign.py
``Campaign.check_outcome``): an allow-list between the workers and the analysis, so neither a
plugin that names itself like another arm on a worker nor an outcome listing other runs can add
rows to an arm (found by an independent attacker review, 2026-12-03)."""
from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import pytest

from flows.campaign import Campaign, GroupOutcomeError
from flows.commands.validate_cmd import DEMO_PLAN
from methods.jail import jail_available

MICRO = DEMO_PLAN.parent / "micro-ci.yaml"


class FakeStore:
    """A run store of hash -> spec (only what the check reads)."""

    runs: dict[str, SimpleNamespace] = {}

    def __init__(self, path, pins=None) -> None:
        pass

    def find(self, run_hash):
        spec = self.runs.get(run_hash)
        return None if spec is None else SimpleNamespace(spec=spec)


@pytest.fixture
def campaign(tmp_path, monkeypatch):
    import transfer.store

    monkeypatch.setattr(transfer.store, "RunStore", FakeStore)
    prepared = Campaign.prepare(MICRO, tmp_path / "out", tmp_path / "store")
    RESOLVED.clear()
    RESOLVED.update({info.label: info.params for info in prepared.methods.values()})
    CODE.clear()
    CODE.update({info.label: info.code.fingerprint for info in prepared.methods.values()})
    return prepared


@functools.cache
def synthetic_fingerprint() -> str:
    from flows.context import load_dataset

    return load_dataset(None).fingerprint


RESOLVED: dict[str, dict] = {}  # a method's params as the campaign resolved them
CODE: dict[str, str] = {}  # a method's code fingerprint as the campaign resolved it


@functools.cache
def worker_hparams() -> dict:
    """The training settings a worker stores for micro-ci's groups, computed the worker's way
    (``flows.worker`` builds its context with ``arm_context(..., group.engine)``)."""
    from flows.context import arm_context
    from flows.plan import load_plan

    compute = load_plan(MICRO).compute
    engine = {"ds_config": compute.ds_config, "precision": compute.precision}
    return arm_context("micro", None, None, engine).hparams()


def spec(label, seed, rung="m1", ladder="micro", dataset=None, params=None, hparams=None,
         unjailed=False, code=None, jailed=None):
    arm = label if label in ("weak", "ceiling") else "student"
    return SimpleNamespace(label=label, seed=seed, rung=rung, ladder=ladder, arm=arm,
                           dataset="other" if dataset else "synthetic",
                           dataset_fingerprint=dataset or synthetic_fingerprint(),
                           method_params=RESOLVED.get(label, {}) if params is None else params,
                           hparams=worker_hparams() if hparams is None else hparams,
                           unjailed=unjailed, jailed=jailed,
                           method_fingerprint=None if arm != "student" else code or CODE[label])


def reported(runs: dict[str, SimpleNamespace]) -> list[str]:
    FakeStore.runs = runs
    return list(runs)


def test_exactly_the_runs_asked_for_pass(campaign):
    group = campaign.groups([0, 1], ["aux_conf"])[-1]
    runs = {f"h{seed}{arm}": spec(arm, seed, rung=group.rung)
            for seed in (0, 1) for arm in ("weak", "ceiling", "vanilla", "aux_conf")}
    campaign.check_outcome(group, reported(runs))


@pytest.mark.parametrize("change, expected", [
    # a second student run under a rival's name (a namesake plugin on the worker)
    (lambda r, g: r.update(extra=spec("aux_conf", 0, rung=g.rung)), "unexpected"),
    # a plugin's own runs filed under another arm's name instead of its own
    (lambda r, g: r.update(h0aux_conf=spec("vanilla", 0, rung=g.rung)), "unexpected"),
    # a run of another seed than the group's
    (lambda r, g: r.update(h1aux_conf=spec("aux_conf", 7, rung=g.rung)), "unexpected"),
    # a run the group was asked for is not reported
    (lambda r, g: r.pop("h1ceiling"), "missing"),
    # a run of another rung (or ladder)
    (lambda r, g: r.update(h0weak=spec("weak", 0, rung="m0" if g.rung != "m0" else "m1")),
     "not of this group"),
    # a run of another dataset
    (lambda r, g: r.update(h0ceiling=spec("ceiling", 0, rung=g.rung, dataset="f" * 64)),
     "not of this group's"),
    # a method's run with params other than the plan's
    (lambda r, g: r.update(h1aux_conf=spec("aux_conf", 1, rung=g.rung, params={"x": 1})),
     "params other than"),
    # the baseline trained for fewer epochs than the plan says (group settings changed on the
    # way to the worker, e.g. by a writer of the pool's Prefect server)
    (lambda r, g: r.update(h0vanilla=spec("vanilla", 0, rung=g.rung, hparams={
        **worker_hparams(), "epochs": 1})), "trained with epochs=1"),
    # a run filed under a method's name but made by other code (a plugin that names itself
    # like another plan entry on the worker: tests/security/test_method_code.py)
    (lambda r, g: r.update(h0aux_conf=spec("aux_conf", 0, rung=g.rung, code="f" * 64)),
     "other code than the parent resolved"),
    # a method run outside the jail the plan requires
    (lambda r, g: r.update(h1aux_conf=spec("aux_conf", 1, rung=g.rung, unjailed=True)),
     "outside the jail"),
])
def test_anything_else_is_refused_naming_the_group(campaign, change, expected):
    group = campaign.groups([0, 1], ["aux_conf"])[-1]
    runs = {f"h{seed}{arm}": spec(arm, seed, rung=group.rung)
            for seed in (0, 1) for arm in ("weak", "ceiling", "vanilla", "aux_conf")}
    change(runs, group)
    with pytest.raises(GroupOutcomeError) as err:
        campaign.check_outcome(group, reported(runs))
    assert expected in str(err.value) and f"rung {group.rung} seeds [0, 1]" in str(err.value)


def test_params_equal_only_to_python_are_refused(campaign):
    """``True == 1 == 1.0`` in Python; a run whose params say ``true`` where the plan resolved
    ``1`` has another run hash and another meaning: compared as canonical JSON."""
    campaign.methods["aux_conf"] = dataclasses.replace(
        campaign.methods["aux_conf"], params={**RESOLVED["aux_conf"], "a_max": 1})
    group = campaign.groups([0], ["aux_conf"])[0]
    runs = {f"h0{arm}": spec(arm, 0, rung=group.rung) for arm in ("weak", "ceiling", "vanilla")}
    runs["h0aux_conf"] = spec("aux_conf", 0, rung=group.rung,
                              params={**RESOLVED["aux_conf"], "a_max": True})
    with pytest.raises(GroupOutcomeError, match="params other than"):
        campaign.check_outcome(group, reported(runs))


def test_a_listed_run_missing_from_the_store_is_refused(campaign):
    group = campaign.groups([0], ["aux_conf"])[0]
    FakeStore.runs = {}
    with pytest.raises(GroupOutcomeError, match="not in the store"):
        campaign.check_outcome(group, ["0123456789abcdef0123"])


def test_unjailed_runs_pass_where_the_plan_opted_out_of_the_jail(campaign):
    campaign.plan = campaign.plan.model_copy(
        update={"jail": campaign.plan.jail.model_copy(update={"mode": "off"})})
    group = campaign.groups([0], ["aux_conf"])[0]
    runs = {f"h0{arm}": spec(arm, 0, rung=group.rung, unjailed=arm == "aux_conf")
            for arm in ("weak", "ceiling", "vanilla", "aux_conf")}
    campaign.check_outcome(group, reported(runs))


@pytest.mark.parametrize("pinned, expected", [
    ({"label": "vanilla"}, "names itself 'aux_conf' on this worker, not 'vanilla'"),
    ({"resolved": {"a_max": True}}, "resolves its params to"),
    ({"fingerprint": "f" * 64}, "is not the code the campaign was prepared with"),
])
def test_a_worker_refuses_a_method_it_resolves_otherwise_than_the_parent(campaign, tmp_path,
                                                                          pinned, expected):
    """The worker side of the same allow-list (``flows.worker.GroupMethod.check``): before any
    run, each method's name, params and code on the worker must be the parent's."""
    from flows.worker import run_group
    from w2s_common.errors import InputError

    group = campaign.groups([0], ["aux_conf"])[0]
    method = group.methods[1].model_copy(update=pinned)
    group = group.model_copy(update={"methods": [group.methods[0], method],
                                     "store": str(tmp_path / "worker-store"),
                                     "result": str(tmp_path / "result.json")})
    with pytest.raises(InputError, match=expected):
        run_group(group)
    assert not list((tmp_path / "worker-store").rglob("COMPLETE"))


@pytest.mark.skipif(not jail_available(), reason="no jail builder works here")
def test_a_plan_that_jails_builtins_admits_only_runs_made_in_their_own_jail(tmp_path,
                                                                            monkeypatch):
    """``jail: {builtins: jail}``: every built-in student run must say it ran in a jail of its
    own (``RunSpec.jailed``, part of its key), so a worker whose group settings were changed on
    the way (``builtins: in_process``) cannot slip in runs made beside the labels (attacker
    review 2026-12-05, F2/F3)."""
    import transfer.store

    monkeypatch.setattr(transfer.store, "RunStore", FakeStore)
    plan = tmp_path / "plan.yaml"
    plan.write_text(MICRO.read_text() + "jail: {builtins: jail}\n")
    jailed = Campaign.prepare(plan, tmp_path / "out", tmp_path / "store")
    RESOLVED.update({info.label: info.params for info in jailed.methods.values()})
    CODE.update({info.label: info.code.fingerprint for info in jailed.methods.values()})
    group = jailed.groups([0, 1], ["aux_conf"])[-1]
    # The candidate's runs in jails of their own; the reference baseline's (the pipeline's own
    # code) in the worker.
    runs = {f"h{seed}{arm}": spec(arm, seed, rung=group.rung,
                                  jailed=True if arm == "aux_conf" else None)
            for seed in (0, 1) for arm in ("weak", "ceiling", "vanilla", "aux_conf")}
    jailed.check_outcome(group, reported(runs))
    runs_here = {**runs, "h1aux_conf": spec("aux_conf", 1, rung=group.rung)}
    with pytest.raises(GroupOutcomeError, match="\\(aux_conf\\) ran its built-in method in "
                                                "the worker's process"):
        jailed.check_outcome(group, reported(runs_here))
