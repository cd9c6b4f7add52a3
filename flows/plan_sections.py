"""The sections of a validation plan (``flows.plan.Plan``): methods, controls, seeds, the
claimed PGR, compute, the label-leak audit and the budget, each a strict pydantic model whose
validators raise :class:`PlanFieldError` at the exact place in the plan they are about."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from w2s_common.names import MAX_SEED

Location = tuple[str | int, ...]


class PlanFieldError(ValueError):
    """A validator error that knows the exact location (inside the plan) it is about."""

    def __init__(self, message: str, loc: Location) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    # strict: YAML's `true` or '2' is not a number of seeds (lax mode read them as 1 and 2);
    # no NaN or infinity in any number (a claimed PGR of .nan was refused only after compute).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MethodRef(_Strict):
    """A method and its parameters (checked against the method's ``Params`` when the plan is
    prepared): a plan's candidate, a sweep registry's entry, a method of an arm group."""

    name: str = Field(min_length=1, description="Registered method name, e.g. aux_conf.")
    params: dict[str, Any] = Field(default_factory=dict, description="Method parameters.")


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ControlEntry(_Strict):
    """A control: the baseline re-run with a known change, analysed like a candidate, reported
    apart and never promoted (``transfer.controls``, docs/stats.md "Controls").

    ``kind: null`` (YAML null or the string) is an independent replicate of the baseline;
    ``spike_in`` replaces ``gold_fraction`` of the weak labels by gold ones (a legitimate gain,
    bounded by the baseline's headroom); ``synthetic_spike_in``
    corrects ``round(gain * n_test)`` wrong test predictions of a replicate (a gain exact by
    construction). Every kind needs a built-in baseline (controls use gold labels, so they run
    only trusted code, never in a jail).
    """

    kind: Literal["null", "spike_in", "synthetic_spike_in"] = Field(
        description="null, spike_in or synthetic_spike_in.")
    name: str = Field(min_length=1, pattern=NAME_PATTERN,
                      description="Control name (letters, digits, '_', '.', '-'); its arm is "
                                  "control:<kind>:<name>.")
    gold_fraction: float | None = Field(None, ge=0, le=1, description="spike_in: the fraction "
                                        "of weak labels replaced by gold labels.")
    gain: float | None = Field(None, gt=0, lt=1, description="synthetic_spike_in: accuracy "
                               "added (fraction of the test set; 0.02 = 2 points).")

    @field_validator("kind", mode="before")
    @classmethod
    def _yaml_null(cls, value: Any) -> Any:
        # `kind: null` reads as None in YAML; the null control is what it means.
        return "null" if value is None else value

    @model_validator(mode="after")
    def _settings_of_kind(self) -> ControlEntry:
        wants = {"null": (), "spike_in": ("gold_fraction",),
                 "synthetic_spike_in": ("gain",)}[self.kind]
        for key in ("gold_fraction", "gain"):
            value = getattr(self, key)
            if key in wants and value is None:
                raise PlanFieldError(f"a {self.kind} control needs {key}", (key,))
            if key not in wants and value is not None:
                raise PlanFieldError(f"{key} is not a setting of a {self.kind} control "
                                     f"(expected {', '.join(wants) or 'only kind and name'})",
                                     (key,))
        return self

    def spec(self):
        """The control as the arms build it (``transfer.controls.ControlSpec``)."""
        from transfer.controls import ControlSpec

        return ControlSpec(kind=self.kind, name=self.name, gold_fraction=self.gold_fraction,
                           gain=self.gain)

    @property
    def label(self) -> str:
        """Its arm name in results and verdict.json: ``control:<kind>:<name>``."""
        return self.spec().label


class Seeds(_Strict):
    """The sequential design's seed budget: start with ``initial``, add ``batch`` up to ``max``."""

    initial: int = Field(3, ge=1, le=MAX_SEED, description="Seeds run before the first analysis.")
    batch: int = Field(3, ge=1, le=MAX_SEED, description="Seeds added per sequential step.")
    max: int = Field(6, ge=1, le=MAX_SEED, description="Seed budget per (rung, dataset).")

    @model_validator(mode="after")
    def _initial_within_budget(self) -> Seeds:
        if self.initial > self.max:
            raise PlanFieldError(
                f"initial ({self.initial}) must be at most max ({self.max})", ("initial",))
        return self


class Claim(_Strict):
    """A PGR claimed at discovery scale, to compare against the transferred PGR."""

    pgr: float = Field(description="Claimed performance-gap recovered at discovery scale.")
    dataset: str | None = Field(None, description="Dataset the claim was made on.")


class Compute(_Strict):
    """How each training run is executed (checked against this machine before any compute)."""

    ds_config: str = Field("zero0", min_length=1,
                           description="DeepSpeed config: a name in transfer/engine/ds_configs/, "
                                       "or a path.")
    processes: int = Field(1, ge=1, le=4096,
                           description="Processes per run (>1 uses the deepspeed launcher).")
    max_parallel_runs: int = Field(
        1, ge=1, le=1024, description="Groups executing at the same time (local executor).")
    # The engine trains in fp32 or DeepSpeed's bf16 mode; it has no fp16 mode.
    precision: Literal["fp32", "bf16"] = "fp32"
    nodes: int = Field(1, ge=1, le=1024,
                       description="Nodes per group (>1: the ranks of a group span nodes through "
                                   "the PyTorch c10d rendezvous; needs the pool executor on a "
                                   "pool with the multi-node job template).")
    # Where groups run. They change how a plan is executed, never what it computes, so they are
    # not part of the plan's hash (a verdict binds the same plan whichever executor made it).
    executor: Literal["local", "pool"] = Field(
        "local", description="local: groups run as subprocesses of the validate flow; pool: "
                             "each group is a flow run of the run-arm-group deployment on "
                             "`work_pool` (docs/scale.md).")
    work_pool: str = Field("w2s-process", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                           description="Prefect work pool the group runs go to (pool executor).")
    deployment: str | None = Field(
        None, pattern=r"^[^/]+/[^/]+$",
        description="Deployment 'flow/name' of the group runs; default run-arm-group/<work_pool> "
                    "(created on first use when missing).")
    start_timeout_s: float = Field(
        600.0, gt=0, le=7 * 24 * 3600,
        description="Seconds a group run may wait for a worker of the pool to start it; then "
                    "the validation stops with one line.")
    group_reruns: int = Field(2, ge=0, le=100,
                              description="Reruns of a group run whose infrastructure crashed.")


# Fields of `Compute` that choose where groups run, not what they compute (left out of plan_hash).
EXECUTION_FIELDS = frozenset({"executor", "work_pool", "deployment", "start_timeout_s",
                              "group_reruns"})


DEFAULT_MAX_ARMS = 1000


class Audit(_Strict):
    """The label-leak canary run inside the validation (docs/security.md, "The audit inside
    the validation"): for each method (the baseline too), ``cells`` of the campaign's cells
    (rung, dataset, seed), each drawn after its look's real runs are stored, are run twice
    more with the gold labels permuted and compared with the real run; a method whose
    predictions follow the labels is never promoted. Its inputs there are the real run's, so
    it cannot tell the audit from the validation."""

    mode: Literal["campaign", "off"] = Field(
        "campaign", description="campaign: audit every method in its own campaign (default); "
        "off: no audit (recorded in the verdict).")
    cells: int = Field(1, ge=1, le=64, description="Cells audited per method (at most every "
                       "cell it runs). A method that reads labels in a fraction f of its runs, "
                       "whichever they are, is caught with probability about 1-(1-f)^cells.")
    check_determinism: bool = Field(
        False, description="Also rerun the first permutation, to tell a nondeterministic method "
        "(flagged 'nondeterministic') from a leak; one more run per audited cell.")
    rule: Literal["auto", "exact", "follows_labels"] = Field(
        "auto", description="exact: any difference between the two runs flags the method "
        "(bitwise reproducible engines); follows_labels: only predictions that follow their "
        "own permutation's labels, or their opposite (two-sided sign test at alpha; engines "
        "whose runs differ by noise); auto: exact on a worker without GPUs, follows_labels "
        "on one with GPUs.")
    alpha: float = Field(0.001, gt=0, lt=0.5, description="Level of the follows_labels test "
                         "(each audited cell's rate of flagging a method that reads no labels).")


class Budget(_Strict):
    """The most compute a plan may ask for; a plan over it is refused before anything runs.

    ``max_arms`` bounds the arms the plan can execute if no method is decided early:
    rungs x datasets x ``seeds.max`` x (weak + ceiling + baseline + candidates). The default
    (1000) is about 10 times the demo plan; raise it deliberately for a large campaign.
    """

    max_arms: int = Field(DEFAULT_MAX_ARMS, ge=1, le=1_000_000,
                          description="Most arms the plan may execute (default 1000).")
