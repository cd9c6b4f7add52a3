"""`w2s-transfer audit`: the label-leak canary on the real arms for one method.

Exit codes: 0 clean, 1 flagged (the evidence is printed), 2 bad input.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from flows.commands._errors import user_errors
from flows.commands._paths import nonempty_path
from w2s_common.names import MAX_SEED

if TYPE_CHECKING:
    from flows.plan import Plan

EXIT_FLAGGED = 1


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_command(
        method: str = typer.Option(..., help="method to audit (registry name or module:attr)"),
        param: list[str] = typer.Option(None, "--param", help="method parameter key=value"),
        plan: str = typer.Option(None, help="audit as this plan runs the method: its ladder, "
                                 "first dataset (or --data), compute and jail settings"),
        data: Path = typer.Option(None, help="dataset directory; the built-in synthetic task "
                                  "by default", parser=nonempty_path),
        ladder: str = typer.Option(None, help="ladder name or YAML path (default micro)"),
        rung: str = typer.Option(None, help="rung name (default: every rung of --plan, else "
                                 "the ladder's first rung)"),
        seed: int = typer.Option(None, min=0, max=MAX_SEED,
                                 help="run seed, held fixed across permutations (default: with "
                                 "--plan one of its seeds drawn at random, else 0)"),
        store: Path = typer.Option(None, help="run store for the real weak run "
                                   "(default $W2S_CACHE_DIR/store)", parser=nonempty_path),
        check_determinism: bool = typer.Option(
            False, help="also rerun the first permutation, to tell a nondeterministic method "
            "from a leak"),
        rule: str = typer.Option(
            None, help="auto (exact without GPUs, follows_labels with them), exact or "
            "follows_labels (docs/methods.md); default: the plan's audit.rule, else auto"),
        unjailed: bool = typer.Option(
            False, help="run plugin code outside the jail (the audit then flags any plugin: it "
            "cannot vouch for code that could reach the labels on disk)"),
    ) -> None:
        """Run a student arm under two random permutations of the gold labels (train_unlabel and
        test; the weak teacher's labels held fixed) and flag the method if its test predictions
        differ or if its untrusted code ran outside the jail: exit 0 clean, 1 flagged, 2 bad
        input. Each permutation resolves the method afresh, in the jail for plugins, which see
        the same inputs in an audit as in a real run."""
        with user_errors():
            from flows.plan import load_plan

            loaded = load_plan(plan) if plan is not None else None
            ctx, jail = audit_context(loaded, ladder, data, store, unjailed)
            rungs, seed = audit_cells(loaded, ctx.ladder, rung, seed)
            rule, alpha = audit_rule(loaded, rule)
            # Every cell is audited (a method sees its rung and seed, and could read labels
            # only where an audit does not look); flagged if any is.
            results = [_audit(ctx, jail, method, param or [], name, seed, check_determinism,
                              rule, alpha) for name in rungs]
            clean = all(results)
        if not clean:
            raise typer.Exit(EXIT_FLAGGED)


def audit_context(plan: Plan | None, ladder: str | None, data: Path | None,
                  store: Path | None, unjailed: bool = False):
    """The arm context and jail settings an audit runs with: a plan's own (ladder, first dataset
    unless ``data`` names one, the engine settings its campaign passes to every group, its jail)
    so that an audited run sees exactly what a run of that plan sees; else the options'.

    Raises:
        InputError: ``--plan`` with ``--ladder``, a bad plan, ladder or dataset.
    """
    from flows.context import arm_context
    from w2s_common.errors import InputError

    jail: dict = {"mode": "required"}
    overrides = None
    if plan is not None:
        if ladder is not None:
            raise InputError("give either --plan or --ladder (the plan names its ladder)",
                             field="--ladder")
        ladder = plan.ladder_ref()
        data = data if data is not None else plan.dataset_paths()[0]
        overrides = {"ds_config": plan.compute.ds_config, "precision": plan.compute.precision}
        jail = plan.jail.model_dump(mode="json")
    if unjailed:
        jail = {**jail, "mode": "off"}
    return arm_context(ladder or "micro", data, store, overrides), jail


def audit_cells(plan: Plan | None, ladder, rung: str | None, seed: int | None
                ) -> tuple[list[str], int]:
    """The rungs to audit and the seed: with a plan, its rungs (``--rung`` must be one of them)
    and, unless given, one of its seeds drawn at random (``secrets``: a method cannot predict
    it); without one, ``--rung`` or the ladder's first rung, and seed 0.

    Raises:
        InputError: ``--rung`` not among the plan's rungs.
    """
    import secrets

    from w2s_common.errors import InputError

    if plan is None:
        return [rung if rung is not None else ladder.rungs[0].name], seed or 0
    rungs = [r.name for r in ladder.rungs] if plan.rungs == "all" else list(plan.rungs)
    if rung is not None and rung not in rungs:
        raise InputError(f"rung {rung!r} is not one the plan runs ({', '.join(rungs)})",
                         field="--rung")
    return ([rung] if rung is not None else rungs,
            seed if seed is not None else secrets.randbelow(plan.seeds.max))


def audit_rule(plan: Plan | None, rule: str | None) -> tuple[str, float]:
    """The rule (``auto``, ``exact`` or ``follows_labels``; ``transfer.canary.audit_labels``
    resolves auto) and the alpha of the follows_labels test: ``--rule``, else the plan's
    ``audit``, else auto.

    Raises:
        InputError: an unknown ``--rule``.
    """
    from flows.plan import Audit
    from w2s_common.errors import InputError

    settings = plan.audit if plan is not None else Audit()
    rule = rule if rule is not None else settings.rule
    if rule not in ("auto", "exact", "follows_labels"):
        raise InputError(f"expected auto, exact or follows_labels, got {rule!r}", field="--rule")
    return rule, settings.alpha


def _audit(ctx, jail, method, params, rung, seed, check_determinism, rule="auto",
           alpha=0.001) -> bool:
    from methods.audit import audit_label_leak
    from methods.resolve import method_function
    from transfer.canary import audit_labels, run_with_permuted_gold
    from transfer.sealed import MethodUnsupported
    from w2s_common.errors import InputError

    rung_name = rung if rung is not None else ctx.ladder.rungs[0].name
    ctx.ladder.rung(rung_name)  # unknown rung: a clear error before any compute
    name, params_dict, fn = method_function(method, params, jail=jail)
    isolations: list[str] = []

    def permuted_run(permutation_seed: int):
        _, _, fresh = method_function(method, params, jail=jail)  # resolved afresh each time
        probs = run_with_permuted_gold(ctx, rung_name, seed, fresh, permutation_seed,
                                       method=name, method_params=params_dict)
        isolations.extend(fresh.isolation)
        return probs

    try:
        rule, labels_for = audit_labels(ctx.task, rule)
        result = audit_label_leak(permuted_run, check_determinism=check_determinism,
                                  labels_for=labels_for, alpha=alpha)
    except MethodUnsupported as err:
        raise InputError(f"method {name} cannot run on rung {rung_name} of ladder "
                         f"{ctx.ladder.name}: {err}", field="--method") from None
    isolation = ", ".join(sorted(set(isolations))) or "none"
    clean, evidence = result.clean, result.evidence
    if clean and "unjailed" in isolations:
        clean = False
        evidence = ("untrusted code ran outside the jail: the canary sees only labels that reach "
                    "it through the pipeline, not files on disk or regenerated data")
    verdict = "CLEAN" if clean else "FLAGGED"
    shown_rule = "" if rule == "exact" else f" rule={rule}"
    print(f"{verdict} {name} ladder={ctx.ladder.name} rung={rung_name} seed={seed} "
          f"isolation={isolation}{shown_rule}: {evidence}")
    return clean
