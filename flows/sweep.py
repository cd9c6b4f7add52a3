"""The `sweep` flow (the nightly job): validate every method listed in a registry file.

Registry format (``infra/sweep-registry.yaml``)::

    plan: flows/plans/demo.yaml      # template: ladder, datasets, seeds, thresholds, baseline
    out: reports/sweep               # optional
    methods:
      - {name: aux_conf, params: {}}

Each method runs through the template as its own `validate` subflow, so each gets its own
verdict.json and report (what the promotion gate reads). Weak, ceiling and baseline arms live in
the shared run store and are computed once for all of them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transfer.errors import InputError
from transfer.yamlio import node_line, read_yaml


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str
    out: str = "reports/sweep"
    methods: list[_Entry] = Field(min_length=1)


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    raw, root = read_yaml(path, "registry file")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(first["msg"], path=path, line=node_line(root, tuple(first["loc"])),
                         field=".".join(str(p) for p in first["loc"]) or None) from None
    plan = Path(registry.plan)
    if not plan.is_absolute():
        # Relative to the registry's directory first, then to the working directory.
        candidate = path.parent / plan
        plan = candidate if candidate.exists() else plan
    return registry.model_copy(update={"plan": str(plan)})


def method_plan(registry: Registry, entry: _Entry, out_dir: Path) -> Path:
    """Write the template plan narrowed to one method; returns the new plan's path."""
    template = yaml.safe_load(Path(registry.plan).read_text())
    template["name"] = f"{template.get('name', 'sweep')}-{entry.name}"
    template["methods"] = [{"name": entry.name, "params": entry.params}]
    base = Path(registry.plan).resolve().parent
    template["datasets"] = [d if d == "synthetic" else str((base / d).resolve())
                            for d in template.get("datasets", ["synthetic"])]
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_path = out_dir / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(template, sort_keys=False))
    return plan_path


@flow(name="sweep", log_prints=True, persist_result=False)
def sweep_flow(registry: str = "infra/sweep-registry.yaml", store: str | None = None) -> dict:
    """Validate each registered method; returns {method: {verdict, promote, report}}."""
    from flows.validate import validate_flow

    logger = get_run_logger()
    reg = load_registry(registry)
    out = Path(reg.out)
    summary: dict[str, Any] = {}
    for entry in reg.methods:
        method_out = out / entry.name
        plan_path = method_plan(reg, entry, method_out)
        verdict = validate_flow(str(plan_path), str(method_out), store)
        decision = verdict["methods"][entry.name]
        summary[entry.name] = {"verdict": decision["verdict"], "promote": decision["promote"],
                               "report": str((method_out / "report.html").resolve())}
        logger.info("%s: %s (promote=%s)", entry.name, decision["verdict"], decision["promote"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    return summary
