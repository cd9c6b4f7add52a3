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

from flows.plan import MethodRef, narrow_plan
from w2s_common.errors import InputError
from w2s_common.validation import validation_input_error
from w2s_common.yamlio import node_line, read_yaml


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str
    out: str = "reports/sweep"
    methods: list[MethodRef] = Field(min_length=1)


def load_registry(path: str | Path) -> Registry:
    """Read and check a registry file; its ``plan`` becomes a path that exists or stays as given.

    Raises:
        InputError: unreadable file, invalid YAML or a bad field (with its line).
    """
    path = Path(path)
    raw, root = read_yaml(path, "registry file")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as err:
        raise validation_input_error(err, path=path, root=root) from None
    plan = Path(registry.plan)
    if not plan.is_absolute():
        # Relative to the registry's directory first, then to the working directory.
        candidate = path.parent / plan
        plan = candidate if candidate.exists() else plan
    return registry.model_copy(update={"plan": str(plan)})


def method_plan_text(registry: Registry, entry: MethodRef) -> str:
    """The template plan narrowed to one method, as YAML (``flows.plan.narrow_plan``, paths
    made absolute against the template's directory)."""
    template = yaml.safe_load(Path(registry.plan).read_text())
    if not isinstance(template, dict):
        raise InputError("expected a mapping of plan fields", path=registry.plan)
    plan = narrow_plan(template, entry.name, entry.params,
                       name=f"{template.get('name', 'sweep')}-{entry.name}",
                       base_dir=Path(registry.plan).parent)
    return yaml.safe_dump(plan, sort_keys=False)


def prepare_sweep(registry_path: str | Path, write: bool = True
                  ) -> tuple[Registry, list[tuple[str, Path, Path]]]:
    """Check every method's plan (methods, params, ladder, data, budget, engine, rungs) before
    compute; then, with ``write``, write the plans to ``<out>/<method>/plan.yaml``.

    The plans are checked in a scratch directory, so a bad registry leaves nothing behind.

    Returns:
        The registry and ``[(method, plan path, output directory), ...]`` in registry order.

    Raises:
        InputError: the registry or any method's plan is bad (located at the registry's entry
            for that method); nothing has run and nothing was written.
    """
    import tempfile

    from flows.campaign import Campaign

    registry = load_registry(registry_path)
    if not Path(registry.plan).is_file():
        raise InputError(f"template plan {registry.plan} not found", path=registry_path,
                         field="plan")
    names = [entry.name for entry in registry.methods]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InputError(f"method {duplicate!r} is listed twice", path=registry_path,
                         field="methods")
    texts = []
    with tempfile.TemporaryDirectory(prefix="w2s-sweep-check-") as scratch:
        for index, entry in enumerate(registry.methods):
            text = method_plan_text(registry, entry)
            scratch_plan = Path(scratch) / entry.name / "plan.yaml"
            scratch_plan.parent.mkdir(parents=True)
            scratch_plan.write_text(text)
            try:
                Campaign.prepare(scratch_plan, Path(registry.out) / entry.name)
            except InputError as err:
                if err.path != str(scratch_plan):
                    raise
                # The scratch file is gone once this returns: point at the registry's entry.
                _, root = read_yaml(Path(registry_path), "registry file")
                detail = f"{err.field}: {err.message}" if err.field else err.message
                raise InputError(f"the plan for {entry.name} (template {registry.plan}): "
                                 f"{detail}", path=registry_path,
                                 line=node_line(root, ("methods", index)),
                                 field=f"methods[{index}]") from None
            texts.append(text)
    items = []
    for entry, text in zip(registry.methods, texts):
        method_out = Path(registry.out) / entry.name
        plan_path = method_out / "plan.yaml"
        if write:
            from w2s_common.atomic import atomic_write_text

            atomic_write_text(plan_path, text)
        items.append((entry.name, plan_path, method_out))
    return registry, items


@flow(name="sweep", log_prints=True, persist_result=False)
def sweep_flow(registry: str = "infra/sweep-registry.yaml", store: str | None = None) -> dict:
    """Validate each registered method; returns {method: {verdict, promote, report}}."""
    from flows.outdir import exclusive_out
    from flows.validate import validate_flow
    from w2s_common.atomic import atomic_write_text

    logger = get_run_logger()
    reg, items = prepare_sweep(registry, write=False)
    summary: dict[str, Any] = {}
    with exclusive_out(reg.out, "out in the registry"):  # held already when the CLI started it
        for name, plan_path, method_out in items:
            with exclusive_out(method_out):  # held until its validate subflow has run
                atomic_write_text(plan_path, method_plan_text(reg, _entry(reg, name)))
                verdict = validate_flow(str(plan_path), str(method_out), store)
            decision = verdict.methods[name]
            summary[name] = {"verdict": decision.verdict, "promote": decision.promote,
                             "report": str((method_out / "report.html").resolve())}
            logger.info("%s: %s (promote=%s)", name, decision.verdict, decision.promote)
        atomic_write_text(Path(reg.out) / "sweep.json", json.dumps(summary, indent=2))
    return summary


def _entry(registry: Registry, name: str) -> MethodRef:
    return next(entry for entry in registry.methods if entry.name == name)
