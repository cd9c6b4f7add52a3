"""The ``binding`` block of verdict.json as the gate reads it: which plan, code and results a
verdict is bound to (``flows.binding`` writes it; ``flows.gate`` checks it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class Binding(_Strict):
    format: Literal["w2s-verdict-binding/1"]
    plan_name: str = Field(min_length=1)
    plan_hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    git_commit: str | None
    results_sha256: str = Field(pattern=SHA256)
    trainer_fingerprint: str = Field(pattern=SHA256)
    methods: dict[str, BoundMethod] = Field(min_length=2)
    controls: dict[str, BoundControl] = Field(default_factory=dict)


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
