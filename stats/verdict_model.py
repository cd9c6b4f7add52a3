"""The verdict as a type: the pydantic models whose JSON is verdict.json (``schema_version`` 1).

``stats.analyze_table`` returns a :class:`Verdict`; the flows add the promotion guards
(``isolation``, ``guards``, ``baseline_isolation``), the controls, the jail mode, the plan's
identity and the ``binding`` by setting these attributes; every renderer reads them. A file is
read back with :meth:`Verdict.model_validate`: unknown keys are refused (``extra="forbid"``) and
values are not coerced (``strict``), so a hand-edited file fails on the field it breaks.

Optional parts are left out of the file when they were never set (``exclude_unset``): a
per-example cell has a bootstrap, a seed-level one may have a note instead, the production cells
have an ``outcome``, a claimed cell a ``claim``, a held method a ``hold``. Fields are declared in
the order the file lists them.
"""
from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

SCHEMA_VERSION = 1
# A reason that states the scale trend starts so (stats.analyze writes it, the prose reads it).
TREND_REASON_PREFIX = "trend: "
VERDICT_WORDS = ("REAL", "VANISHED", "HARMFUL", "INCONCLUSIVE", "HOLD")  # HOLD: data quality

# A number as JSON writes it: an int stays an int (``n_seeds``, ``df`` of a t with whole degrees
# of freedom); null where undefined (NaN and infinities are written as null).
Num = int | float | None
Interval = list[Num]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=False)


class Gain(_Model):
    """Method minus baseline accuracy (fraction): the estimate, its (1 - alpha) interval, the
    one-sided tests (superiority, TOST equivalence, harm) before and after the multiplicity
    correction, the bootstrap cross-check and the power statements' level."""

    estimate: Num
    ci_low: Num
    ci_high: Num
    se: Num = None
    df: Num = None
    seed_component_truncated: StrictBool | None = None
    p_superiority: Num = None
    p_equivalence: Num = None
    p_harm: Num = None
    p_adjusted: Num = None
    boot_note: str | None = None
    boot_se: Num = None
    boot_ci_low: Num = None
    boot_ci_high: Num = None
    boot_se_expected: Num = None
    boot_method: str | None = None
    p_equivalence_adjusted: Num = None
    p_harm_adjusted: Num = None
    family: Literal["confirmatory", "exploratory"] | None = None
    correction: str | None = None
    family_size: int | None = None
    decision_level: Num = None
    # The interval the decisions read (``tests_and_verdicts.decision_interval``).
    decision_ci_low: Num = None
    decision_ci_high: Num = None


class PGR(_Model):
    """Performance-gap recovered, (student - weak) / (ceiling - weak) (``stats.pgr``); undefined
    when the ceiling does not beat the weak model by ``min_gap``."""

    defined: StrictBool
    estimate: Num = None
    ci_low: Num = None
    ci_high: Num = None
    bounded: StrictBool | None = None
    delta_ci_low: Num = None
    delta_ci_high: Num = None
    p_gap: Num = None
    note: str | None = None
    boot_ci_low: Num = None
    boot_ci_high: Num = None
    gap: Num = None
    gap_df: Num = None
    min_gap: Num = None

    @model_validator(mode="after")
    def _defined_has_estimate(self) -> PGR:
        if self.defined and not isinstance(self.estimate, (int, float)):
            raise ValueError("defined PGR needs a finite estimate")
        return self


class TransferRatio(_Model):
    """Gain at this rung over the gain at the discovery rung (``stats.scale.transfer_ratio``)."""

    defined: StrictBool
    estimate: Num
    ci_low: Num
    ci_high: Num
    bounded: StrictBool | None


class Claim(_Model):
    """A claimed number checked at the discovery rung (``stats.claims``)."""

    kind: Literal["pgr", "gain"]
    claimed: Num
    replicated: Num
    p_shortfall: Num
    falls_short: StrictBool


class Cell(_Model):
    """One (rung, dataset) comparison of a method with the baseline."""

    rung: str
    dataset: str
    weak_model: str | None = None
    strong_model: str | None = None
    strong_params: int | None = None
    n_seeds: int = Field(ge=0)
    n_seeds_baseline: int | None = None
    n_examples: int | None = None
    design: str | None = None
    acc: dict[str, Num]
    acc_ci: dict[str, Interval] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    pgr: PGR
    pgr_baseline: PGR
    sesoi: Num = None
    gain: Gain
    mde80: Num = None
    seeds_needed: int | None = None
    examples_needed: int | None = None
    outcome: str | None = None
    transfer_ratio: TransferRatio | None = None
    claim: Claim | None = None


class MixedTrend(_Model):
    """The MixedLM cross-check of the trend (random dataset intercept)."""

    slope_per_decade: Num
    se: Num
    p_decline: Num
    method: Literal["mixedlm"]


class Trend(_Model):
    """Slope of the gain per tenfold increase in strong-model parameters (WLS,
    ``stats.scale.wls_trend``), with its interval and the one-sided test for decline."""

    slope_per_decade: Num
    ci_low: Num = None
    ci_high: Num = None
    p_decline: Num = None
    se: Num = None
    df: Num = None
    n_rungs: int | None = None
    n_cells: int | None = None
    dispersion: Num = None
    method: str | None = None
    shrinks_with_scale: StrictBool | None = None
    mixedlm: MixedTrend | None = None


class RecordIssue(_Model):
    """One importer record check (``stats.quality.RecordIssue``)."""

    dataset: str
    arm: str
    record: str
    kind: str
    message: str
    breaks_pairing: StrictBool


class DataQualityRecord(_Model):
    """An importer's record checks (``stats.quality.DataQuality``)."""

    issues: list[RecordIssue]
    notes: list[str]
    pairings: list[str]


class PairedGain(_Model):
    """A production-rung gain under one pairing of the records."""

    dataset: str
    n_seeds: int
    gain: Num
    ci_low: Num
    ci_high: Num
    p_adjusted: Num
    outcome: str | None


class Sensitivity(_Model):
    """The verdict under one pairing of the records."""

    pairing: str
    verdict: Literal[VERDICT_WORDS]  # type: ignore[valid-type]
    cells: list[PairedGain]


class Hold(_Model):
    """A DATA-QUALITY hold: the records that contradict their paths, and the verdict as filed
    and under every pairing the records suggest."""

    kind: Literal["data_quality"]
    verdict_as_filed: Literal[VERDICT_WORDS]  # type: ignore[valid-type]
    promote_as_filed: StrictBool
    records: list[str]
    issues: list[RecordIssue]
    sensitivity: list[Sensitivity]


class LabelAudit(_Model):
    """One cell of a method's label-leak audit run inside its validation (``flows.plan.Audit``):
    its student arm at ``seed`` rerun under two gold-label permutations; ``clean`` when the
    predictions agree, else ``evidence`` says how they differ."""

    rung: str
    dataset: str
    seed: StrictInt
    clean: StrictBool
    evidence: StrictStr
    # exact: any difference flags; follows_labels: a sign test (methods.audit.follows_labels).
    rule: Literal["exact", "follows_labels"]
    isolation: list[StrictStr] = Field(default_factory=list)


class ControlDetails(_Model):
    """``control_details`` of a control's entry (``transfer.controls.ControlSpec
    .verdict_entry``); its ``control`` says ``spike_in`` or ``null``."""

    variant: Literal["spike_in", "synthetic_spike_in", "null"]
    name: str
    injected_gain: Num
    spec: dict[str, Any]


class MethodVerdict(_Model):
    """The decision on one method (or, with ``control``, on a control of the baseline)."""

    verdict: Literal[VERDICT_WORDS]  # type: ignore[valid-type]
    promote: StrictBool
    reasons: list[str]
    trend: Trend | None = None
    baseline: str | None = None
    cells: list[Cell]
    hold: Hold | None = None
    isolation: Literal["builtin", "jail", "unjailed"] | None = None
    guards: list[str] | None = None
    control: Literal["spike_in", "null"] | None = None
    control_details: ControlDetails | None = None
    alpha: Num = None

    @model_validator(mode="after")
    def _control_never_promoted(self) -> MethodVerdict:
        if self.control is not None and self.promote:
            raise ValueError("a control is never promoted (promote must be false)")
        if (self.control is None) != (self.control_details is None):
            raise ValueError("a control carries both control and control_details")
        return self


class Look(_Model):
    """One look of the sequential design: the seeds it added and each method's decision."""

    look: int
    seeds: list[int]
    decisions: dict[str, dict[str, Any]]


class Sequential(_Model):
    """The sequential design's record: its looks, the seeds each method ran, the budget, and
    the looks it planned (``max_looks``; records before 2026-12-06 lack it, and their final
    analysis was the fixed-sample one)."""

    looks: list[Look]
    seeds_used: dict[str, list[int]]
    seed_budget: int
    max_looks: int | None = Field(default=None, ge=1)

    def stop(self, method: str) -> tuple[int, int] | None:
        """``(look, max_looks)``: the last look ``method`` was decided at (the one it stopped
        at, or the last the campaign made) and the looks planned; None where the record does
        not say both (no ``max_looks``, never looked at, or a look past the plan)."""
        looks = [look.look for look in self.looks if method in look.decisions]
        if self.max_looks is None or not looks or max(looks) > self.max_looks:
            return None
        return max(looks), self.max_looks


class PlanId(_Model):
    """The plan a verdict was derived from."""

    name: str
    plan_hash: str


class Verdict(_Model):
    """The whole verdict.json."""

    schema_version: Literal[1]
    alpha: float
    alpha_per_direction: Num = None
    decision_rule: str | None = None
    sesoi: float
    sesoi_pgr: Num = None
    baseline: str
    production_rung: str
    discovery_rung: str | None = None
    rungs: list[str] | None = None
    correction: str | None = None
    data_form: str | None = None
    # The question the analysis was asked (stats.cells): absent for the task's population of
    # items (the default, as in verdicts written before the field), "test_set" for these test
    # items. Each cell's ``design`` says which one it could answer (seed_level: the test set).
    estimand: Literal["population", "test_set"] | None = None
    notes: list[str] = Field(default_factory=list)
    methods: dict[str, MethodVerdict]
    data_quality: DataQualityRecord | None = None
    baseline_isolation: Literal["builtin", "jail", "unjailed"] | None = None
    controls: dict[str, MethodVerdict] = Field(default_factory=dict)
    jail: str | None = None
    plan: PlanId | None = None
    # The label-leak audit inside the validation: results name -> its audited cells; absent
    # when the plan turned the audit off (``audit: {mode: off}``) and in older verdicts.
    audits: dict[str, list[LabelAudit]] | None = None
    sequential: Sequential | None = None
    # Checked by ``flows.gate.Binding`` (stats does not know the plan or the code); kept here as
    # written so that the signature covers it.
    binding: dict[str, Any] | None = None
    hmac: dict[str, str] | None = None

    def as_json_dict(self) -> dict[str, Any]:
        """The verdict.json content as a dict (parts never set left out)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def to_json(self) -> str:
        """The verdict.json text (two-space indent, no NaN)."""
        return json.dumps(self.as_json_dict(), indent=2, allow_nan=False) + "\n"


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars Python numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def verdict_schema() -> dict[str, Any]:
    """The JSON schema of verdict.json (checked in as docs/verdict.schema.json)."""
    return Verdict.model_json_schema()
