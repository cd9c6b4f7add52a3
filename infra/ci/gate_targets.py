"""CI helper for the promotion gate: which methods did a change touch, and a plan for each.

    python infra/ci/gate_targets.py changed CHANGED_FILES.txt      -> JSON list of method names
    python infra/ci/gate_targets.py plan METHOD TEMPLATE.yaml OUT.yaml

A change to a method's own source file selects that method; any other change under methods/
(shared code, the registry) or to the plugin entry points (pyproject.toml) selects every
candidate, since it may change any of them. The baseline is never a candidate.
"""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
REGISTRY_FILES = {"pyproject.toml", "infra/sweep-registry.yaml"}


def method_sources() -> dict[str, str | None]:
    """Registered method name -> its source file relative to the repo (None outside the repo)."""
    from methods.registry import list_methods

    sources: dict[str, str | None] = {}
    for info in list_methods():
        if isinstance(info, tuple):  # an entry point that failed to load: still gate it
            sources[info[0]] = None
            continue
        try:
            path = Path(inspect.getsourcefile(type(info.method)) or "").resolve()
            sources[info.method.name] = str(path.relative_to(REPO))
        except (TypeError, ValueError):
            sources[info.method.name] = None
    return sources


def runnable_with_defaults(name: str) -> bool:
    """Whether the method's Params validate with no arguments (a CI plan gives none)."""
    from methods.registry import resolve_method

    try:
        resolve_method(name).Params()
    except Exception:  # a required param (pydantic) or a broken plugin: not gateable unattended
        return False
    return True


def changed_methods(changed: list[str], sources: dict[str, str | None], baseline: str) -> list[str]:
    """Method names to gate for the changed paths (sorted, baseline excluded)."""
    candidates = {name: source for name, source in sources.items() if name != baseline}
    selected: set[str] = set()
    for path in (p.strip() for p in changed if p.strip()):
        owners = {name for name, source in candidates.items() if source == path}
        if owners:
            selected |= owners
        elif path.startswith("methods/") or path in REGISTRY_FILES:
            selected |= set(candidates)
    return sorted(selected)


def plan_for_method(template: dict[str, Any], method: str) -> dict[str, Any]:
    """The template plan narrowed to one candidate method (its claims kept if any)."""
    plan = dict(template)
    plan["name"] = f"gate-{method}".replace("_", "-")
    plan["methods"] = [{"name": method, "params": {}}]
    claims = {k: v for k, v in (template.get("claims") or {}).items() if k == method}
    if claims:
        plan["claims"] = claims
    else:
        plan.pop("claims", None)
    return plan


def main(argv: list[str]) -> int:
    """CLI entry; returns the exit code."""
    if len(argv) == 2 and argv[0] == "changed":
        sys.path.insert(0, str(REPO))
        template = yaml.safe_load((REPO / "flows/plans/tiny-ci.yaml").read_text())
        names = changed_methods(Path(argv[1]).read_text().splitlines(), method_sources(),
                                template.get("baseline", "vanilla"))
        skipped = [n for n in names if not runnable_with_defaults(n)]
        if skipped:
            print(f"not gated (need explicit params): {skipped}", file=sys.stderr)
        print(json.dumps([n for n in names if n not in skipped]))
        return 0
    if len(argv) == 4 and argv[0] == "plan":
        template = yaml.safe_load(Path(argv[2]).read_text())
        Path(argv[3]).write_text(yaml.safe_dump(plan_for_method(template, argv[1]), sort_keys=False))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
