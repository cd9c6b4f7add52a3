"""A pydantic model of verdict.json (``schema_version: 1``, written by stats/) and its loader.

Fields the statistics engine may add later are kept (``extra="allow"``); the contract's fields
are checked strictly, so a truncated or hand-edited file is refused with the field it breaks.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from w2s_common.errors import InputError
from w2s_common.validation import first_error

Number = float | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Accuracies(_Open):
    """Mean accuracies (fractions) of the four arms in one cell."""

    weak: Number
    ceiling: Number
    baseline: Number
    method: Number


class Gain(_Open):
    """Method minus baseline accuracy (fraction) with its interval and p-values."""

    estimate: Number
    ci_low: Number
    ci_high: Number
    p_superiority: Number = None
    p_equivalence: Number = None
    p_adjusted: Number = None


class Pgr(_Open):
    """Performance-gap recovered; undefined when the ceiling does not beat the weak model."""

    defined: StrictBool
    estimate: Number = None
    ci_low: Number = None
    ci_high: Number = None

    @model_validator(mode="after")
    def _defined_has_estimate(self) -> Pgr:
        if self.defined and not _finite(self.estimate):
            raise ValueError("defined PGR needs a finite estimate")
        return self


class Cell(_Open):
    """One (rung, dataset) comparison of a method against the baseline."""

    rung: str
    dataset: str
    weak_model: str
    strong_model: str
    strong_params: int | None = None
    n_seeds: int = Field(ge=0)
    n_examples: int | None = None
    acc: Accuracies
    gain: Gain
    pgr: Pgr
    pgr_baseline: Pgr
    mde80: Number = None


class Trend(_Open):
    """Slope of the gain per decade of strong-model size, with its interval."""

    slope_per_decade: Number
    ci_low: Number = None
    ci_high: Number = None
    p_decline: Number = None


class MethodVerdict(_Open):
    """The decision for one method."""

    verdict: Literal["REAL", "VANISHED", "HARMFUL", "INCONCLUSIVE", "HOLD"]
    promote: StrictBool
    reasons: list[str]
    trend: Trend | None = None
    cells: list[Cell]


class ControlMark(_Open):
    """``control`` of a control's entry (``transfer.controls.ControlSpec.verdict_entry``)."""

    kind: Literal["spike_in", "null"]
    variant: Literal["spike_in", "synthetic_spike_in", "null"]
    name: str
    injected_gain: float | None
    spec: dict[str, Any]


class ControlVerdict(MethodVerdict):
    """The verdict on a control (a spike-in or null control of the baseline): analysed like a
    method, marked, and never promoted."""

    control: ControlMark
    promote: Literal[False]


class Verdict(_Open):
    """The whole verdict.json."""

    schema_version: Literal[1]
    alpha: float
    sesoi: float
    baseline: str
    production_rung: str
    methods: dict[str, MethodVerdict]
    controls: dict[str, ControlVerdict] = Field(default_factory=dict)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def parse_verdict(data: Any, *, source: str | Path | None = None) -> Verdict:
    """Validate a verdict dict against the schema.

    Args:
        data: the parsed verdict.json.
        source: file name used in error messages.

    Returns:
        The validated :class:`Verdict`.

    Raises:
        InputError: naming the first offending field and what was expected.
    """
    try:
        return Verdict.model_validate(data)
    except ValidationError as err:
        first = first_error(err)
        field = first.dotted(default="verdict")
        message = first.message
        if first.kind == "missing":
            message = "required field is missing (verdict.json schema_version 1)"
        raise InputError(message, path=source, field=field) from None


class _NotJson(ValueError):
    """Text that Python's json module accepts but JSON (RFC 8259) does not."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key is read as its last value by json.loads; a reader that takes the first
    # would see another verdict. The writer never repeats one.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _NotJson(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number (verdict.json writes null for undefined values)")


def load_verdict(path: str | Path) -> tuple[Verdict, dict[str, Any]]:
    """Read and validate a verdict.json file.

    Args:
        path: the file.

    Returns:
        ``(model, raw_dict)``: the validated model and the dict as read (renderers use the dict,
        so fields added by the statistics engine are kept).

    Raises:
        InputError: unreadable, empty, truncated or malformed JSON (with its line; NaN,
            Infinity and repeated keys included), or a schema violation (with its field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("verdict file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read verdict file ({err})", path=path) from None
    if not text.strip():
        raise InputError("verdict file is empty", path=path)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise InputError(f"invalid or truncated JSON: {err.msg} (column {err.colno})",
                         path=path, line=err.lineno) from None
    except _NotJson as err:
        raise InputError(str(err), path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object (verdict.json schema_version 1)", path=path,
                         line=1)
    return parse_verdict(data, source=path), data
