"""Load a task: a JSONL directory (sandbox or generic rows) or the built-in synthetic task."""
from __future__ import annotations

import json
from pathlib import Path

from transfer.data.formats import FORMATS, GENERIC, RowFormat, detect_format, parse_row
from transfer.data.jsonl import parse_json, read_jsonl
from transfer.data.schema import SPLIT_NAMES, TaskData, content_fingerprint
from transfer.data.validate import assign_ids, balance_warnings, check_leaks, require_rows
from w2s_common.errors import InputError

LABELS_FILE = "labels.json"


def load_task(path: str | Path | None, *, seed: int = 0) -> TaskData:
    """Load a task from a directory, or build the built-in synthetic task.

    Args:
        path: a directory with ``train_label.jsonl``, ``train_unlabel.jsonl`` and ``test.jsonl``
            (sandbox pairwise or binary rows, or generic ``{id, text, label}`` rows), or None for
            the built-in synthetic task (salted by ``$W2S_SYNTHETIC_SECRET`` when it is set).
        seed: the DATA seed of the synthetic task (independent of any training seed); ignored
            for directories, whose content is fixed.

    Returns:
        The validated ``TaskData``.

    Raises:
        InputError: the path is not a directory or the data breaks a rule (see
            ``load_directory``).
    """
    if path is None:
        import os

        from transfer.data.synthetic import SECRET_ENV, synthetic_task

        return synthetic_task(seed=seed, secret=os.environ.get(SECRET_ENV) or None)
    return load_directory(Path(path))


def load_directory(directory: Path) -> TaskData:
    """Read and validate a JSONL task directory.

    The row format is detected from the first row of ``train_label.jsonl``; every row of the
    three files must have it. Generic tasks may name their labels in ``labels.json``
    (``["neg", "pos"]``). The corpus is the texts of train_label and train_unlabel.

    Raises:
        InputError: missing directory or file, malformed JSON, missing fields, wrong types,
            labels outside the binary set, mixed formats, duplicate ids, an empty split, or a
            test text that also occurs in a training split.
    """
    if not directory.is_dir():
        raise InputError("expected a task directory holding train_label.jsonl, "
                         "train_unlabel.jsonl and test.jsonl", path=directory)
    raw = {name: read_jsonl(directory / f"{name}.jsonl") for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        require_rows(raw[name], directory / f"{name}.jsonl")
    row_format = _detect(raw["train_label"][0][1], directory / "train_label.jsonl",
                         raw["train_label"][0][0])
    parsed = {name: [parse_row(row_format, row, directory / f"{name}.jsonl", line)
                     for line, row in raw[name]] for name in SPLIT_NAMES}
    check_leaks(test=[(row.text, str(row.path), row.line) for row in parsed["test"]],
                training=[(row.text, str(row.path), row.line)
                          for name in ("train_label", "train_unlabel") for row in parsed[name]])
    splits = assign_ids(parsed)
    label_names = _label_names(directory, row_format)
    corpus = splits["train_label"].texts + splits["train_unlabel"].texts
    messages = balance_warnings(splits, label_names,
                                {name: str(directory / f"{name}.jsonl") for name in SPLIT_NAMES})
    return TaskData(name=directory.resolve().name, splits=splits, label_names=label_names,
                    corpus=corpus, fingerprint=content_fingerprint(splits, label_names, corpus),
                    source=str(directory.resolve()), warnings=messages)


def _detect(row: dict, path: Path, line: int) -> RowFormat:
    row_format = detect_format(row)
    if row_format is None:
        expected = " or ".join(f.description for f in FORMATS)
        raise InputError(f"unknown row format: expected {expected}; got fields "
                         f"{sorted(row)}", path=path, line=line)
    return row_format


def _label_names(directory: Path, row_format: RowFormat) -> tuple[str, str]:
    path = directory / LABELS_FILE
    if not path.exists():
        return row_format.label_names
    if not path.is_file():  # a FIFO would block the read forever
        raise InputError("expected a regular file", path=path, field="labels")
    if row_format is not GENERIC:
        raise InputError(f"labels.json applies to generic rows only; {row_format.name} rows "
                         f"have fixed label names {list(row_format.label_names)}", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"file is not valid UTF-8 (byte {err.start})", path=path,
                         field="labels") from None
    names = parse_json(text, path, field="labels")
    if (not isinstance(names, list) or len(names) != 2
            or not all(isinstance(n, str) and n.strip() for n in names) or names[0] == names[1]):
        raise InputError(f'expected a list of two distinct non-empty names, e.g. ["neg", "pos"]; '
                         f"got {json.dumps(names)}", path=path, field="labels")
    return (names[0], names[1])
