"""Row formats of task files: the two automated-W2S-sandbox formats and a generic one.

- pairwise (sandbox): ``{prompt, first, second, label: "A"|"B"}``; label 1 is "B".
- binary (sandbox): ``{question, choice, label: true|false}``; label 1 is true.
- generic: ``{id?, text, label: 0|1|true|false}``.

Texts are rendered as in the sandbox's prompt templates, without the trailing "Label:" cue
(the label-token head adds its own cue), so the same row gives the same input in both projects.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s_common.errors import InputError

ID_FIELD = "id"
LABEL_FIELD = "label"
DERIVED_ID_HEX_CHARS = 16


@dataclass(frozen=True)
class RowFormat:
    """How to read one row format: its input fields, its labels and how to render the text."""

    name: str
    input_fields: tuple[str, ...]
    label_names: tuple[str, str]
    label_expectation: str
    parse_label: Callable[[Any], int | None]
    render: Callable[[dict[str, Any]], str]

    @property
    def description(self) -> str:
        fields = ", ".join(self.input_fields)
        return f"{self.name} {{{fields}, label: {self.label_expectation}}}"


def _pairwise_label(value: Any) -> int | None:
    return {"A": 0, "B": 1}.get(value) if isinstance(value, str) else None


def _binary_label(value: Any) -> int | None:
    return int(value) if isinstance(value, bool) else None


def _generic_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    return None


PAIRWISE = RowFormat(
    name="pairwise", input_fields=("prompt", "first", "second"), label_names=("A", "B"),
    label_expectation='"A" or "B"', parse_label=_pairwise_label,
    render=lambda row: f"Question: {row['prompt']}\nAnswer A: {row['first']}\n"
                       f"Answer B: {row['second']}")
BINARY = RowFormat(
    name="binary", input_fields=("question", "choice"), label_names=("False", "True"),
    label_expectation="true or false", parse_label=_binary_label,
    render=lambda row: f"Question: {row['question']}\nAnswer: {row['choice']}")
GENERIC = RowFormat(
    name="generic", input_fields=("text",), label_names=("0", "1"),
    label_expectation="0, 1, true or false", parse_label=_generic_label,
    render=lambda row: row["text"])

FORMATS: tuple[RowFormat, ...] = (PAIRWISE, BINARY, GENERIC)


def detect_format(row: dict[str, Any]) -> RowFormat | None:
    """Return the first format whose input fields all occur in ``row``, or None."""
    for row_format in FORMATS:
        if all(name in row for name in row_format.input_fields):
            return row_format
    return None


def derive_id(row_format: RowFormat, row: dict[str, Any]) -> str:
    """A content id from the input fields only: the label never enters it.

    Returns ``"h"`` followed by 16 hex characters of sha256 over the canonical JSON of the
    input fields. Repeats of the same content are disambiguated by the caller.
    """
    inputs = {name: row[name] for name in row_format.input_fields}
    payload = json.dumps(inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:DERIVED_ID_HEX_CHARS]


@dataclass(frozen=True)
class ParsedRow:
    """A validated row before ids are made unique: where it came from and what it holds."""

    path: Path
    line: int
    given_id: str | None
    content_id: str
    text: str
    label: int
    extra: dict[str, Any]


def parse_row(row_format: RowFormat, row: dict[str, Any], path: Path, line: int) -> ParsedRow:
    """Check one row against ``row_format`` and extract its id, text, label and extra fields.

    Raises:
        InputError: mixed formats, a missing field, a field of the wrong type, a label outside
            the format's binary set, or an unusable id.
    """
    detected = detect_format(row)
    if detected is not None and detected is not row_format:
        raise InputError(f"mixed formats: this row is {detected.description} but the task "
                         f"started as {row_format.description}", path=path, line=line)
    for name in row_format.input_fields + (LABEL_FIELD,):
        if name not in row:
            raise InputError(f"missing field; {row_format.name} rows need "
                             f"{row_format.description}", path=path, line=line, field=name)
    for name in row_format.input_fields:
        if not isinstance(row[name], str):
            raise InputError(f"expected a string, got {_json_type(row[name])}", path=path,
                             line=line, field=name)
    if row_format is GENERIC and not row["text"].strip():
        raise InputError("expected a non-empty string", path=path, line=line, field="text")
    label = row_format.parse_label(row[LABEL_FIELD])
    if label is None:
        raise InputError(f"expected {row_format.label_expectation}, got "
                         f"{json.dumps(row[LABEL_FIELD])}", path=path, line=line,
                         field=LABEL_FIELD)
    known = set(row_format.input_fields) | {LABEL_FIELD, ID_FIELD}
    return ParsedRow(path=path, line=line, given_id=_given_id(row, path, line),
                     content_id=derive_id(row_format, row), text=row_format.render(row),
                     label=label, extra={k: v for k, v in row.items() if k not in known})


def _given_id(row: dict[str, Any], path: Path, line: int) -> str | None:
    if ID_FIELD not in row or row[ID_FIELD] is None:
        return None
    value = row[ID_FIELD]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise InputError(f"expected a non-empty string or an integer, got {json.dumps(value)}",
                     path=path, line=line, field=ID_FIELD)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
