"""The allow-list a group's outcome must pass (``Campaign.check_outcome``): the runs a worker
reports are exactly the runs its group asked for, made by the code, params, training settings
and isolation the parent resolved."""
from __future__ import annotations

from typing import Any

from flows.worker import ArmGroup, canonical_json
from w2s_common.errors import InputError


class GroupOutcomeError(InputError):
    """A group reported runs other than the ones it was asked for (exit 2)."""


def expected_students(campaign: Any, group: ArmGroup) -> dict[str, tuple[str, str]]:
    """Results name -> (canonical JSON of its params, code fingerprint) of every student
    arm of ``group``, as the parent resolved them: a method's from ``prepare``, a
    control's from the baseline's (``transfer.arms.control_run_identity``)."""
    from transfer.arms import control_run_identity

    out: dict[str, tuple[str, str]] = {}
    for ref in group.methods:
        info = campaign.methods[ref.name]
        out[info.label] = (canonical_json(info.params), info.code.fingerprint)
    base = campaign.methods[campaign.plan.baseline]
    for control in group.controls:
        label, params, fingerprint = control_run_identity(
            control.spec(), base.label, base.params, base.code.fingerprint)
        out[label] = (canonical_json(params), fingerprint)
    return out


def jailed_students(campaign: Any, group: ArmGroup) -> set[str]:
    """Results names of ``group``'s student arms whose code is a built-in the plan jails
    (``jail: {builtins: jail}``): a method's, and a control's when its baseline is one."""
    labels = {campaign.methods[ref.name].label for ref in group.methods
              if campaign.methods[ref.name].jailed_builtin}
    base = campaign.methods[campaign.plan.baseline]
    if base.jailed_builtin:
        labels |= set(expected_students(campaign, group)) - {
            campaign.methods[ref.name].label for ref in group.methods}
    return labels


def check_outcome(campaign: Any, group: ArmGroup, runs: list[str]) -> None:
    """The runs a group reports must be exactly the runs it was asked for: per seed one
    weak, one ceiling and one student run of each method and control the parent resolved
    (by the results name the parent saw, with the params and the code fingerprint it
    resolved for that name: ``expected_students``), at the group's rung, with the plan's
    training settings and (unless the plan says ``jail: off``) jailed, a built-in's run in
    a jail of its own where the plan says ``jail: {builtins: jail}``, each in the store.
    An allow-list, so a plugin that names itself like another entry on a worker (a jailed
    describe there can differ from the parent's) or an outcome listing other runs cannot
    add rows to anyone's arm.

    Raises:
        GroupOutcomeError: naming the group and the first run or arm that is off.
    """
    from transfer.store import RunStore

    students = expected_students(campaign, group)
    jailed = jailed_students(campaign, group)
    expected = ["weak", "ceiling", *students]
    wanted = sorted((seed, arm) for seed in group.seeds for arm in expected)
    store, got = RunStore(campaign.store), []
    where = f"rung {group.rung} seeds {group.seeds}"
    hparams = training_settings(campaign, group.engine.overrides())
    for run_hash in runs:
        record = store.find(run_hash)
        if record is None:
            raise GroupOutcomeError(f"{where}: run {run_hash} is not in the store {campaign.store}")
        spec = record.spec
        if spec.rung != group.rung or spec.ladder != campaign.ladder.name:
            raise GroupOutcomeError(f"{where}: run {run_hash} is of {spec.ladder} rung "
                                    f"{spec.rung}, not of this group")
        if spec.dataset_fingerprint != campaign.dataset_fingerprint(group.data):
            raise GroupOutcomeError(f"{where}: run {run_hash} is of dataset {spec.dataset}, "
                                    "not of this group's")
        if spec.arm == "student" and spec.label in students:
            params, fingerprint = students[spec.label]
            if canonical_json(spec.method_params) != params:
                raise GroupOutcomeError(f"{where}: run {run_hash} of {spec.label} has params "
                                        "other than the ones the plan resolved to")
            if spec.method_fingerprint != fingerprint:
                raise GroupOutcomeError(
                    f"{where}: run {run_hash} of {spec.label} was made by other code than "
                    "the parent resolved under that name (another entry's, or changed "
                    "code); a method that names itself like another arm on the worker is "
                    "refused")
        if spec.hparams != hparams:
            key = next(k for k in sorted({*spec.hparams, *hparams})
                       if spec.hparams.get(k) != hparams.get(k))
            raise GroupOutcomeError(f"{where}: run {run_hash} ({spec.label}) was trained "
                                    f"with {key}={spec.hparams.get(key)!r}, not the plan's "
                                    f"{hparams.get(key)!r}")
        if spec.unjailed and campaign.plan.jail.mode != "off":
            raise GroupOutcomeError(f"{where}: run {run_hash} ({spec.label}) ran its method "
                                    "outside the jail, which the plan requires")
        if spec.arm == "student" and spec.label in jailed \
                and getattr(spec, "jailed", None) is not True:
            raise GroupOutcomeError(f"{where}: run {run_hash} ({spec.label}) ran its "
                                    "built-in method in the worker's process; the plan "
                                    "jails built-ins (jail: {builtins: jail})")
        got.append((spec.seed, spec.label))
    if sorted(got) != wanted:
        extra = sorted(set(got) - set(wanted)) or [
            x for x in sorted(got) if sorted(got).count(x) > 1]
        missing = sorted(set(wanted) - set(got))
        detail = (f"unexpected (seed, arm) {extra[0]}" if extra
                  else f"missing (seed, arm) {missing[0]}")
        raise GroupOutcomeError(f"{where}: the runs the group reported are not the runs it "
                                f"was asked for ({detail}); a method that names itself "
                                "like another arm on the worker is refused")

def training_settings(campaign: Any, engine: dict[str, Any]) -> dict[str, Any]:
    """The training settings every run of a group with these engine overrides stores (as
    ``transfer.arms.ArmContext.hparams`` computes them on the worker)."""
    from flows.context import engine_config

    return engine_config(campaign.ladder, engine).model_dump(mode="json", exclude={"seed"})

