"""CI helper for the promotion gate: which methods did a change touch, and a plan for each.

    python infra/ci/gate_targets.py changed CHANGED_FILES.txt [TEMPLATE.yaml [EXCLUSIONS.yaml]]
                                                                              -> JSON list
    python infra/ci/gate_targets.py plan METHOD TEMPLATE.yaml OUT.yaml
    python infra/ci/gate_targets.py slug METHOD                              -> a file-safe name
    python infra/ci/gate_targets.py overlay PR_REF APPLIED.txt [UNJUDGED.txt]   (a pull request)

A pull request is judged by the pipeline of its base, never by its own: the workflow checks out
the base (``pull_request_target``: the workflow file is the base's too), and ``overlay`` copies
from the pull request's head only its method ports, ``methods/builtin/<name>.py`` (regular
files), which the gate plan runs in the jail (``builtins: jail``, :func:`plan_for_method`).
Every other file it changes (the flows, the statistics, the gate, the CI files, shared method
code) is not applied: a checker a pull request could edit would let it write its own verdict
(attacker review 2026-12-05, finding F5). Those that are not inert are written to UNJUDGED.txt,
and the workflow then fails its ``judge-changes`` job: a pull request that changes the judge
never gets a green gate (a skipped gate job would count as passing), a maintainer reviews it.

A method is gated when a changed file is part of its code fingerprint (``methods.fingerprint``:
the project code every method runs on, ``methods/`` and the trainer part of ``transfer/``, so
any change there gates every method; a plugin's own package; an ``external`` command's files).
A change anywhere else that can change a verdict (``flows/``, ``stats/``, the rest of
``transfer/``, the CI files, the plans, ``pyproject.toml``, the sweep registry, any file not
known to be inert) gates every method too. Only documentation, tests and benchmarks gate
nothing. Candidates are the registered methods (built-ins and entry points), the template plan's
methods and the sweep registry's; the baseline is never a candidate.

What is not gated is an allow-list, ``infra/ci/gate-exclusions.yaml`` (a name and a reason each):
those methods are skipped without being loaded. Every other gated method is checked under the
template's ``jail`` settings (with ``builtins: jail``, in the jail) and must run on the template:
one that needs params the template does not give, says it cannot run on one of its rungs, fails
to load or crashes fails the job (exit 2, one line) rather than going ungated. So a method's own
code cannot take itself out of the gate (attacker review 2026-12-05, finding 3: under
``builtins: jail`` "cannot run on rung" is the port's own answer).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "flows/plans/tiny-ci.yaml"
EXCLUSIONS = REPO / "infra/ci/gate-exclusions.yaml"
SWEEP_REGISTRY = REPO / "infra/sweep-registry.yaml"
# Paths whose change cannot change any verdict: they gate nothing.
INERT_PREFIXES = ("docs/", "tests/", "bench/", "reports/")
INERT_SUFFIXES = (".md", ".rst", ".txt")
INERT_NAMES = {"LICENSE", ".gitignore", ".gitattributes"}
# What of a pull request is applied to the base's checkout: a port module, nothing else.
PORT_FILE = re.compile(r"methods/builtin/[a-z][a-z0-9_]*\.py")
# The gate runs every built-in port in the jail: the port may be a pull request's code.
GATE_JAIL = {"mode": "required", "builtins": "jail"}


def candidate_entries(template: Mapping[str, Any] | None = None,
                      registry: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Method name or reference -> params, for every method CI may gate (baseline included;
    :func:`changed_methods` leaves it out)."""
    from methods.builtin_names import BUILTIN_MODULES
    from methods.registry import _entry_points

    entries: dict[str, dict[str, Any]] = {name: {} for name in BUILTIN_MODULES}
    entries.update({name: {} for name in _entry_points()})
    for source in (template, registry):
        for entry in (source or {}).get("methods") or []:
            entries[str(entry["name"])] = dict(entry.get("params") or {})
    return entries


def method_files(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str] | None]:
    """Name -> the files its code fingerprint covers (None when they cannot be found: such a
    method is gated on every change that is not inert)."""
    from methods.fingerprint import method_code
    from w2s_common.errors import InputError

    files: dict[str, list[str] | None] = {}
    for name, params in entries.items():
        try:
            files[name] = list(method_code(name, dict(params)).files)
        except InputError:
            files[name] = None
    return files


def inert(path: str) -> bool:
    """Whether a change to ``path`` (relative to the repository) cannot change a verdict."""
    return (path.startswith(INERT_PREFIXES) or path.endswith(INERT_SUFFIXES)
            or Path(path).name in INERT_NAMES) and not path.startswith("infra/ci/")


def _real(path: str) -> str:
    return os.path.realpath(path if os.path.isabs(path) else REPO / path)


def changed_methods(changed: Iterable[str], files: Mapping[str, Iterable[str] | None],
                    baseline: str) -> list[str]:
    """Methods to gate for the changed paths (sorted, baseline excluded).

    Args:
        changed: paths relative to the repository (``git diff --name-only``) or absolute.
        files: method -> the files of its code fingerprint (None: unknown).
        baseline: the plan's baseline.
    """
    candidates = {name: ({_real(f) for f in found} if found is not None else None)
                  for name, found in files.items() if name != baseline}
    selected: set[str] = set()
    for path in (p.strip() for p in changed if p.strip()):
        real = _real(path)
        owners = {name for name, found in candidates.items() if found and real in found}
        if owners:
            selected |= owners
        elif not inert(path):
            # Shared code (or an unknown file) may change any method's verdict.
            selected |= set(candidates)
        if not inert(path):  # a method whose files are unknown cannot be cleared
            selected |= {name for name, found in candidates.items() if found is None}
    return sorted(selected)


def check_params(name: str, params: Mapping[str, Any],
                 jail: Mapping[str, Any] | None = None) -> None:
    """Check that the method's params validate with what the plan gives (a CI plan gives none
    for a registered method), under the template's ``jail`` settings (with ``builtins: jail``,
    in the jail: no built-in's module is imported here).

    Raises:
        InputError: the method needs params the template does not give, failed to load or
            crashed: the job fails instead of leaving the method ungated.
    """
    from methods.policy import JailSettings, jail_settings
    from methods.registry import resolve_with_params

    with jail_settings(JailSettings(**dict(jail or {}))):
        resolve_with_params(name, dict(params))


def check_rungs(template: Mapping[str, Any], name: str, params: Mapping[str, Any]) -> None:
    """Check that the template's ladder can run ``name`` on every rung (the preflight check
    ``flows.preflight.check_methods_on_rungs``: e.g. ``zero_shot_prior`` needs label tokens).

    Raises:
        InputError: it cannot (the method's own answer, or its failure to answer).
    """
    import tempfile

    from flows.plan import load_plan
    from flows.preflight import check_methods_on_rungs
    from transfer.ladder import load_ladder

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.yaml"
        path.write_text(yaml.safe_dump(plan_for_method(dict(template), name, params),
                                       sort_keys=False))
        plan = load_plan(path)
        ladder = load_ladder(plan.ladder)
        rungs = [r.name for r in ladder.rungs] if plan.rungs == "all" else list(plan.rungs)
        check_methods_on_rungs(plan, ladder, rungs)


def load_exclusions(path: str | Path, known: Iterable[str]) -> dict[str, str]:
    """The methods the gate does not validate, name -> reason, from ``path``.

    Raises:
        InputError: unreadable file, another shape than ``exclusions: {name: reason}``, an
            empty reason, or a name that is not a candidate (``known``), with its line.
    """
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from w2s_common.errors import InputError
    from w2s_common.validation import validation_input_error
    from w2s_common.yamlio import node_line, read_yaml

    class Exclusions(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        exclusions: dict[str, str] = Field(default_factory=dict)

    data, root = read_yaml(path, "gate exclusions")
    if not isinstance(data, dict | None):
        raise InputError("expected a mapping, `exclusions: {method: reason}`", path=path, line=1)
    try:
        parsed = Exclusions.model_validate(data or {})
    except ValidationError as err:
        raise validation_input_error(err, path=path, root=root) from None
    known = set(known)
    for name, reason in parsed.exclusions.items():
        where = {"path": path, "line": node_line(root, ("exclusions", name)),
                 "field": f"exclusions.{name}"}
        if not reason.strip():
            raise InputError("expected a reason, got an empty string", **where)
        if name not in known:
            # A misspelt name would leave the real method gated; a stale one hides nothing but
            # says something untrue about the gate.
            raise InputError("not a method the gate knows (a built-in, an installed entry "
                             "point, or one named by the template or the sweep registry)", **where)
    return dict(parsed.exclusions)


def plan_for_method(template: dict[str, Any], method: str,
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The template plan narrowed to one candidate method (its claims kept if any):
    ``flows.plan.narrow_plan``, named ``gate-<slug>``."""
    from flows.plan import narrow_plan

    # No params (None or empty): the ones the template gives the method.
    plan = narrow_plan(template, method, params or None, name=f"gate-{slug(method)}")
    plan["jail"] = gate_jail(template)
    return plan


def gate_jail(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template's ``jail`` settings with every method in the jail, built-ins included."""
    return {**dict(template.get("jail") or {}), **GATE_JAIL}


def slug(method: str) -> str:
    """A name for files, plans and CI artifacts: the name's letters, digits and ``-`` (others
    become ``-``), then 8 hex digits of its sha256, so ``a.b``, ``a-b`` and ``a_b`` (one
    readable part) still get names of their own."""
    readable = re.sub(r"[^A-Za-z0-9-]+", "-", method.replace("_", "-")).strip("-") or "method"
    return f"{readable[:60]}-{hashlib.sha256(method.encode()).hexdigest()[:8]}"


def overlay(ref: str, repo: Path = REPO) -> tuple[list[str], list[str]]:
    """Apply to the checkout at ``repo`` the method ports that ``ref`` (a pull request's head)
    adds or changes against it, and nothing else.

    The changes are ``git diff --name-status HEAD...ref`` (against the merge base). A port is a
    regular file (mode 100644 or 100755 in ``ref``) named by :data:`PORT_FILE`; it is written
    with ``git checkout ref -- path``. Every other changed path, a deleted or renamed port
    included, is left as the base has it.

    Returns:
        ``(applied, not_applied)``: paths relative to the repository, sorted.

    Raises:
        InputError: git fails (an unknown ref), or a port path that is not a regular file in
            ``ref`` (a link could point the jail's copy of the code at any host file).
    """
    from w2s_common.errors import InputError

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise InputError(f"git {args[0]} failed: {last}", field="overlay")
        return done.stdout

    applied, not_applied = [], []
    # With -z each change is two fields, its status then its path (no renames: one path each).
    fields = git("diff", "--name-status", "--no-renames", "-z", f"HEAD...{ref}").split("\0")
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if not path:
            continue
        applied_here = status in ("A", "M") and PORT_FILE.fullmatch(path)
        (applied if applied_here else not_applied).append(path)
    for path in applied:
        mode = git("ls-tree", ref, "--", path).split(" ", 1)[0]
        if mode not in ("100644", "100755"):
            raise InputError(f"{path} in {ref} is not a regular file (git mode {mode}); a "
                             "method port must be one", field="overlay")
    if applied:
        git("checkout", ref, "--", *applied)
    return sorted(applied), sorted(not_applied)


def _load(path: str | Path | None) -> dict[str, Any] | None:
    return yaml.safe_load(Path(path).read_text()) if path and Path(path).is_file() else None


def main(argv: list[str]) -> int:
    """CLI entry; returns the exit code (2, with one line, when a method cannot be checked)."""
    sys.path.insert(0, str(REPO))  # flows, methods: from this checkout even when not installed
    from w2s_common.errors import InputError

    try:
        return _main(argv)
    except InputError as err:
        print(f"error: cannot decide which methods to gate: {err}", file=sys.stderr)
        return 2


def gated_methods(changed: Iterable[str], template: Mapping[str, Any],
                  exclusions_path: str | Path = EXCLUSIONS) -> list[str]:
    """The methods the gate job validates for the changed paths: :func:`changed_methods` less
    the excluded ones (each reported on stderr), every other one checked to run on the template.

    Raises:
        InputError: a bad exclusions file, or a gated method that cannot run on the template.
    """
    from w2s_common.errors import InputError

    entries = candidate_entries(template, _load(SWEEP_REGISTRY))
    excluded = load_exclusions(exclusions_path, entries)
    names = changed_methods(changed, method_files(entries), template.get("baseline", "vanilla"))
    gated, notes = [], []
    for name in names:
        if name in excluded:
            notes.append(f"not gated: {name} (excluded in {_shown(exclusions_path)}: "
                         f"{excluded[name]})")
            continue
        try:
            check_params(name, entries.get(name, {}), gate_jail(template))
            check_rungs(template, name, entries.get(name, {}))
        except InputError as err:
            raise InputError(
                f"method {name} cannot be gated on the template ({err.message}); give it what it "
                f"needs in the template, or list it with a reason in {_shown(exclusions_path)}"
            ) from None
        gated.append(name)
    for note in notes:  # after the checks: a failing job prints its one line only
        print(note, file=sys.stderr)
    return gated


def _shown(path: str | Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "changed" and len(argv) in (2, 3, 4):
        template = _load(argv[2] if len(argv) >= 3 else TEMPLATE) or {}
        exclusions = argv[3] if len(argv) == 4 else EXCLUSIONS
        print(json.dumps(gated_methods(Path(argv[1]).read_text().splitlines(), template,
                                       exclusions)))
        return 0
    if len(argv) == 4 and argv[0] == "plan":
        template = yaml.safe_load(Path(argv[2]).read_text())
        Path(argv[3]).write_text(yaml.safe_dump(plan_for_method(template, argv[1]),
                                                sort_keys=False))
        return 0
    if len(argv) in (3, 4) and argv[0] == "overlay":
        applied, not_applied = overlay(argv[1])
        Path(argv[2]).write_text("".join(f"{path}\n" for path in applied))
        unjudged = [path for path in not_applied if not inert(path)]
        if len(argv) == 4:  # what the gate cannot judge: its own pipeline, changed
            Path(argv[3]).write_text("".join(f"{path}\n" for path in unjudged))
        lines = [f"applied from {argv[1]} (a method port, run in the jail): {path}"
                 for path in applied]
        lines += [f"not applied, the gate cannot judge it (a maintainer reviews it): {path}"
                  for path in unjudged]
        lines += [f"not applied, changes no verdict: {path}"
                  for path in not_applied if inert(path)]
        print("\n".join(lines), file=sys.stderr)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a") as out:
                out.write("### Promotion gate: what of the pull request was judged\n\n"
                          + "".join(f"- {line}\n" for line in lines or ["nothing changed"]))
        return 0
    if len(argv) == 2 and argv[0] == "slug":
        print(slug(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
