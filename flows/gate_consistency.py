"""Whether a verdict.json contradicts itself (check 2 of the promotion gate, ``flows.gate``):
verdict words against the production-rung cells, ``promote`` against the verdict, guards and
isolation, the plan block and every method and control against the binding."""
from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel

from flows.gate_binding import Binding, written_in_file
from stats.verdict_model import Cell, MethodVerdict, Verdict
from w2s_common.errors import InputError
from w2s_common.names import VERDICT_NAMES as VERDICTS


def _as_written(model: BaseModel, field_name: str, default: Any) -> Any:
    """The field's value, or ``default`` where the file does not have it."""
    return getattr(model, field_name) if written_in_file(model, field_name) else default


def as_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _first_verdict_word(reasons: list[str]) -> str | None:
    for reason in reasons:
        match = re.match(r"\s*([A-Z]+)\b", reason)
        if match and match.group(1) in VERDICTS:
            return match.group(1)
    return None


def _cell_problem(where: str, cell: Cell, alpha: float,
                  per_direction: float | None = None,
                  stop: tuple[int, int] | None = None) -> str | None:
    gain = cell.gain
    est, low, high = (as_number(v) for v in (gain.estimate, gain.ci_low, gain.ci_high))
    if est is not None and low is not None and high is not None and not low <= est <= high:
        return f"{where}.gain: estimate {est!r} outside its interval [{low!r}, {high!r}]"
    for key in type(gain).model_fields:
        value = getattr(gain, key)
        if key.startswith("p_") and as_number(value) is not None and not 0 <= value <= 1:
            return f"{where}.gain.{key}: {value!r} is not a probability"
    for arm, value in cell.acc.items():
        if as_number(value) is not None and not 0 <= value <= 1:
            return f"{where}.acc.{arm}: {value!r} is not an accuracy"
    # A written decision interval is held to the decisions whatever else the file states
    # (deleting alpha_per_direction switched this off: helper-48).
    d_low, d_high = as_number(gain.decision_ci_low), as_number(gain.decision_ci_high)
    if est is not None and d_low is not None and d_high is not None \
            and not d_low <= est <= d_high:
        return (f"{where}.gain: estimate {est!r} outside its decision interval "
                f"[{d_low!r}, {d_high!r}]")
    if cell.outcome == "superior" and d_low is not None and d_low <= 0:
        return f"{where}: outcome superior but its decision interval starts at {d_low!r}"
    if cell.outcome == "harmful" and d_high is not None and d_high >= 0:
        return f"{where}: outcome harmful but its decision interval ends at {d_high!r}"
    if per_direction is not None:
        problem = _decision_problem(where, cell, per_direction, stop)
        if problem:
            return problem
    outcome = cell.outcome
    p_sup, p_harm, p_eq = (as_number(v) for v in
                           (gain.p_adjusted, gain.p_harm_adjusted, gain.p_equivalence_adjusted))
    sesoi = as_number(cell.sesoi)
    if outcome == "superior" and (est is None or est <= 0 or (p_sup is not None and
                                                                p_sup >= alpha)):
        return f"{where}: outcome superior but gain {est!r}, adjusted p {p_sup!r}"
    if outcome == "harmful" and (est is None or est >= 0 or (p_harm is not None and
                                                               p_harm >= alpha)):
        return f"{where}: outcome harmful but gain {est!r}, adjusted p of harm {p_harm!r}"
    if outcome == "equivalent" and (est is None or (sesoi is not None and abs(est) >= sesoi)
                                    or (p_eq is not None and p_eq >= alpha)):
        return f"{where}: outcome equivalent but gain {est!r}, equivalence p {p_eq!r}"
    return None


def _decision_problem(where: str, cell: Cell, per_direction: float,
                      stop: tuple[int, int] | None = None) -> str | None:
    """A decided cell of a file that states its rule: each direction's adjusted p below
    ``per_direction``, and the decision interval, where written, the one its p values give
    (recomputed: deleting or editing it changes nothing; helper-47); a cell a sequential design
    decided (``stop``: the entry's stopping look and the planned looks, from the file's own
    record), the repeated interval at that look's level."""
    from stats.sequential import look_level
    from stats.tests_and_verdicts import SEQUENTIAL_CORRECTION, decision_interval

    gain = cell.gain
    p_sup, p_harm = as_number(gain.p_adjusted), as_number(gain.p_harm_adjusted)
    if cell.outcome == "superior" and p_sup is not None and not p_sup < per_direction:
        return (f"{where}: outcome superior but its adjusted p {p_sup!r} is not below "
                f"alpha / 2 = {per_direction!r}")
    if cell.outcome == "harmful" and p_harm is not None and not p_harm < per_direction:
        return (f"{where}: outcome harmful but its adjusted p of harm {p_harm!r} is not below "
                f"alpha / 2 = {per_direction!r}")
    written = (as_number(gain.decision_ci_low), as_number(gain.decision_ci_high))
    if written == (None, None):
        return None  # written before the interval existed (2026-12-06), or undefined
    level = None
    if gain.correction == SEQUENTIAL_CORRECTION:
        if stop is None or not isinstance(gain.family_size, int) or gain.family_size < 1:
            return (f"{where}.gain: decided by a sequential design the file does not record "
                    "(sequential.max_looks and the entry's looks, family_size)")
        level = look_level(2 * per_direction, gain.family_size, *stop)
    expected = decision_interval(gain.estimate, gain.se, gain.df, gain.p_superiority,
                                 gain.p_adjusted, gain.p_harm, gain.p_harm_adjusted,
                                 2 * per_direction, level=level)
    for name, got, want in zip(("decision_ci_low", "decision_ci_high"), written, expected):
        if got is None or not math.isfinite(want) or abs(got - want) > 1e-9 * max(1.0, abs(want)):
            return (f"{where}.gain.{name}: {got!r}, not the {want!r} its estimate, se, df and "
                    "adjusted p values give")
    return None


def consistency_problem(verdict: Verdict, binding: Binding) -> str | None:
    """Why the verdict file contradicts itself, or None.

    The checks hold for any decision rule that reads a verdict off the production-rung tests
    (they are necessary conditions, not the rule itself): REAL needs a production cell with a
    positive gain whose adjusted p is below alpha; HARMFUL one with a negative gain (adjusted p
    of harm below alpha); VANISHED every production cell within the SESOI (equivalence p below
    alpha); ``promote`` needs REAL, a production gain reaching the SESOI, no fired guard, and
    jailed code for the method and the baseline. Every interval holds its estimate, every p is
    a probability, every accuracy a fraction; the first reason that starts with a verdict word
    names this verdict; the plan block and every method agree with the binding.
    """
    alpha, sesoi = verdict.alpha, verdict.sesoi
    if not 0 < alpha < 0.5:
        # As plans require: a two-sided test at alpha >= 0.5 decides on any p (helper-44: a
        # verdict with alpha 0.9 passed every check of the file).
        return f"alpha: {alpha!r} is not a level in (0, 0.5)"
    per_direction = verdict.alpha_per_direction
    if per_direction is not None and abs(per_direction - alpha / 2) > 1e-12:
        return (f"alpha_per_direction: {per_direction!r} is not alpha / 2 = {alpha / 2!r} "
                "(each direction is tested at alpha / 2)")
    if not 0 < sesoi < 1:
        return f"sesoi: {sesoi!r} is not an effect size in (0, 1)"
    plan = verdict.plan
    if plan is None or plan.plan_hash != binding.plan_hash or plan.name != binding.plan_name:
        shown = plan.model_dump() if plan is not None else None
        return (f"plan: {shown!r} differs from the binding's plan {binding.plan_name} "
                f"({binding.plan_hash})")
    baseline, methods = verdict.baseline, verdict.methods
    if not methods:
        return "methods: no method"
    if baseline in methods:
        return f"methods: the baseline {baseline!r} is listed as a candidate"
    for name in [baseline, *methods]:
        if name not in binding.methods:
            return f"binding.methods: {name!r} is not bound to any code"
    extra = sorted(set(binding.methods) - set(methods) - {baseline})
    if extra:
        return f"binding.methods: binds {extra}, which the verdict does not decide"
    production, rungs = verdict.production_rung, verdict.rungs
    if rungs is not None and production not in rungs:
        return f"production_rung: {production!r} is not one of the rungs {rungs}"
    problem = _controls_problem(verdict, binding)
    if problem:
        return problem
    entries = [(f"methods.{name}", entry) for name, entry in methods.items()]
    entries += [(f"controls.{name}", entry) for name, entry in verdict.controls.items()]
    for where, entry in entries:
        # A file that states the rule (alpha_per_direction, checked above) is held to it: each
        # direction at its entry's alpha / 2 (a control's own level), decision interval and all.
        own = as_number(entry.alpha) if as_number(entry.alpha) is not None else alpha
        per_direction = own / 2 if verdict.alpha_per_direction is not None else None
        stop = (None if verdict.sequential is None
                else verdict.sequential.stop(where.split(".", 1)[1]))
        problem = _entry_problem(where, entry, alpha, sesoi, production, per_direction, stop)
        if problem:
            return problem
        if not entry.promote:
            continue
        if entry.isolation == "unjailed" or verdict.baseline_isolation == "unjailed" \
                or verdict.jail == "off":
            return f"{where}.promote: true but untrusted code ran outside the jail"
        if verdict.audits is not None and where.startswith("methods."):
            from flows.guards import audit_reasons

            blocked = audit_reasons(verdict.audits, where.split(".", 1)[1], baseline)
            if blocked:
                return f"{where}.promote: true but {blocked[0]}"
    return None


def _entry_problem(where: str, entry: MethodVerdict, alpha: float, sesoi: float,
                   production: str, per_direction: float | None = None,
                   stop: tuple[int, int] | None = None) -> str | None:
    """Why one method's (or control's) entry contradicts its own cells, or None."""
    verdict, promote, cells = entry.verdict, entry.promote, entry.cells
    for index, cell in enumerate(cells):
        problem = _cell_problem(f"{where}.cells[{index}]", cell, alpha, per_direction,
                                stop if cell.rung == production else None)
        if problem:
            return problem
    prod = [c for c in cells if c.rung == production]
    gains = [(c, as_number(c.gain.estimate)) for c in prod]

    def below(value: Any) -> bool:
        value = as_number(value)
        return value is None or value < alpha

    def outcome_is(cell: Cell, expected: str) -> bool:
        # A cell without an outcome (not a decision cell) does not contradict the verdict.
        return _as_written(cell, "outcome", expected) == expected

    named = _first_verdict_word(entry.reasons)
    if named is not None and named != verdict:
        return f"{where}.verdict: {verdict} but its reasons say {named}"
    if verdict == "REAL" and not any(
            g is not None and g > 0 and below(c.gain.p_adjusted)
            and outcome_is(c, "superior") for c, g in gains):
        return (f"{where}.verdict: REAL but no production-rung ({production}) gain is "
                f"positive and significant (gains {[g for _, g in gains]})")
    if verdict == "REAL" and any(c.outcome == "harmful" for c in prod):
        return f"{where}.verdict: REAL but a production-rung cell is harmful"
    if verdict == "HARMFUL" and not any(
            g is not None and g < 0 and below(c.gain.p_harm_adjusted)
            and outcome_is(c, "harmful") for c, g in gains):
        return (f"{where}.verdict: HARMFUL but no production-rung ({production}) gain is "
                f"negative and significant (gains {[g for _, g in gains]})")
    if verdict == "VANISHED" and (not gains or not all(
            g is not None and abs(g) < (as_number(c.sesoi) or sesoi)
            and below(c.gain.p_equivalence_adjusted)
            and outcome_is(c, "equivalent") for c, g in gains)):
        return (f"{where}.verdict: VANISHED but a production-rung ({production}) gain is "
                f"not shown within the SESOI {sesoi!r} (gains {[g for _, g in gains]})")
    if not promote:
        return None
    if written_in_file(entry, "control") or where.startswith("controls."):
        return f"{where}.promote: true but it is a control (a control is never promoted)"
    if verdict != "REAL":
        return f"{where}.promote: true but the verdict is {verdict} (only REAL is promoted)"
    if not any(g is not None and g >= (as_number(c.sesoi) or sesoi) for c, g in gains):
        return (f"{where}.promote: true but no production-rung gain reaches the SESOI "
                f"{sesoi!r} (gains {[g for _, g in gains]})")
    if entry.guards:
        return f"{where}.promote: true but a promotion guard fired: {entry.guards[0]}"
    if not written_in_file(entry, "isolation") or not written_in_file(entry, "guards"):
        return f"{where}: no isolation/guards (flows.guards did not run on this verdict)"
    return None


def _controls_problem(verdict: Verdict, binding: Binding) -> str | None:
    """Why the controls of the file contradict its binding, or None: every control decided is
    bound and every bound control decided; each carries its marker and is never promoted; no
    method is marked or named as a control; each control's code is the bound baseline's plus its
    spec (recomputed here)."""
    from transfer.controls import ControlSpec, control_fingerprint, is_control_label

    controls = verdict.controls
    for name, entry in verdict.methods.items():
        if is_control_label(name) or written_in_file(entry, "control"):
            return f"methods.{name}: a control listed as a candidate method"
    if sorted(controls) != sorted(binding.controls):
        return (f"controls: the file decides {sorted(controls)}, the binding binds "
                f"{sorted(binding.controls)}")
    baseline = binding.methods.get(verdict.baseline)
    for label, entry in controls.items():
        bound = binding.controls[label]
        try:
            spec = ControlSpec(**bound.spec)
        except (InputError, TypeError) as err:
            return f"binding.controls.{label}.spec: {err}"
        if spec.label != label or spec.kind != bound.kind or spec.name != bound.name:
            return f"binding.controls.{label}: its spec names {spec.label}"
        if entry.control != spec.marker:
            return (f"controls.{label}.control: {entry.control!r}, expected "
                    f"{spec.marker!r}")
        details = (entry.control_details.model_dump(mode="json", exclude_unset=True)
                   if entry.control_details is not None else None)
        if details != spec.verdict_entry():
            return (f"controls.{label}.control_details: {details!r}, "
                    f"expected {spec.verdict_entry()!r}")
        if entry.promote is not False:
            return (f"controls.{label}.promote: {entry.promote!r}; a control is never "
                    "promoted")
        if bound.baseline != verdict.baseline or baseline is None:
            return (f"binding.controls.{label}.baseline: {bound.baseline!r}, the verdict's "
                    f"baseline is {verdict.baseline!r}")
        expected = control_fingerprint(baseline.fingerprint, spec, baseline.params)
        if bound.fingerprint != expected:
            return (f"binding.controls.{label}.fingerprint: not the baseline's code plus the "
                    "control's spec")
    return None
