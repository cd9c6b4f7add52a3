"""Validation plans: which methods to validate, where, with how many seeds and which thresholds.

A plan is YAML validated by pydantic (``extra="forbid"`` everywhere). Every problem becomes one
``w2s_common.errors.InputError`` naming the file, the line of the offending YAML key, the field and
what was expected, so a bad plan fails before any compute starts.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows.plan_sections import (  # noqa: F401  (MethodRef, Audit: re-exported)
    DEFAULT_MAX_ARMS,
    EXECUTION_FIELDS,
    NAME_PATTERN,
    Audit,
    Budget,
    Claim,
    Compute,
    ControlEntry,
    Location,
    MethodRef,
    PlanFieldError,
    Seeds,
    _Strict,
)
from flows.reuse_check import ReuseCheck
from flows.userfiles import require_regular_file
from methods.policy import JailSettings
from transfer.ladder import builtin_ladder_names, is_ladder_path
from w2s_common.errors import InputError
from w2s_common.validation import first_error
from w2s_common.yamlio import parse_yaml, read_yaml

SYNTHETIC = "synthetic"
# Built-in plans ship as package data beside this module (found the same way when installed).
PLAN_DIR = Path(__file__).resolve().with_name("plans")
class Plan(_Strict):
    """A validation plan. Build it with :func:`load_plan` to get file/line-aware errors."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Plan name (letters, digits, '_', '.', '-'); used in keys.")
    methods: list[MethodRef] = Field(min_length=1, description="Candidate methods.")
    baseline: str = Field("vanilla", min_length=1,
                          description="Method every candidate is compared to.")
    ladder: str = Field("tiny", min_length=1,
                        description="Ladder name (transfer/ladders/) or a YAML file "
                                    "(relative to the plan).")
    rungs: list[str] | Literal["all"] = Field("all", description='Rung names, or "all".')
    datasets: list[str] = Field(default_factory=lambda: [SYNTHETIC], min_length=1,
                                description='"synthetic" or dataset directories '
                                            '(relative to the plan).')
    seeds: Seeds = Field(default_factory=Seeds)
    sesoi: float = Field(0.01, gt=0, lt=1,
                         description="Smallest effect size of interest (accuracy fraction).")
    sesoi_pgr: float | None = Field(None, gt=0, lt=1, description="SESOI on the PGR scale, if any.")
    # Below 0.5, as the statistics require (stats.analyze, stats.sequential): before, a larger
    # alpha was refused only after the first batch of seeds had trained.
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Family-wise (or FDR) error level.")
    correction: Literal["holm", "bonferroni", "bh"] = "holm"
    estimand: Literal["population", "test_set"] = Field(
        "population", description="The question the intervals answer: the gain on the task's "
        "population of items (test items a sample of them; default) or on these test items "
        "(narrower; docs/stats.md).")
    claims: dict[str, Claim] | None = Field(
        None, description="Claimed discovery-scale numbers per method.")
    controls: list[ControlEntry] = Field(
        default_factory=list, description="Controls of the pipeline on real compute (spike-in "
        "and null controls of the baseline): analysed like candidates, reported apart, never "
        "promoted.")
    compute: Compute = Field(default_factory=Compute)
    budget: Budget = Field(default_factory=Budget,
                           description="Most arms the plan may run (checked before compute).")
    jail: JailSettings = Field(default_factory=JailSettings,
                               description="How plugin and external-command code runs (the jail "
                               "is required unless mode: off, which is never promoted).")
    audit: Audit = Field(default_factory=Audit,
                         description="The label-leak canary inside the validation.")
    reuse_check: ReuseCheck = Field(
        default_factory=ReuseCheck, description="Reused runs recomputed in secret and compared "
        "with the stored copies (flows.reuse_check; not in the hash: it changes no result).")

    _source: Path | None = PrivateAttr(default=None)
    _lines: dict[Location, int] = PrivateAttr(default_factory=dict)

    @field_validator("methods", "controls")
    @classmethod
    def _unique_names(cls, entries: list[Any], info: ValidationInfo) -> list[Any]:
        what = "method" if info.field_name == "methods" else "control"
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if entry.name in seen:
                raise PlanFieldError(f"duplicate {what} {entry.name!r}; names must be unique",
                                     (index, "name"))
            seen.add(entry.name)
        return entries

    @field_validator("rungs", mode="wrap")
    @classmethod
    def _rungs_list_or_all(cls, value: Any, handler: Any) -> list[str] | str:
        # Replaces pydantic's per-union-member errors with one expectation.
        try:
            rungs = handler(value)
        except ValidationError:
            raise ValueError(f'expected a list of rung names or "all", got {value!r}') from None
        if isinstance(rungs, list):
            if not rungs:
                raise ValueError('expected at least one rung name, or "all"')
            if len(set(rungs)) != len(rungs):
                raise ValueError("rung names must be unique")
        return rungs

    @field_validator("ladder")
    @classmethod
    def _ladder_file_exists(cls, ladder: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        if not is_ladder_path(ladder):
            if ladder not in builtin_ladder_names():
                raise ValueError(f"unknown ladder {ladder!r}; built in: "
                                 f"{', '.join(builtin_ladder_names())} (or a YAML file)")
            return ladder
        if base is None:
            return ladder
        path = Path(ladder) if Path(ladder).is_absolute() else Path(base) / ladder
        if not path.is_file():
            raise ValueError(f"expected a built-in ladder name or an existing ladder file, got "
                             f"{ladder!r} (looked in {path})")
        return ladder

    @field_validator("datasets")
    @classmethod
    def _datasets_exist(cls, datasets: list[str], info: ValidationInfo) -> list[str]:
        base = (info.context or {}).get("base_dir")
        for index, entry in enumerate(datasets):
            if entry == SYNTHETIC or base is None:
                continue
            path = Path(entry) if Path(entry).is_absolute() else Path(base) / entry
            if not path.is_dir():
                raise PlanFieldError(f'expected "synthetic" or an existing dataset directory, '
                                     f"got {entry!r} (looked in {path})", (index,))
        if len(set(datasets)) != len(datasets):
            raise ValueError("dataset entries must be unique")
        if base is not None:
            names = dataset_names(datasets, Path(base))
            for index, name in enumerate(names):
                if name in names[:index]:
                    # Results and claims name a dataset by its directory's name (TaskData.name).
                    raise PlanFieldError(f"two datasets named {name!r}: results name a dataset "
                                         "by its directory's name; rename one", (index,))
        return datasets

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Plan:
        from transfer.controls import is_control_label

        if is_control_label(self.baseline):
            raise PlanFieldError("names starting with 'control:' are reserved for controls",
                                 ("baseline",))
        for index, entry in enumerate(self.methods):
            if is_control_label(entry.name):
                raise PlanFieldError("names starting with 'control:' are reserved for controls "
                                     "(list controls under `controls:`)",
                                     ("methods", index, "name"))
            if entry.name == self.baseline:
                raise PlanFieldError(
                    f"{entry.name!r} is the baseline; list only candidate methods here",
                    ("methods", index, "name"))
        from stats.claims import CLAIM_KINDS

        base = (info.context or {}).get("base_dir")
        for method, claim in (self.claims or {}).items():
            if method not in self.method_names:
                raise PlanFieldError(
                    f"claim for unknown method {method!r}; expected one of {self.method_names}",
                    ("claims", method))
            if claim.dataset in CLAIM_KINDS:
                # {dataset: {...}} would read as a claim of that kind on every dataset.
                raise PlanFieldError(f"a claim cannot name a dataset {claim.dataset!r} (a claim "
                                     "kind's name); rename the dataset's directory",
                                     ("claims", method, "dataset"))
            if claim.dataset is not None and base is not None:
                names = dataset_names(self.datasets, Path(base))
                if claim.dataset not in names:
                    raise PlanFieldError(f"claim on dataset {claim.dataset!r}, which the plan "
                                         f"does not run; expected one of {names}",
                                         ("claims", method, "dataset"))
        return self

    @property
    def method_names(self) -> list[str]:
        """Candidate method names in plan order."""
        return [entry.name for entry in self.methods]

    @property
    def control_labels(self) -> list[str]:
        """Control arm labels (``control:<kind>:<name>``) in plan order."""
        return [entry.label for entry in self.controls]

    @property
    def source(self) -> Path | None:
        """The YAML file this plan was loaded from (None when built in code)."""
        return self._source

    @property
    def plan_hash(self) -> str:
        """sha256 (hex, first 16 chars) of the canonical JSON of every field, defaults included.

        Two plans with the same hash ask for the same computation; file layout, comments and key
        order do not change it, and neither do ``budget`` (it refuses plans, it changes no
        result), ``reuse_check`` (it checks the store, it changes no result) and the executor
        settings of ``compute`` (`EXECUTION_FIELDS`: where the groups
        run, not what they compute). An empty ``controls`` list and the default ``estimand``
        and ``audit`` are left out, so plans written before they existed keep their hash.
        """
        exclude: dict[str, Any] = {"budget": True, "compute": set(EXECUTION_FIELDS),
                                   "reuse_check": True}
        if not self.controls:
            exclude["controls"] = True
        if self.estimand == "population":
            exclude["estimand"] = True
        if self.audit == Audit():
            exclude["audit"] = True  # plans from before the audit existed keep their hash
        data = self.model_dump(mode="json", exclude=exclude)
        if data["compute"]["nodes"] == 1:
            del data["compute"]["nodes"]  # plans from before `nodes` existed keep their hash
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_compute(self, **settings: Any) -> Plan:
        """This plan with some ``compute`` settings replaced (the CLI's ``--executor``,
        ``--work-pool``); InputError naming the setting when a value is invalid."""
        values = {k: v for k, v in settings.items() if v is not None}
        if not values:
            return self
        try:
            compute = Compute.model_validate({**self.compute.model_dump(), **values})
        except ValidationError as err:
            loc, message = _first_error(err)
            raise InputError(message, field=_dotted(("compute", *loc))) from None
        plan = self.model_copy(update={"compute": compute})
        plan._source, plan._lines = self._source, self._lines
        return plan

    def ladder_ref(self) -> str:
        """The ladder as ``transfer.ladder.load_ladder`` takes it: a built-in name, or the file
        resolved against the plan file's directory (as datasets are), so that neither the
        working directory nor a worker's changes which ladder runs."""
        if not is_ladder_path(self.ladder):
            return self.ladder
        base = self._source.parent if self._source is not None else Path.cwd()
        return str((base / self.ladder).resolve())

    def dataset_names(self) -> list[str]:
        """The datasets as results name them: ``synthetic`` or the directory's name."""
        return [SYNTHETIC if path is None else path.name for path in self.dataset_paths()]

    def dataset_paths(self) -> list[Path | None]:
        """Datasets as paths resolved against the plan file's directory; None is the synthetic
        task."""
        base = self._source.parent if self._source is not None else Path.cwd()
        return [None if entry == SYNTHETIC else (base / entry).resolve() for entry in self.datasets]

    def line_of(self, *loc: str | int) -> int | None:
        """1-based line of the YAML node at ``loc`` (or of its closest existing parent)."""
        return _closest_line(self._lines, tuple(loc))

    def _raise(self, loc: Location, message: str) -> None:
        raise InputError(message, path=self._source, line=self.line_of(*loc), field=_dotted(loc))


def dataset_names(entries: list[str], base: Path) -> list[str]:
    """Plan dataset entries as results name them (``transfer.data``'s ``TaskData.name``):
    ``synthetic``, or the resolved directory's name (relative entries against ``base``)."""
    return [SYNTHETIC if entry == SYNTHETIC else (base / entry).resolve().name
            for entry in entries]


def load_plan(path: str | Path, text: str | None = None) -> Plan:
    """Load and validate a plan YAML file.

    Args:
        path: the plan file, or the name of a built-in plan (``demo``, ``micro-ci``,
            ``tiny-ci``); relative dataset paths in it are resolved against its directory.
        text: the plan's YAML when it is not (yet) on disk at ``path`` (the sweep checks each
            method's plan before it writes any); errors still name ``path``.

    Returns:
        The validated :class:`Plan` (``plan.source`` is the file, ``plan.plan_hash`` its hash).

    Raises:
        InputError: one line ``file:line: field: what was expected`` for any problem.
    """
    if text is None:
        path = resolve_plan_path(path)
        require_regular_file(path, "plan file")  # a FIFO would block the read forever
        data, root = read_yaml(path, "plan file")
    else:
        path = Path(path)
        data, root = parse_yaml(text, path)
    if not isinstance(data, dict) or root is None:
        raise InputError("expected a mapping of plan fields (name, methods, ...)", path=path,
                         line=root.start_mark.line + 1 if root is not None else None)
    lines: dict[Location, int] = {}
    _index_lines(root, (), lines, path)
    try:
        plan = Plan.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as err:
        loc, message = _first_error(err)
        raise InputError(message, path=path, line=_closest_line(lines, loc),
                         field=_dotted(loc)) from None
    plan._source = path
    plan._lines = lines
    return plan


def narrow_plan(template: Mapping[str, Any], method: str,
                params: Mapping[str, Any] | None = None, *, name: str,
                base_dir: Path | None = None) -> dict[str, Any]:
    """A plan's fields (as read from its YAML) narrowed to one candidate method: what the sweep
    and the CI promotion gate validate for each method.

    Args:
        template: the template plan's fields (``yaml.safe_load`` of the file).
        method: the candidate's name or reference.
        params: its params; default: the params the template gives that method, else none.
        name: the narrowed plan's name.
        base_dir: the template's directory; when given, dataset directories and a ladder file
            are made absolute, so the plan means the same wherever it is written.

    Returns:
        The narrowed fields: only ``method`` as candidate, only its claim (``claims`` left out
        when it has none); everything else as in the template.
    """
    plan = dict(template)
    plan["name"] = name
    given = {m["name"]: m.get("params") or {} for m in template.get("methods") or []}
    plan["methods"] = [{"name": method,
                        "params": dict(params if params is not None else given.get(method, {}))}]
    if base_dir is not None:
        base = Path(base_dir).resolve()
        datasets = template.get("datasets", [SYNTHETIC])
        if isinstance(datasets, list):  # anything else is left for the plan's check to name
            plan["datasets"] = [str((base / d).resolve()) if isinstance(d, str)
                                and d != SYNTHETIC else d for d in datasets]
        ladder = template.get("ladder")
        if isinstance(ladder, str) and (base / ladder).is_file():
            plan["ladder"] = str((base / ladder).resolve())
    claims = template.get("claims") or {}
    if not isinstance(claims, Mapping):
        return plan  # left as written for the plan's check to name
    claims = {k: v for k, v in claims.items() if k == method}
    if claims:
        plan["claims"] = claims
    else:
        plan.pop("claims", None)
    return plan


def builtin_plan_names() -> list[str]:
    return sorted(p.stem for p in PLAN_DIR.glob("*.yaml"))


def resolve_plan_path(name_or_path: str | Path) -> Path:
    """A plan file: ``name_or_path`` itself, or a built-in plan when it is a bare name (no
    suffix, no such file here).

    Raises:
        InputError: a bare name that is neither a file nor a built-in plan.
    """
    path = Path(name_or_path)
    if path.suffix or path.exists():
        return path
    builtin = PLAN_DIR / f"{path}.yaml"
    if builtin.is_file():
        return builtin
    raise InputError(f"unknown plan {str(name_or_path)!r}; built in: "
                     f"{', '.join(builtin_plan_names())}, or a path to a YAML file", field="plan")


def plan_json_schema() -> dict[str, Any]:
    """The plan's JSON schema (draft 2020-12, as pydantic produces it)."""
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _first_error(err: ValidationError) -> tuple[Location, str]:
    """Location and a readable expectation for the first pydantic error."""
    first = first_error(err)
    loc = first.loc
    original = first.context.get("error")
    if isinstance(original, PlanFieldError):
        return loc + original.loc, str(original)
    message, kind = first.message, first.kind
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}; expected one of {_allowed_fields(loc[:-1])}"
    elif kind == "missing":
        message = "required field is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return loc, message


def _allowed_fields(parent: Location) -> list[str]:
    model: Any = Plan
    for part in parent:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        model = _model_in(annotation)
    return sorted(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _dotted(loc: Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "plan"


def _index_lines(node: yaml.Node, loc: Location, lines: dict[Location, int], path: Path) -> None:
    """Record the 1-based line of every key and item, and refuse duplicate keys."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise InputError(f"duplicate key {key!r}", path=path,
                                 line=key_node.start_mark.line + 1, field=_dotted(loc + (key,)))
            seen.add(key)
            _index_lines(value_node, loc + (key,), lines, path)
            # The key's own line beats the value's (a block value starts on the next line).
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, loc + (index,), lines, path)


def _closest_line(lines: dict[Location, int], loc: Location) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
