"""Everything a validation checks before any compute, beyond the plan's own schema.

- the plan's budget: the arms it may execute, against ``budget.max_arms``;
- the engine settings against this machine: the DeepSpeed config exists and is valid, the
  precision is one the engine can run here, ``compute.processes`` fits the devices or cores,
  and fits the device slots (``W2S_DEVICE_SLOTS``);
- the executor: for ``compute.executor: pool`` the Prefect server, work pool and deployment
  (``flows.pool``); the machine checks above then run on each worker instead;
- every method on every rung: a built-in method that needs what a rung lacks (label tokens for
  ``zero_shot_prior``, an intermediate model for ``bootstrap``) is refused;
- (and, first, in ``Campaign.prepare``) the environment variables the run reads
  (``flows.environment``).

Each problem raises one ``InputError`` naming the plan file, the line and field it is about,
and what was expected. Plugins are described in the jail and cannot be asked about a rung here;
they still fail at run time with ``MethodUnsupported`` (one line, exit 2).
"""
from __future__ import annotations

from typing import Any

from w2s_common.errors import InputError


def check_before_compute(plan: Any, ladder: Any, rungs: list[str]) -> None:
    """Run the checks that need the loaded plan and ladder (``Campaign.prepare`` checks the
    environment first); raise the first problem as an InputError located in the plan."""
    check_budget(plan, len(rungs))
    check_engine(plan, ladder)
    check_methods_on_rungs(plan, ladder, rungs)
    check_executor(plan)


# --- budget --------------------------------------------------------------------------------

def planned_arms(plan: Any, n_rungs: int) -> tuple[int, int, int]:
    """``(arms per seed, arms of the first look, arms of the whole plan)`` when no method is
    decided early: per seed and (rung, dataset) the weak and ceiling arms, the baseline and one
    student arm per candidate and per control; and the label-leak audit's runs (run in the
    first look: :func:`audit_arms`)."""
    per_seed = 3 + len(plan.methods) + len(plan.controls)
    cells = n_rungs * len(plan.datasets)
    audit = audit_arms(plan, n_rungs)
    return (per_seed, cells * plan.seeds.initial * per_seed + audit,
            cells * plan.seeds.max * per_seed + audit)


def audit_arms(plan: Any, n_rungs: int) -> int:
    """The student runs of the label-leak audit (``flows.plan.Audit``): per method and the
    baseline, its audited cells (at most every cell) x 2 permutations (3 with
    ``check_determinism``)."""
    if plan.audit.mode == "off":
        return 0
    all_cells = n_rungs * len(plan.datasets) * plan.seeds.max
    runs = 3 if plan.audit.check_determinism else 2
    return (1 + len(plan.methods)) * min(plan.audit.cells, all_cells) * runs


def check_budget(plan: Any, n_rungs: int) -> None:
    per_seed, first, total = planned_arms(plan, n_rungs)
    budget = plan.budget.max_arms
    if total <= budget:
        return
    n_controls = len(plan.controls)
    controls = f", {n_controls} control(s)" if n_controls else ""
    audit = audit_arms(plan, n_rungs)
    audited = f" + {audit} label-leak audit arms" if audit else ""
    shape = (f"{n_rungs} rung(s) x {len(plan.datasets)} dataset(s) x {{seeds}} seeds x "
             f"{per_seed} arms per seed (weak, ceiling, baseline, {len(plan.methods)} "
             f"candidate(s){controls}){audited}")
    if first > budget:
        plan._raise(("seeds", "initial"),
                    f"the first look alone executes {first} arms "
                    f"({shape.format(seeds=plan.seeds.initial)}), over budget.max_arms = "
                    f"{budget}; lower seeds.initial or raise budget.max_arms")
    plan._raise(("seeds", "max"),
                f"the plan may execute up to {total} arms ({shape.format(seeds=plan.seeds.max)}"
                f"), over budget.max_arms = {budget}; lower seeds.max or raise budget.max_arms")


# --- engine against this machine ----------------------------------------------------------------

def check_engine(plan: Any, ladder: Any) -> None:
    from flows import machine
    from flows.context import engine_config
    from transfer.engine.config import load_ds_file

    compute = plan.compute
    try:
        load_ds_file(compute.ds_config)
    except InputError as err:
        plan._raise(("compute", "ds_config"), str(err) if err.path else err.message)
    try:
        engine_config(ladder, {"ds_config": compute.ds_config, "precision": compute.precision})
    except InputError as err:
        plan._raise(("compute",), f"the ladder's training settings with this compute section "
                                  f"are invalid: {err}")
    if compute.executor != "local":
        return  # the groups run on the pool's workers, which check their own machine
    problem = machine.precision_problem(compute.precision)
    if problem:
        plan._raise(("compute", "precision"), problem)
    problem = processes_problem(compute.processes)
    if problem:
        plan._raise(("compute", "processes"), problem)


def check_executor(plan: Any) -> None:
    """The pool executor's server, pool and deployment (``flows.pool.check_pool``); a group on
    several nodes needs a pool that starts one pod per node."""
    if plan.compute.executor == "pool":
        from flows.pool import check_pool

        check_pool(plan)
    elif plan.compute.nodes > 1:
        plan._raise(("compute", "nodes"),
                    f"{plan.compute.nodes} nodes per group need executor: pool on a work pool "
                    "whose job template starts one pod per node "
                    "(infra/k8s/multinode-job-template.json); the local executor runs every "
                    "group on this machine")


def processes_problem(processes: int) -> str | None:
    """Why ``processes`` data-parallel ranks per run cannot run here, or None.

    With GPUs each rank needs its own device; on the CPU each rank needs its own core (more
    ranks than cores only time-slice one another and stall gloo's collectives). Also
    ``W2S_DEVICE_SLOTS``: a run holds one slot per rank, so more ranks than slots never start.
    """
    from flows.machine import cuda_devices, usable_cpus
    from flows.slots import slot_count

    gpus = cuda_devices()
    if gpus and processes > gpus:
        return (f"{processes} processes per run need {processes} GPUs; this machine has "
                f"{gpus} visible")
    if not gpus and processes > usable_cpus():
        return (f"{processes} processes per run need {processes} CPU cores; this process may "
                f"use {usable_cpus()}")
    slots = slot_count()
    if slots is not None and processes > slots:
        return (f"{processes} processes per run need {processes} device slots; "
                f"W2S_DEVICE_SLOTS allows {slots}")
    return None


# --- methods on rungs ---------------------------------------------------------------------------

def check_methods_on_rungs(plan: Any, ladder: Any, rungs: list[str]) -> None:
    """Ask every built-in method whether it can run on every rung of the plan: in this process,
    or in the jail where the plan says ``jail: {builtins: jail}`` (no built-in's code runs here
    then)."""
    from methods.plugins import PluginMethod, unsupported_in_jail
    from methods.policy import jail_settings
    from methods.registry import builtin_names, resolve_with_params
    from transfer.arms import rung_facts

    entries = [(("baseline",), plan.baseline, {})] + [
        (("methods", index, "name"), entry.name, entry.params)
        for index, entry in enumerate(plan.methods)]
    facts = [rung_facts(ladder, ladder.rung(name)) for name in rungs]
    for loc, name, params in entries:
        if name.strip() not in builtin_names():
            continue  # a plugin is only ever run (and described) in the jail
        with jail_settings(plan.jail):
            method, parsed = resolve_with_params(name, params)
            if isinstance(method, PluginMethod):
                reasons = unsupported_in_jail(method, parsed, facts)
            else:
                ask = getattr(method, "unsupported_reason", None)
                reasons = [ask(rung, parsed) if ask is not None else None for rung in facts]
        for rung, reason in zip(facts, reasons, strict=True):
            if reason:
                plan._raise(loc, f"method {name} cannot run on rung {rung.rung} of ladder "
                                 f"{rung.ladder}: {reason}")
