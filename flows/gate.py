"""The promotion gate: may a method be promoted, according to a verdict.json it can trust?

Before it reads a decision, the gate checks the file, and refuses it (exit 2, one line) on any
problem:

1. **Well-formed**: JSON without NaN, Infinity or repeated keys; the verdict schema; a
   ``binding`` block (``flows.binding``) naming the plan, commit, code fingerprints and the
   sha256 of results.parquet. A hand-written file has none.
2. **Internally consistent** (``flows.gate_consistency``): each verdict word agrees with the
   production-rung gains, intervals, adjusted p values and the SESOI; ``promote`` only for a
   REAL method with a gain reaching the SESOI, no guard fired and jailed code; the first
   verdict-naming reason names the verdict; every method and the baseline bound; every
   control (``controls``) bound, marked (``control``), never promoted, its code the bound
   baseline's plus its spec, and no control listed among the methods.
3. **Signed**, when a verdict key is configured (``W2S_VERDICT_HMAC_KEY`` or
   ``W2S_VERDICT_HMAC_SECRET_BLOCK``): the HMAC verifies.
4. **Re-derived** (``--plan``): results.parquet hashes to the bound sha256, the plan to the
   bound plan hash, and ``flows.derive`` run on them (the statistics, the promotion guards from
   the runs the table names, the sequential looks) gives the same file, number for number.
   ``--store`` also checks the table against the stored runs (their manifests, predictions and
   facts) and takes the guards from them.
5. **Current code** (``--check-code``): the fingerprints of the method, the baseline and the
   trainer in this working tree equal the bound ones, so a stale verdict cannot promote code
   that changed since.

A control (a spike-in or null control of the baseline) is never promoted: asked about one (by its
label or its plan name), the gate refuses in one line with exit 2, whatever its verdict.

Exit codes (``w2s-transfer gate`` and CI): 0 promote, 1 do not promote, 2 bad input or a
refused file.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.binding import verdict_key, verify_signature
from flows.gate_binding import Binding, parse_binding, written_in_file
from flows.gate_consistency import as_number, consistency_problem
from flows.report.verdict import read_verdict_file
from stats.verdict_model import Verdict
from w2s_common.errors import InputError
from w2s_common.names import VERDICT_NAMES as VERDICTS
from w2s_common.names import name_key

PROMOTE, BLOCK = 0, 1
REL_TOLERANCE, ABS_TOLERANCE = 1e-9, 1e-12
# Keys of verdict.json that re-derivation does not produce: the binding (checked on its own)
# and the signature.
NOT_DERIVED = ("binding", "hmac")


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one method."""

    method: str
    verdict: str
    promote: bool
    required: tuple[str, ...]
    reasons: list[str] = field(default_factory=list)
    checks: tuple[str, ...] = ()
    reference: str | None = None  # how the plan names the method, when not by its results name
    unmet: tuple[str, ...] = ()  # the gate's own requirements the verdict falls short of

    @property
    def passed(self) -> bool:
        """True when the method may be promoted under the requirement."""
        return (self.promote and (not self.required or self.verdict in self.required)
                and not self.unmet)

    @property
    def exit_code(self) -> int:
        """0 when passed, 1 otherwise."""
        return PROMOTE if self.passed else BLOCK

    def describe(self) -> str:
        """Human-readable lines: the decision, the verdict, the reasons and what was checked."""
        name = f"{self.method} ({self.reference})" if self.reference else self.method
        head = (f"{name}: {'PROMOTE' if self.passed else 'DO NOT PROMOTE'} "
                f"(verdict {self.verdict}, promote={str(self.promote).lower()}")
        head += f", required {'|'.join(self.required)})" if self.required else ")"
        lines = [head]
        if self.promote and self.required and self.verdict not in self.required:
            lines.append(f"  verdict {self.verdict} is not in the required set "
                         f"{{{', '.join(self.required)}}}")
        lines += [f"  requirement not met: {problem}" for problem in self.unmet]
        lines += [f"  - {reason}" for reason in self.reasons]
        if self.checks:
            lines.append(f"  checked: {'; '.join(self.checks)}")
        return "\n".join(lines)


def parse_required(values: Iterable[str] | None) -> tuple[str, ...]:
    """Normalise ``--require`` values (repeatable, comma-separated, any case).

    Raises:
        InputError: an unknown verdict name.
    """
    required: list[str] = []
    for value in values or ():
        if not value.replace(",", "").strip():
            # `--require ""` read as "no requirement" (helper-44): say what was meant.
            raise InputError(f"got {value!r}; expected verdict names such as REAL (leave the "
                             "option out to require promote alone)", field="--require")
        for name in value.split(","):
            name = name.strip().upper()
            if not name:
                continue
            if name not in VERDICTS:
                raise InputError(f"unknown verdict {name!r}; expected one of {list(VERDICTS)}",
                                 field="--require")
            if name not in required:
                required.append(name)
    return tuple(required)


# --- 4. re-derivation ------------------------------------------------------------------------

def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where ``actual`` differs from ``expected`` (numbers within a relative 1e-9), or None."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in expected:
            if key not in actual:
                return f"{path}.{key}: missing (re-derived {_short(expected[key])})".lstrip(".")
        for key in actual:
            if key not in expected:
                return f"{path}.{key}: not produced by re-derivation".lstrip(".")
        for key in expected:
            found = first_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: {len(actual)} entries, re-derived {len(expected)}".lstrip(".")
        for index, (left, right) in enumerate(zip(expected, actual)):
            found = first_difference(left, right, f"{path}[{index}]")
            if found:
                return found
        return None
    left, right = as_number(expected), as_number(actual)
    if left is not None and right is not None and type(expected) is not bool \
            and type(actual) is not bool:
        if math.isclose(left, right, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE):
            return None
    elif expected == actual and type(expected) is type(actual):
        return None
    if isinstance(expected, str) and isinstance(actual, str):
        actual, expected = _around_difference(actual, expected)
        return f"{path}: {actual} in the file, re-derived {expected}".lstrip(".")
    return f"{path}: {_short(actual)} in the file, re-derived {_short(expected)}".lstrip(".")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _around_difference(left: str, right: str, width: int = 30) -> tuple[str, str]:
    """Both strings clipped around their first difference (so that a long reason shows what
    changed, not a common prefix)."""
    start = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b),
                 min(len(left), len(right)))
    begin = max(0, start - width)

    def clip(text: str) -> str:
        piece = text[begin:start + width]
        return ("..." if begin else "") + repr(piece) + ("..." if start + width < len(text)
                                                          else "")
    return clip(left), clip(right)


def rederive(as_written: Mapping[str, Any], binding: Binding, source: Path, plan_path: Path,
             results_path: Path, store: Path | None) -> str:
    """Re-derive the verdict from results.parquet and the plan and compare it with the file as
    written (``as_written``, the parsed JSON: the claim is "the same file, number for number",
    so the comparison is with what the file holds, not with the model's dump of it).

    Returns:
        What was checked (one phrase).

    Raises:
        InputError: any mismatch, one line.
    """
    import io

    import pandas as pd

    from flows.derive import (
        derive_verdict,
        replay_looks,
        sequential_record,
        stored_runs,
        table_runs,
    )
    from flows.plan import load_plan
    from flows.userfiles import require_regular_file

    plan = load_plan(plan_path)
    if plan.plan_hash != binding.plan_hash:
        raise InputError(f"the plan {plan_path} hashes to {plan.plan_hash}; the verdict was "
                         f"derived from plan {binding.plan_hash}", path=source,
                         field="binding.plan_hash")
    require_regular_file(Path(results_path), "results table")
    try:
        data = Path(results_path).read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the results ({err.strerror or err})",
                         path=results_path) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != binding.results_sha256:
        raise InputError(f"{results_path} has sha256 {digest[:16]}...; the verdict was derived "
                         f"from {binding.results_sha256[:16]}...", path=source,
                         field="binding.results_sha256")
    try:
        results = pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"not a results table: {type(err).__name__}: {err}",
                         path=results_path) from None
    shown = str(results_path)
    runs = stored_runs(results, store, shown) if store is not None else table_runs(results, shown)
    if binding.reuse_check is not None:
        problem = binding.reuse_check.bounds_problem(runs)
        if problem:
            raise InputError(f"the reuse check's record cannot be true of {results_path.name}: "
                             f"{problem}", path=source, field="binding.reuse_check")
    labels = {m.reference: label for label, m in binding.methods.items()}
    entries = [plan.baseline, *plan.method_names]
    if sorted(labels) != sorted(entries):
        raise InputError(f"the verdict binds methods {sorted(labels)}; the plan names "
                         f"{sorted(entries)}", path=source, field="binding.methods")
    if sorted(binding.controls) != sorted(plan.control_labels):
        raise InputError(f"the verdict binds controls {sorted(binding.controls)}; the plan names "
                         f"{sorted(plan.control_labels)}", path=source, field="binding.controls")
    problem = _fingerprints_in_runs(runs, binding)
    if problem:
        raise InputError(problem, path=source, field="binding")
    looks, seeds_used = replay_looks(plan, results, labels)
    sequential = sequential_record(plan, looks, seeds_used)
    # The audits are an input, as results.parquet is (run on the worker, not re-runnable here);
    # what they imply for promotion is re-derived.
    verdict = derive_verdict(plan, results, runs, labels, sequential=sequential,
                             audits=as_written.get("audits"))
    # The re-derived verdict as validate would write it, against the file as written.
    expected = verdict.as_json_dict()
    actual = {k: v for k, v in as_written.items() if k not in NOT_DERIVED}
    difference = first_difference(expected, actual)
    if difference:
        raise InputError(f"does not match its re-derivation from {results_path.name} and the "
                         f"plan: {difference}", path=source)
    guards = "the stored runs" if store is not None else "the table's run columns"
    return f"re-derived from {results_path.name} and the plan (guards from {guards})"


def _fingerprints_in_runs(runs: list[Any], binding: Binding) -> str | None:
    from flows.binding import unique_fingerprints

    try:
        trainer, by_label = unique_fingerprints(runs)
    except InputError as err:
        return err.message
    if trainer != binding.trainer_fingerprint:
        return (f"trainer_fingerprint: the runs were made by trainer {str(trainer)[:16]}..., "
                f"the binding says {binding.trainer_fingerprint[:16]}...")
    for label, fingerprint in by_label.items():
        bound = binding.methods.get(label) or binding.controls.get(label)
        if bound is None or bound.fingerprint != fingerprint:
            return (f"methods.{label}.fingerprint: the runs were made by code "
                    f"{str(fingerprint)[:16]}..., the binding says "
                    f"{bound.fingerprint[:16] + '...' if bound else 'nothing'}")
    return None


# --- 5. the working tree ---------------------------------------------------------------------

def check_code(binding: Binding, methods: Iterable[str], source: Path) -> str:
    """Compare the bound fingerprints of ``methods`` and the trainer with this working tree.

    Raises:
        InputError: a fingerprint differs (the code changed since the verdict), one line.
    """
    from methods.fingerprint import method_code
    from transfer.fingerprint import trainer_fingerprint

    current = trainer_fingerprint()
    if current != binding.trainer_fingerprint:
        raise InputError(f"stale verdict: the trainer changed since it was derived (fingerprint "
                         f"{binding.trainer_fingerprint[:16]}... in the file, {current[:16]}... "
                         "here: code or package versions); rerun validate", path=source,
                         field="binding.trainer_fingerprint")
    for name in methods:
        bound = binding.methods[name]
        now = method_code(bound.reference, bound.params).fingerprint
        if now != bound.fingerprint:
            raise InputError(f"stale verdict: {name}'s code changed since it was derived "
                             f"(fingerprint {bound.fingerprint[:16]}... in the file, "
                             f"{now[:16]}... in this working tree); rerun validate",
                             path=source, field=f"binding.methods.{name}.fingerprint")
    return "code fingerprints match this working tree"


# --- the gate --------------------------------------------------------------------------------

def entry_named(verdict: Verdict, binding: Binding, name: str, source: Path) -> str:
    """The verdict entry (results name) that ``name`` means: an entry's results name, the
    reference the plan names it by (CI knows a plugin by its reference; the plugin names itself),
    or a control's plan name. An allow-list over the binding: a name that means two entries
    (one's results name, another's reference) is refused rather than resolved either way, so
    a plugin naming itself like a rival's reference cannot stand in for the rival.

    Raises:
        InputError: ``name`` means more than one entry.
    """
    meant = {label for label, bound in binding.methods.items()
             if name in (label, bound.reference) and label in verdict.methods}
    meant |= {label for label, bound in binding.controls.items()
              if name in (label, bound.name) and label in verdict.controls}
    meant |= {label for label in (*verdict.methods, *verdict.controls)
              if label == name and label not in binding.methods and label not in binding.controls}
    if len(meant) > 1:
        raise InputError(f"{name!r} names more than one entry ({', '.join(sorted(meant))}: a "
                         "results name and another entry's reference); gate by the entry's "
                         "reference and rerun with a plan whose results names are distinct",
                         path=source, field="methods")
    # Entries a reader cannot tell from the one meant (`sharpen` beside `Sharpen`: accepted by
    # campaigns before 2026-12-06) leave the answer to the reader's eye: refused.
    key = name_key(next(iter(meant)) if meant else name)
    alike = sorted(label for label in (*verdict.methods, *verdict.controls)
                   if name_key(label) == key)
    if len(alike) > 1:
        raise InputError(f"{name!r}: the file has entries that read alike ({', '.join(alike)}; "
                         "case and . _ - aside); rerun with a plan whose results names are "
                         "distinct", path=source, field="methods")
    return next(iter(meant)) if meant else name


def check_promotion(verdict_path: str | Path, method: str,
                    require: Iterable[str] | None = None, *, plan: str | Path | None = None,
                    results: str | Path | None = None, store: str | Path | None = None,
                    code: bool = False, key: bytes | None = None,
                    min_reuse_check_cells: int | None = None) -> GateDecision:
    """Decide whether ``method`` may be promoted according to ``verdict_path``, after checking
    the file (module docstring).

    Args:
        verdict_path: a verdict.json written by ``validate``.
        method: the method's name in the verdict, or the reference the plan names it by.
        require: verdicts that are acceptable (e.g. ``["REAL"]``); empty means ``promote`` alone
            decides.
        plan: the plan it was derived from: re-derive the verdict and compare.
        results: results.parquet (default: beside the verdict); used with ``plan``.
        store: the run store: check the table against the stored runs (with ``plan``).
        code: compare the bound fingerprints with this working tree.
        key: the HMAC key (default: ``flows.binding.verdict_key()``); with one, the file must be
            signed with it.
        min_reuse_check_cells: refuse promotion unless the campaign's reuse check recomputed at
            least this many of the cells holding runs it reused from the store (all of them
            where fewer; ``flows.reuse_check``): a verdict that reused runs unchecked (a plan
            with ``reuse_check: {cells: 0}``) or that predates the record is not promoted.

    Returns:
        A :class:`GateDecision` (``exit_code`` 0 or 1).

    Raises:
        InputError: unreadable or refused file, unknown method or verdict name (one line).
    """
    required = parse_required(require)
    source = Path(verdict_path)
    read = read_verdict_file(source)
    verdict = read.verdict
    binding = parse_binding(verdict, source)
    method = entry_named(verdict, binding, method, source)
    decision = verdict.methods.get(method) or verdict.controls.get(method)
    if decision is None:
        raise InputError(f"unknown method {method!r}; the file has {sorted(verdict.methods)}"
                         + (f" and controls {sorted(verdict.controls)}" if verdict.controls
                            else ""), path=source, field="methods")
    if method in verdict.controls:
        # A control tests the pipeline; whatever its verdict, it is not a method to promote.
        details = decision.control_details
        raise InputError(f"{method!r} is a {decision.control} control ({details.variant}), not "
                         "a method: a control is never promoted", path=source, field="controls")
    checks = ["consistent"]
    problem = consistency_problem(verdict, binding)
    if problem:
        raise InputError(f"inconsistent verdict: {problem}", path=source)
    key = key if key is not None else verdict_key()
    if key is not None:
        # The HMAC is over the file's own content (flows.binding.canonical), so it is checked
        # on the JSON as parsed, not on the model.
        problem = verify_signature(read.as_written, key)
        if problem:
            raise InputError(problem, path=source, field="hmac")
        checks.append("HMAC verified")
    elif written_in_file(verdict, "hmac"):
        checks.append("HMAC present but not verified (no key configured)")
    if plan is not None:
        results_path = Path(results) if results is not None else source.parent / "results.parquet"
        checks.append(rederive(read.as_written, binding, source, Path(plan), results_path,
                               Path(store) if store is not None else None))
    elif results is not None or store is not None:
        raise InputError("--results and --store need --plan (they are used to re-derive the "
                         "verdict)", field="--plan")
    if code:
        checks.append(check_code(binding, [method, verdict.baseline], source))
    unmet = []
    if min_reuse_check_cells is not None:
        if min_reuse_check_cells < 0:
            raise InputError(f"expected a count of cells >= 0, got {min_reuse_check_cells}",
                             field="--min-reuse-check-cells")
        if binding.reuse_check is None:
            unmet.append("the verdict records no reuse check (written before verdicts bound "
                         "it); rerun validate")
        else:
            checks.append(binding.reuse_check.describe())
            problem = binding.reuse_check.unmet(min_reuse_check_cells)
            if problem:
                unmet.append(problem)
    bound = binding.methods.get(method)
    reference = bound.reference if bound is not None and bound.reference != method else None
    return GateDecision(method=method, verdict=decision.verdict, promote=decision.promote,
                        required=required, reasons=list(decision.reasons), checks=tuple(checks),
                        reference=reference, unmet=tuple(unmet))
