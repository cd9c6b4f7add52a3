"""CI helper for the promotion gate: which methods did a change touch, and a plan for each.

    python infra/ci/gate_targets.py changed CHANGED_FILES.txt [TEMPLATE.yaml]  -> JSON list
    python infra/ci/gate_targets.py plan METHOD TEMPLATE.yaml OUT.yaml
    python infra/ci/gate_targets.py slug METHOD                              -> a file-safe name

A method is gated when a changed file is part of its code fingerprint (``methods.fingerprint``:
the project code every method runs on, ``methods/`` and the trainer part of ``transfer/``, so
any change there gates every method; a plugin's own package; an ``external`` command's files).
A change anywhere else that can change a verdict (``flows/``, ``stats/``, the rest of
``transfer/``, the CI files, the plans, ``pyproject.toml``, the sweep registry, any file not
known to be inert) gates every method too. Only documentation, tests and benchmarks gate
nothing. Candidates are the registered methods (built-ins and entry points), the template plan's
methods and the sweep registry's; the baseline is never a candidate, and a method that needs
params the plan does not give, or says it cannot run on the template's rungs, is reported and
skipped. Methods are checked under the template's ``jail`` settings (with ``builtins: jail``,
in the jail); a method that cannot be checked at all (it fails to load or crashes) fails the job
(exit 2, one line) rather than going ungated.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "flows/plans/tiny-ci.yaml"
SWEEP_REGISTRY = REPO / "infra/sweep-registry.yaml"
# Paths whose change cannot change any verdict: they gate nothing.
INERT_PREFIXES = ("docs/", "tests/", "bench/", "reports/")
INERT_SUFFIXES = (".md", ".rst", ".txt")
INERT_NAMES = {"LICENSE", ".gitignore", ".gitattributes"}


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


def runnable_with_defaults(name: str, params: Mapping[str, Any],
                           jail: Mapping[str, Any] | None = None) -> bool:
    """Whether the method's params validate with what the plan gives (a CI plan gives none for
    a registered method), checked under the template's ``jail`` settings (with ``builtins:
    jail``, in the jail: no built-in's module is imported here).

    Raises:
        InputError: the method cannot be checked at all (it failed to load or crashed): the job
            fails instead of leaving the method ungated.
    """
    from methods.policy import JailSettings, jail_settings
    from methods.registry import resolve_with_params
    from w2s_common.errors import InputError

    try:
        with jail_settings(JailSettings(**dict(jail or {}))):
            resolve_with_params(name, dict(params))
    except InputError as err:
        # A required param the plan does not give: not gateable unattended, and said so.
        if "required param missing" in err.message:
            return False
        raise
    return True


def rung_problem(template: Mapping[str, Any], name: str, params: Mapping[str, Any]) -> str | None:
    """Why the template's ladder cannot run ``name`` on one of its rungs (the preflight check
    ``flows.preflight.check_methods_on_rungs``: e.g. ``zero_shot_prior`` needs label tokens),
    or None. Such a method is reported and skipped instead of failing the gate job."""
    import tempfile

    from flows.plan import load_plan
    from flows.preflight import check_methods_on_rungs
    from transfer.ladder import load_ladder
    from w2s_common.errors import InputError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.yaml"
        path.write_text(yaml.safe_dump(plan_for_method(dict(template), name, params),
                                       sort_keys=False))
        plan = load_plan(path)
        ladder = load_ladder(plan.ladder)
        rungs = [r.name for r in ladder.rungs] if plan.rungs == "all" else list(plan.rungs)
        try:
            check_methods_on_rungs(plan, ladder, rungs)
        except InputError as err:
            # Only the method's own answer skips it; a method that fails to answer fails the job.
            if f"method {name} cannot run on rung" in err.message:
                return err.message
            raise
    return None


def plan_for_method(template: dict[str, Any], method: str,
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The template plan narrowed to one candidate method (its claims kept if any):
    ``flows.plan.narrow_plan``, named ``gate-<slug>``."""
    from flows.plan import narrow_plan

    # No params (None or empty): the ones the template gives the method.
    return narrow_plan(template, method, params or None, name=f"gate-{slug(method)}")


def slug(method: str) -> str:
    """A name for files, plans and CI artifacts (a reference's ``.`` and ``:`` become ``-``)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", method.replace("_", "-")).strip("-") or "method"


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


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "changed" and len(argv) in (2, 3):
        template = _load(argv[2] if len(argv) == 3 else TEMPLATE) or {}
        entries = candidate_entries(template, _load(SWEEP_REGISTRY))
        names = changed_methods(Path(argv[1]).read_text().splitlines(), method_files(entries),
                                template.get("baseline", "vanilla"))
        skipped = [n for n in names
                   if not runnable_with_defaults(n, entries.get(n, {}), template.get("jail"))]
        if skipped:
            print(f"not gated (need explicit params): {skipped}", file=sys.stderr)
        for name in [n for n in names if n not in skipped]:
            problem = rung_problem(template, name, entries.get(name, {}))
            if problem:
                skipped.append(name)
                print(f"not gated ({problem})", file=sys.stderr)
        print(json.dumps([n for n in names if n not in skipped]))
        return 0
    if len(argv) == 4 and argv[0] == "plan":
        template = yaml.safe_load(Path(argv[2]).read_text())
        Path(argv[3]).write_text(yaml.safe_dump(plan_for_method(template, argv[1]),
                                                sort_keys=False))
        return 0
    if len(argv) == 2 and argv[0] == "slug":
        print(slug(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
