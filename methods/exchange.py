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
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transfer.sealed import StudentData
from w2s_common.atomic import atomic_write_text
from w2s_common.errors import InputError

PREDICTIONS_FILE = "predictions.jsonl"
# Per test row: an id and a probability fit in far less; the cap keeps a flood out of memory.
MAX_BYTES_PER_PREDICTION = 4096


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


def read_output_bytes(path: Path, max_bytes: int, *, shown_as: str | None = None,
                      what: str = "such file") -> bytes:
    """Read a file written by untrusted code, refusing anything but a regular file of at most
    ``max_bytes`` bytes.

    The final path component is opened without following links (a link to a host file is
    refused, not read), non-blocking (a FIFO cannot stall the reader) and checked with fstat
    on the opened descriptor (so it cannot be swapped after the check).

    Raises:
        InputError: missing, a link, not a regular file, or too large.
    """
    shown = shown_as or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"the method wrote no {what}", path=shown) from None
    except OSError as err:
        reason = "a symbolic link" if os.path.islink(path) else (err.strerror or str(err))
        raise InputError(f"refused: {reason}; expected a regular file", path=shown) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError("refused: not a regular file", path=shown)
        if info.st_size > max_bytes:
            raise InputError(f"refused: {info.st_size} bytes, more than the {max_bytes} allowed",
                             path=shown)
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InputError(f"refused: more than the {max_bytes} bytes allowed", path=shown)
    return data


def read_output_json(path: Path, max_bytes: int, *, shown_as: str | None = None) -> Any:
    """One JSON document from a file written by untrusted code (see :func:`read_output_bytes`).

    Strings that are not Unicode text (a lone surrogate escape, ``"\\ud800"``) are refused:
    they cannot be written back as UTF-8 (a plugin's params go into its run's ``spec.json``).

    Raises:
        InputError: refused file, not UTF-8, malformed JSON (including numbers too long to
            convert), or a lone surrogate.
    """
    shown = shown_as or str(path)
    data = read_output_bytes(path, max_bytes, shown_as=shown)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("expected UTF-8 text", path=shown) from None
    except (ValueError, RecursionError) as err:
        raise InputError(f"malformed JSON: {str(err)[:120]}", path=shown) from None
    try:
        # A \ud800 escape is valid JSON but no Unicode text: every string that comes back must
        # encode as UTF-8 again (the store writes method params into spec.json as UTF-8).
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("a string is not Unicode text (a lone surrogate escape)",
                         path=shown) from None
    return value


def _probability(value: Any) -> float | None:
    """``value`` as a finite float in [0, 1], or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def read_predictions(path: Path, test_ids: Sequence[str], *, shown_as: str | None = None
                     ) -> np.ndarray:
    """Read ``predictions.jsonl`` and align it with ``test_ids``.

    Rows may come in any order; every test id must appear exactly once. The file is read as
    untrusted output (:func:`read_output_bytes`: a regular file, no link, at most
    ``MAX_BYTES_PER_PREDICTION`` bytes per test id).

    Args:
        path: the file.
        test_ids: the expected ids, in the order of the returned array.
        shown_as: how to name the file in errors (e.g. ``{outputs}/predictions.jsonl`` when the
            real path is a deleted temp dir).

    Returns:
        ``(len(test_ids),)`` float64 probabilities of label 1.

    Raises:
        InputError: missing or refused file, malformed JSON (with the line), missing or
            non-numeric ``id``/``prob``, NaN or values outside [0, 1] (or too large to convert),
            duplicate, unknown or missing ids.
    """
    shown = shown_as or str(path)
    data = read_output_bytes(path, MAX_BYTES_PER_PREDICTION * max(1, len(test_ids)),
                             shown_as=shown, what="predictions file")
    expected = {test_id: index for index, test_id in enumerate(test_ids)}
    probs = np.full(len(test_ids), np.nan)
    seen: set[str] = set()
    for line_no, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            message = err.msg if isinstance(err, json.JSONDecodeError) else str(err)[:120]
            raise InputError(f"malformed JSON: {message}", path=shown, line=line_no) from None
        if not isinstance(row, dict):
            raise InputError('expected an object {"id": ..., "prob": ...}', path=shown,
                             line=line_no)
        test_id, raw_prob = row.get("id"), row.get("prob")
        if not isinstance(test_id, str):
            raise InputError(f"expected a string id, got {_shown(test_id)}", path=shown,
                             line=line_no, field="id")
        prob = _probability(raw_prob)
        if prob is None:
            kind = "a number" if isinstance(raw_prob, bool) or not isinstance(
                raw_prob, (int, float)) else "a probability in [0, 1]"
            raise InputError(f"expected {kind}, got {_shown(raw_prob)}", path=shown,
                             line=line_no, field="prob")
        if test_id not in expected:
            raise InputError(f"unknown test id {_shown(test_id)}", path=shown, line=line_no,
                             field="id")
        if test_id in seen:
            raise InputError(f"test id {_shown(test_id)} appears twice", path=shown,
                             line=line_no, field="id")
        seen.add(test_id)
        probs[expected[test_id]] = prob
    if len(seen) != len(test_ids):
        missing = [i for i in test_ids if i not in seen]
        raise InputError(f"expected {len(test_ids)} predictions, got {len(seen)}; missing ids "
                         f"include {missing[:3]}", path=shown)
    return probs


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line errors about untrusted values."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
