"""Promotion guards: facts about the runs that block a promotion whatever the statistics say.

The statistics decide whether a gain is real; these guards decide whether the evidence may be
trusted enough to act on it. A method is never promoted when:

- its code, or the baseline's, ran outside the jail (``jail: {mode: off}``);
- at the production rung, the ceiling does not beat the weak model (the experiment measured no
  weak-to-strong gap, so no gain over the baseline there means anything);
- at the production rung, its PGR is undefined;
- a baseline, weak or ceiling run it is compared with is inconsistent with itself: the accuracy
  stored in its metrics differs from the one its (hash-verified) predictions give;
- the evidence at the production rung comes from the built-in synthetic task with its public
  seed, whose labels any method can regenerate from a copy of the generator (set
  ``W2S_SYNTHETIC_SECRET`` to salt it, or validate on your own data);
- the label-leak audit inside the validation (``flows.plan.Audit``) flagged it or the
  baseline, or (the audit on) found no audit of it: its predictions followed a permutation of
  the gold labels, so its gain may be read off the labels.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from methods.runner import weakest
from stats.verdict_model import LabelAudit, MethodVerdict, Verdict
from transfer.controls import is_control_label

# Stored and re-derived accuracies are the same float computed the same way; any difference
# means the record was written by something other than the pipeline.
ACCURACY_TOLERANCE = 1e-12
# The dataset name of the unsalted built-in synthetic task (transfer.data.synthetic.TASK_NAME).
PUBLIC_SYNTHETIC = "synthetic"


def isolation_by_arm(records: Iterable[Any]) -> dict[str, str]:
    """The weakest isolation of each student arm's runs (``builtin``, ``jail``, ``unjailed``).

    Args:
        records: ``transfer.store.RunRecord`` objects of a campaign.
    """
    seen: dict[str, list[str]] = {}
    for record in records:
        if record.spec.arm != "student":
            continue
        isolation = "unjailed" if record.spec.unjailed else \
            record.metrics.get("isolation", "builtin")
        seen.setdefault(record.spec.label, []).append(isolation)
    return {arm: weakest(values) for arm, values in seen.items()}  # type: ignore[arg-type]


def inconsistent_runs(records: Iterable[Any]) -> dict[str, list[str]]:
    """Arm label -> runs whose stored accuracy, n or predicted labels disagree with their own
    (hash-verified) predictions (``RunRecord.checked_accuracy``)."""
    from transfer.store import StoreIntegrityError

    bad: dict[str, list[str]] = {}
    for record in records:
        try:
            record.checked_accuracy(ACCURACY_TOLERANCE)
        except StoreIntegrityError as err:
            bad.setdefault(record.spec.label, []).append(
                f"{record.spec.arm} run {record.spec.run_hash()} (seed {record.spec.seed}, rung "
                f"{record.spec.rung}): {err.message}")
    return bad


def perfect_runs(records: Iterable[Any]) -> dict[str, list[str]]:
    """Student arm label -> its runs with 100% test accuracy where no ceiling run of the same
    rung, dataset and seed reached it (what reading the test labels looks like)."""
    ceiling = {(r.spec.rung, r.spec.dataset, r.spec.seed): r.metrics.get("accuracy")
               for r in records if r.spec.arm == "ceiling"}
    found: dict[str, list[str]] = {}
    for record in records:
        spec = record.spec
        if spec.arm != "student" or record.metrics.get("accuracy") != 1.0:
            continue
        if ceiling.get((spec.rung, spec.dataset, spec.seed)) == 1.0:
            continue
        found.setdefault(spec.label, []).append(f"its run at rung {spec.rung} seed {spec.seed}")
    return found


def _block(entry: MethodVerdict, reason: str) -> None:
    if entry.promote:
        entry.promote = False
    if reason not in entry.reasons:
        entry.reasons.append(reason)


def untrusted_baseline(plan: Any) -> str | None:
    """Why the plan's baseline is code the pipeline does not trust, or None: a plugin or an
    ``external`` command, or, under ``jail: {builtins: jail}``, a built-in other than the
    pipeline's own (``methods.builtin_names.PIPELINE_BUILTINS``). Every gain is measured against
    the baseline, so a baseline that sabotages itself makes any candidate REAL (attacker
    review, 2026-12-05: REAL, PROMOTE, audits clean); nothing is promoted against one."""
    from methods.builtin_names import COMMAND_BUILTINS
    from methods.registry import is_builtin_name

    name = plan.baseline.strip()
    if not is_builtin_name(name) or name in COMMAND_BUILTINS:
        return (f"the baseline {name} is not a built-in: its code is not the pipeline's, and a "
                "baseline that trains badly makes any method look better; nothing is promoted "
                "against it")
    if plan.jail.jails_builtin(name):
        return (f"the baseline {name} is a built-in this plan does not trust (jail: {{builtins: "
                "jail}}), and a baseline that trains badly makes any method look better; "
                "nothing is promoted against it (vanilla is the pipeline's own reference)")
    return None


def apply_promotion_guards(verdict: Verdict, records: list[Any],
                           baseline_distrust: str | None = None) -> Verdict:
    """Record each method's isolation in ``verdict`` and block promotions the guards forbid.

    Args:
        verdict: the ``stats.Verdict`` from ``stats.analyze_table`` (changed in place).
        records: every stored run the verdict was computed from.
        baseline_distrust: :func:`untrusted_baseline` of the plan (None: trusted).

    Returns:
        ``verdict``, with ``methods[m].isolation``, ``baseline_isolation`` and
        ``methods[m].guards`` (the guard reasons that fired) set.
    """
    isolation = isolation_by_arm(records)
    baseline = verdict.baseline
    baseline_isolation = isolation.get(baseline, "builtin")
    verdict.baseline_isolation = baseline_isolation
    inconsistent = inconsistent_runs(records)
    perfect = perfect_runs(records)
    shared = [r for arm in ("weak", "ceiling", baseline) for r in inconsistent.get(arm, [])]
    production = verdict.production_rung
    audits = verdict.audits
    for name, entry in verdict.methods.items():
        entry.isolation = isolation.get(name, "builtin")
        # A spike-in control trains on gold labels by design (and is never promoted): "too good
        # for weak supervision" would flag the injection it measures (helper-46).
        control = is_control_label(name)
        fired: list[str] = []
        if entry.isolation == "unjailed":
            fired.append("its code ran outside the jail (jail: {mode: off}); an unjailed "
                         "method is never promoted")
        if baseline_distrust:
            fired.append(baseline_distrust)
        if baseline_isolation == "unjailed":
            fired.append(f"the baseline {baseline} ran outside the jail; nothing compared with "
                         "it is promoted")
        cells = [c for c in entry.cells if c.rung == production]
        for cell in cells:
            weak, ceiling = cell.acc.get("weak"), cell.acc.get("ceiling")
            if weak is None or ceiling is None or not ceiling > weak:
                fired.append(f"at the production rung {production} ({cell.dataset}) the "
                             f"ceiling ({_pct(ceiling)}) does not beat the weak model "
                             f"({_pct(weak)}): there is no gap to recover")
            if cell.dataset == PUBLIC_SYNTHETIC:
                fired.append(f"at the production rung {production} the evidence comes from the "
                             "built-in synthetic task with its public seed: anyone with this code "
                             "can regenerate its labels (set W2S_SYNTHETIC_SECRET to salt it, or "
                             "validate on your own data)")
            if not cell.pgr.defined:
                fired.append(f"at the production rung {production} ({cell.dataset}) PGR "
                             "is undefined")
            elif cell.pgr.ci_low is not None and cell.pgr.ci_low > 1 and not control:
                # Trained on weak labels, a student that clearly beats the same model trained
                # on gold labels is what a label leak looks like (a forged run scored PGR 2.4,
                # attacker review 2026-12-05): a person looks before anything is promoted.
                fired.append(f"at the production rung {production} ({cell.dataset}) it beats "
                             f"the ceiling trained on gold labels (PGR {cell.pgr.estimate:.2f}, "
                             f"interval from {cell.pgr.ci_low:.2f}): too good for weak "
                             "supervision; rule out label access before promoting")
        for run in [] if control else perfect.get(name, []):
            fired.append(f"{run} scored 100% test accuracy, which the ceiling trained on gold "
                         "labels does not: too good for weak supervision; rule out label "
                         "access before promoting")
        for problem in shared + inconsistent.get(name, []):
            fired.append(f"inconsistent stored run: {problem}")
        if audits is not None and not control:  # controls are never audited
            fired.extend(audit_reasons(audits, name, baseline))
        entry.guards = fired
        for reason in fired:
            _block(entry, reason)
    return verdict


def audit_reasons(audits: dict[str, list[LabelAudit]], name: str, baseline: str) -> list[str]:
    """Why the label-leak audits block ``name``: its own flagged cells, the baseline's, or no
    audit of it at all (the audit is on, so every method and the baseline has one)."""
    reasons = []
    for who in dict.fromkeys([name, baseline]):
        prefix = "it" if who == name else f"the baseline {baseline}"
        cells = audits.get(who)
        if not cells:
            reasons.append(f"no label-leak audit of {prefix} (the plan audits every method in "
                           "its campaign); nothing is promoted unaudited")
        for cell in cells or []:
            if not cell.clean:
                reasons.append(f"the label-leak audit flagged {prefix} at rung {cell.rung} "
                               f"({cell.dataset}) seed {cell.seed}: {cell.evidence}")
    return reasons


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"
