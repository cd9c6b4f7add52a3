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

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.campaign import Campaign, Prepared
from flows.plan import MethodRef, narrow_plan
from flows.userfiles import require_regular_file
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
    require_regular_file(path, "registry file")  # a FIFO would block the read forever
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


def load_template(registry: Registry) -> dict[str, Any]:
    """The registry's template plan, read once for every method (its ``methods`` checked here:
    :func:`method_plan_text` reads them for their params; any other bad field is left for the
    narrowed plan's own check to name)."""
    template, root = read_yaml(registry.plan, "template plan")
    if not isinstance(template, dict):
        raise InputError("expected a mapping of plan fields", path=registry.plan,
                         line=node_line(root, ()))
    methods = template.get("methods")
    if methods is not None and not isinstance(methods, list):
        raise InputError("expected a list of methods ({name, params})", path=registry.plan,
                         line=node_line(root, ("methods",)), field="methods")
    for index, method in enumerate(methods or []):
        if not isinstance(method, dict) or not isinstance(method.get("name"), str) \
                or not isinstance(method.get("params") or {}, dict):
            raise InputError("expected a method as {name, params}", path=registry.plan,
                             line=node_line(root, ("methods", index)),
                             field=f"methods[{index}]")
    return template


def entry_words(methods: list[MethodRef]) -> list[str]:
    """One word per registry entry, naming its output directory and narrowed plan: the
    method's name with anything but letters, digits, ``_``, ``.`` and ``-`` made ``-``; where
    that changed the name or two entries share it (two ``external`` commands), the first 8 hex
    digits of the digest of the entry's name and params are appended (a plugin reference
    ``pkg.mod:Attr`` made a plan name the plan's own pattern refused: helper-44)."""
    words = [re.sub(r"[^A-Za-z0-9_.-]", "-", entry.name) for entry in methods]
    named = []
    for entry, word in zip(methods, words):
        if word != entry.name or words.count(word) > 1:
            digest = hashlib.sha256(json.dumps([entry.name, entry.params], sort_keys=True,
                                               default=str).encode()).hexdigest()
            word = f"{word}-{digest[:8]}"
        named.append(word)
    return named


def method_plan_text(registry: Registry, template: dict[str, Any], entry: MethodRef,
                     word: str) -> str:
    """The template plan narrowed to one method, as YAML (``flows.plan.narrow_plan``, paths
    made absolute against the template's directory), named after the entry's ``word``."""
    plan = narrow_plan(template, entry.name, entry.params,
                       name=f"{template.get('name', 'sweep')}-{word}",
                       base_dir=Path(registry.plan).parent)
    return yaml.safe_dump(plan, sort_keys=False)


@dataclass(frozen=True)
class SweepItem:
    """One registered method, checked and ready to run: its plan's text, where that plan and
    the method's outputs go, and the campaign prepared from it (once: the validate subflow
    takes it as it is)."""

    method: str
    word: str  # names its output directory and its line of sweep.json (``entry_words``)
    plan_path: Path
    out: Path
    plan_text: str
    campaign: Campaign


def prepare_sweep(registry_path: str | Path, store: str | Path | None = None
                  ) -> tuple[Registry, list[SweepItem]]:
    """Check every method's plan (methods, params, ladder, data, budget, engine, rungs) before
    compute, each prepared as the campaign that will run (``Campaign.prepare`` on the plan's
    text, attributed to ``<out>/<method>/plan.yaml``). Writes nothing: the sweep writes each
    plan just before its validate subflow runs.

    Returns:
        The registry and one :class:`SweepItem` per method, in registry order.

    Raises:
        InputError: the registry or any method's plan is bad (located at the registry's entry
            for that method); nothing has run and nothing was written.
    """
    registry = load_registry(registry_path)
    if not Path(registry.plan).is_file():
        raise InputError(f"template plan {registry.plan} not found", path=registry_path,
                         field="plan")
    keys = [json.dumps([entry.name, entry.params], sort_keys=True, default=str)
            for entry in registry.methods]
    duplicate = next((i for i, k in enumerate(keys) if keys.index(k) != i), None)
    if duplicate is not None:
        name = registry.methods[duplicate].name
        raise InputError(f"method {name!r} is listed twice with the same params",
                         path=registry_path, field=f"methods[{duplicate}]")
    template = load_template(registry)
    items = []
    for index, (entry, word) in enumerate(zip(registry.methods,
                                              entry_words(registry.methods))):
        text = method_plan_text(registry, template, entry, word)
        method_out = Path(registry.out) / word
        plan_path = method_out / "plan.yaml"
        try:
            campaign = Campaign.prepare(plan_path, method_out, store, plan_text=text)
        except InputError as err:
            if err.path != str(plan_path):
                raise
            # That file does not exist yet: point at the registry's entry.
            _, root = read_yaml(Path(registry_path), "registry file")
            detail = f"{err.field}: {err.message}" if err.field else err.message
            raise InputError(f"the plan for {entry.name} (template {registry.plan}): "
                             f"{detail}", path=registry_path,
                             line=node_line(root, ("methods", index)),
                             field=f"methods[{index}]") from None
        items.append(SweepItem(entry.name, word, plan_path, method_out, text, campaign))
    return registry, items


@flow(name="sweep", log_prints=True, persist_result=False)
def sweep_flow(registry: str = "infra/sweep-registry.yaml", store: str | None = None,
               prepared: Prepared | None = None) -> dict:
    """Validate each registered method; returns {method: {verdict, promote, report}}.

    ``prepared``: what ``prepare_sweep`` returned to the CLI for the same registry and store
    (the registry and its :class:`SweepItem` list), so no plan is prepared twice; a
    deployment's run checks the registry here."""
    from flows.execute import GroupFailed
    from flows.outdir import exclusive_out
    from flows.validate import validate_flow
    from w2s_common.atomic import atomic_write_text

    logger = get_run_logger()
    reg, items = prepare_sweep(registry, store) if prepared is None else prepared.value
    summary: dict[str, Any] = {}
    with exclusive_out(reg.out, "out in the registry"):  # held already when the CLI started it
        for item in items:
            # A plugin's verdict is filed under the name it gives itself, not the registry's.
            label = item.campaign.labels()[item.method]
            try:
                with exclusive_out(item.out):  # held until its validate subflow has run
                    atomic_write_text(item.plan_path, item.plan_text)
                    verdict = validate_flow(str(item.plan_path), str(item.out), store,
                                            prepared=Prepared(item.campaign))
            except (InputError, GroupFailed) as err:
                # One method's failure (its plugin crashed, refused, timed out) is its own
                # result: the others of the night are still validated.
                line = " ".join(str(err).split())
                summary[item.word] = {"verdict": None, "promote": False, "failed": line,
                                      "report": None}
                logger.error("%s: failed: %s", item.word, line)
                continue
            decision = verdict.methods[label]
            summary[item.word] = {"verdict": decision.verdict, "promote": decision.promote,
                                  "report": str((item.out / "report.html").resolve())}
            if item.word != item.method:
                summary[item.word]["method"] = item.method
            if label != item.method:
                summary[item.word]["results_name"] = label
            logger.info("%s: %s (promote=%s)", item.word, decision.verdict, decision.promote)
        atomic_write_text(Path(reg.out) / "sweep.json", json.dumps(summary, indent=2))
    return summary
