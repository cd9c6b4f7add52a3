"""`w2s-transfer audit`: the label-leak canary on the real arms for one method.

Exit codes: 0 clean, 1 flagged (the evidence is printed), 2 bad input.
"""
from __future__ import annotations

from pathlib import Path

import typer

from flows.commands._errors import user_errors

EXIT_FLAGGED = 1


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_command(
        method: str = typer.Option(..., help="method to audit (registry name or module:attr)"),
        param: list[str] = typer.Option(None, "--param", help="method parameter key=value"),
        data: Path = typer.Option(None, help="dataset directory; the built-in synthetic task "
                                  "by default"),
        ladder: str = typer.Option("micro", help="ladder name or YAML path"),
        rung: str = typer.Option(None, help="rung name (default: the ladder's first rung)"),
        seed: int = typer.Option(0, min=0, help="run seed, held fixed across permutations"),
        store: Path = typer.Option(None, help="run store for the real weak run "
                                   "(default $W2S_CACHE_DIR/store)"),
        check_determinism: bool = typer.Option(
            False, help="also rerun the first permutation, to tell a nondeterministic method "
            "from a leak"),
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
            clean = _audit(method, param or [], data, ladder, rung, seed, store,
                           check_determinism, unjailed)
        if not clean:
            raise typer.Exit(EXIT_FLAGGED)


def _audit(method, params, data, ladder, rung, seed, store, check_determinism,
           unjailed) -> bool:
    from flows.context import arm_context, method_function
    from methods.audit import audit_label_leak
    from transfer.canary import run_with_permuted_gold
    from transfer.errors import InputError
    from transfer.sealed import MethodUnsupported

    ctx = arm_context(ladder, data, store)
    rung_name = rung if rung is not None else ctx.ladder.rungs[0].name
    ctx.ladder.rung(rung_name)  # unknown rung: a clear error before any compute
    jail = {"mode": "off" if unjailed else "required"}
    name, params_dict, fn = method_function(method, params, jail=jail)
    isolations: list[str] = []

    def permuted_run(permutation_seed: int):
        _, _, fresh = method_function(method, params, jail=jail)  # resolved afresh each time
        probs = run_with_permuted_gold(ctx, rung_name, seed, fresh, permutation_seed,
                                       method=name, method_params=params_dict)
        isolations.extend(fresh.isolation)
        return probs

    try:
        result = audit_label_leak(permuted_run, check_determinism=check_determinism)
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
    print(f"{verdict} {name} ladder={ctx.ladder.name} rung={rung_name} seed={seed} "
          f"isolation={isolation}: {evidence}")
    return clean
