"""verdict.json's loader: the file parsed into ``stats.verdict_model.Verdict``.

The model is the contract (stats owns it): unknown keys are refused and values are not coerced,
so a truncated or hand-edited file is refused with the field it breaks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.userfiles import parse_json, read_user_text
from stats.verdict_model import VERDICT_WORDS, Verdict
from w2s_common.errors import InputError
from w2s_common.jsonkeys import RepeatedKey, one_value_per_key
from w2s_common.validation import first_error

VERDICTS = VERDICT_WORDS


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


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number (verdict.json writes null for undefined values)")


@dataclass(frozen=True)
class VerdictFile:
    """A verdict.json as read: the validated model, which every reader uses, and the JSON
    object exactly as parsed, which only the gate needs: the HMAC is computed over the file's
    own content, and re-derivation compares the file as written (not the model's dump of it)."""

    verdict: Verdict
    as_written: dict[str, Any]


def load_verdict(path: str | Path) -> Verdict:
    """Read and validate a verdict.json file (:func:`read_verdict_file`).

    Raises:
        InputError: as :func:`read_verdict_file`.
    """
    return read_verdict_file(path).verdict


def read_verdict_file(path: str | Path) -> VerdictFile:
    """Read and validate a verdict.json file, keeping the parsed JSON beside the model.

    Args:
        path: the file.

    Returns:
        The :class:`VerdictFile`.

    Raises:
        InputError: missing, not a regular file, unreadable, empty, truncated, nested too
            deeply or malformed JSON (with its line; NaN, Infinity and repeated keys included),
            or a schema violation (with its field).
    """
    path = Path(path)
    text = read_user_text(path, "verdict file")
    if not text.strip():
        raise InputError("verdict file is empty", path=path)
    try:
        data = parse_json(text, path, object_pairs_hook=one_value_per_key,
                          parse_constant=_no_constant)
    except (_NotJson, RepeatedKey) as err:
        raise InputError(str(err), path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object (verdict.json schema_version 1)", path=path,
                         line=1)
    return VerdictFile(parse_verdict(data, source=path), data)
