"""The file contract between the pipeline and a method run out of process.

Inputs (written by the pipeline into ``{inputs}``):
    ``student.jsonl``  rows ``{"id", "text", "weak_prob"}`` (the student split, weak P(label 1));
    ``test.jsonl``     rows ``{"id", "text"}`` (the test split, unlabeled);
    ``task.json``      ``{"label_names": [name0, name1], "seed": int, "n_student", "n_test"}``.
Output (written by the method into ``{outputs}``):
    ``predictions.jsonl`` rows ``{"id", "prob"}``, prob = P(label 1), one row per test id.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from transfer.errors import InputError
from transfer.fsutil import atomic_write_text
from transfer.sealed import StudentData

PREDICTIONS_FILE = "predictions.jsonl"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same directory, then rename)."""
    atomic_write_text(path, text)


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_inputs(data: StudentData, directory: Path) -> None:
    """Write the sealed inputs of ``data`` into ``directory`` (see the module docstring)."""
    directory = Path(directory)
    write_atomic(directory / "student.jsonl", _jsonl(
        {"id": i, "text": t, "weak_prob": float(p)}
        for i, t, p in zip(data.ids, data.texts, data.weak_probs)))
    write_atomic(directory / "test.jsonl", _jsonl(
        {"id": i, "text": t} for i, t in zip(data.test_ids, data.test_texts)))
    write_atomic(directory / "task.json", json.dumps(
        {"label_names": list(data.label_names), "seed": data.seed, "n_student": len(data.ids),
         "n_test": len(data.test_ids)}, indent=2) + "\n")


def write_predictions(test_ids: Sequence[str], probs: np.ndarray, directory: Path) -> None:
    """Write ``{directory}/predictions.jsonl`` rows ``{"id", "prob"}``."""
    write_atomic(Path(directory) / PREDICTIONS_FILE, _jsonl(
        {"id": i, "prob": float(p)} for i, p in zip(test_ids, probs)))


def read_predictions(path: Path, test_ids: Sequence[str], *, shown_as: str | None = None
                     ) -> np.ndarray:
    """Read ``predictions.jsonl`` and align it with ``test_ids``.

    Rows may come in any order; every test id must appear exactly once.

    Args:
        path: the file.
        test_ids: the expected ids, in the order of the returned array.
        shown_as: how to name the file in errors (e.g. ``{outputs}/predictions.jsonl`` when the
            real path is a deleted temp dir).

    Returns:
        ``(len(test_ids),)`` float64 probabilities of label 1.

    Raises:
        InputError: missing file, malformed JSON (with the line), missing or non-numeric
            ``id``/``prob``, NaN or values outside [0, 1], duplicate, unknown or missing ids.
    """
    shown = shown_as or str(path)
    if not Path(path).is_file():
        raise InputError("the method wrote no predictions file", path=shown)
    expected = {test_id: index for index, test_id in enumerate(test_ids)}
    probs = np.full(len(test_ids), np.nan)
    seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"malformed JSON: {err.msg}", path=shown, line=line_no) from None
            if not isinstance(row, dict):
                raise InputError('expected an object {"id": ..., "prob": ...}', path=shown,
                                 line=line_no)
            test_id, prob = row.get("id"), row.get("prob")
            if not isinstance(test_id, str):
                raise InputError(f"expected a string id, got {test_id!r}", path=shown,
                                 line=line_no, field="id")
            if isinstance(prob, bool) or not isinstance(prob, (int, float)):
                raise InputError(f"expected a number, got {prob!r}", path=shown, line=line_no,
                                 field="prob")
            if not math.isfinite(prob) or not 0.0 <= prob <= 1.0:
                raise InputError(f"expected a probability in [0, 1], got {prob!r}", path=shown,
                                 line=line_no, field="prob")
            if test_id not in expected:
                raise InputError(f"unknown test id {test_id!r}", path=shown, line=line_no,
                                 field="id")
            if test_id in seen:
                raise InputError(f"test id {test_id!r} appears twice", path=shown, line=line_no,
                                 field="id")
            seen.add(test_id)
            probs[expected[test_id]] = float(prob)
    if len(seen) != len(test_ids):
        missing = [i for i in test_ids if i not in seen]
        raise InputError(f"expected {len(test_ids)} predictions, got {len(seen)}; missing ids "
                         f"include {missing[:3]}", path=shown)
    return probs
