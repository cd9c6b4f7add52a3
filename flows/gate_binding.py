"""The ``binding`` block of verdict.json as the gate reads it: which plan, code and results a
verdict is bound to (``flows.binding`` writes it; ``flows.gate`` checks it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flows.binding import BINDING_FORMAT
from stats.verdict_model import Verdict
from w2s_common.errors import InputError
from w2s_common.validation import validation_input_error

SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BoundMethod(_Strict):
    reference: str = Field(min_length=1)
    params: dict[str, Any]
    kind: Literal["builtin", "external", "reference", "entry-point"]
    provider: str | None
    fingerprint: str = Field(pattern=SHA256)


class BoundControl(_Strict):
    name: str = Field(min_length=1)
    kind: Literal["null", "spike_in", "synthetic_spike_in"]
    spec: dict[str, Any]
    baseline: str = Field(min_length=1)
    fingerprint: str = Field(pattern=SHA256)


class BoundReuseCheck(_Strict):
    """What the campaign's reuse check did (``flows.reuse_check``): how many runs the verdict
    took from the store without computing them, how many it computed from shared cache entries
    it had not built, how many cells held either (the cells the check may draw), how many the
    plan asked to recompute and how many were (their runs compared equal, or no verdict would
    have been written)."""

    cells_asked: int = Field(ge=0)
    runs_reused: int = Field(ge=0)
    runs_from_shared_cache: int = Field(ge=0)
    # A pool campaign's runs its workers say they computed: their outcomes pass through the
    # store, so the check treats them as it treats reused runs (flows.reuse_check.checked_here).
    runs_unverified: int = Field(0, ge=0)
    cells_eligible: int = Field(ge=0)
    cells_recomputed: int = Field(ge=0)
    runs_compared: int = Field(ge=0)
    largest_difference: float | None
    tolerance: float | None

    @model_validator(mode="after")
    def _consistent(self) -> BoundReuseCheck:
        if self.cells_recomputed > min(self.cells_asked, self.cells_eligible):
            raise ValueError("cells_recomputed exceeds the cells asked for or the cells "
                             "eligible")
        if (self.runs_compared == 0) != (self.cells_recomputed == 0):
            raise ValueError("runs_compared and cells_recomputed disagree")
        if (self._outside == 0) != (self.cells_eligible == 0):
            raise ValueError("runs_reused, runs_from_shared_cache, runs_unverified and "
                             "cells_eligible disagree")
        return self

    @property
    def _outside(self) -> int:
        """Runs resting on something this campaign did not verify it made itself."""
        return self.runs_reused + self.runs_from_shared_cache + self.runs_unverified

    def _rests_on(self) -> str:
        unverified = (f", and {self.runs_unverified} only a pool's workers say they computed"
                      if self.runs_unverified else "")
        return (f"{self.runs_reused} run(s) reused from the store and "
                f"{self.runs_from_shared_cache} computed from shared cache entries{unverified}")

    def unmet(self, minimum: int) -> str | None:
        """Why this check falls short of ``minimum`` recomputed cells (all eligible cells
        where fewer), or None when it does not."""
        needed = min(minimum, self.cells_eligible)
        if self.cells_recomputed >= needed:
            return None
        return (f"the verdict rests on {self._rests_on()}; its reuse check recomputed "
                f"{self.cells_recomputed} of the {self.cells_eligible} cell(s) holding them; "
                f"the gate requires {needed} (--min-reuse-check-cells {minimum})")

    def bounds_problem(self, runs: list[Any]) -> str | None:
        """What in this record cannot be true of ``runs`` (the runs results.parquet names, each
        with a ``spec`` of rung, dataset and seed), or None: more eligible cells than the table
        has, more reused or cache-fed runs than it has runs, more runs compared than the cells
        recomputed hold. A record within these bounds may still be false; only the HMAC
        vouches for it."""
        cells: dict[tuple[str, str, int], int] = {}
        for run in runs:
            key = (str(run.spec.rung), str(run.spec.dataset), int(run.spec.seed))
            cells[key] = cells.get(key, 0) + 1
        if self.cells_eligible > len(cells):
            return (f"cells_eligible is {self.cells_eligible}; the table has {len(cells)} "
                    "cell(s)")
        if self._outside > len(runs):
            return (f"runs_reused + runs_from_shared_cache + runs_unverified is "
                    f"{self._outside}; the table has {len(runs)} run(s)")
        largest = max(cells.values(), default=0)
        if self.runs_compared > self.cells_recomputed * largest:
            return (f"runs_compared is {self.runs_compared}; {self.cells_recomputed} cell(s) "
                    f"of the table hold at most {self.cells_recomputed * largest}")
        return None

    def describe(self) -> str:
        if self.cells_eligible == 0:
            return ("reuse check: no run reused from the store or computed from another "
                    "process's cache entries (HF checkpoints are not covered)")
        return (f"reuse check: {self.cells_recomputed} of {self.cells_eligible} cell(s) "
                f"recomputed ({self._rests_on()}), {self.runs_compared} run(s) compared")


class Binding(_Strict):
    format: Literal["w2s-verdict-binding/1"]
    plan_name: str = Field(min_length=1)
    plan_hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    git_commit: str | None
    results_sha256: str = Field(pattern=SHA256)
    trainer_fingerprint: str = Field(pattern=SHA256)
    methods: dict[str, BoundMethod] = Field(min_length=2)
    controls: dict[str, BoundControl] = Field(default_factory=dict)
    reuse_check: BoundReuseCheck | None = None  # absent in verdicts written before 2026-12-05


def parse_binding(verdict: Verdict, source: str | Path) -> Binding:
    """The verdict's ``binding`` block, validated.

    Raises:
        InputError: missing (a hand-written file, or one from before verdicts were bound) or
            malformed, naming the field.
    """
    if not written_in_file(verdict, "binding"):
        raise InputError(f"no binding block: the gate promotes only verdicts written by validate, "
                         f"which name their plan, code fingerprints and results "
                         f"({BINDING_FORMAT}); this file is from `analyze` (imported results), "
                         "hand-written or from an older version",
                         path=source, field="binding")
    try:
        return Binding.model_validate(verdict.binding)
    except ValidationError as err:
        raise validation_input_error(err, path=source, prefix=("binding",)) from None


def written_in_file(model: BaseModel, field_name: str) -> bool:
    """Whether the file has ``field_name`` (an optional field never set is left out of it; a
    check that names a missing entry must not take an explicit null for one)."""
    return field_name in model.model_fields_set
