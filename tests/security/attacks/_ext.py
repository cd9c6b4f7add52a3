"""What every attack program shares: the sealed inputs, the prediction file, and recognising
gold labels in whatever a thief finds (dataset rows, stored runs, results tables, JSON maps).

Standard library only (pyarrow is used when importable), so it loads in a fresh interpreter in
the jail in a few milliseconds.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator

LABEL_KEYS = ("label", "gold", "gold_label", "answer")
ID_KEYS = ("id", "example_id", "uid")
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_split(inputs: str) -> tuple[list[str], list[str]]:
    """Test ids and texts of an external job's ``{inputs}/test.jsonl``."""
    rows = read_jsonl(os.path.join(inputs, "test.jsonl"))
    return [row["id"] for row in rows], [row["text"] for row in rows]


def predictions(ids: Iterable[str], found: dict[str, int], default: float = 0.5) -> list[float]:
    """The gold label where found, ``default`` elsewhere."""
    return [float(found[i]) if i in found else default for i in ids]


def write_predictions(outputs: str, ids: list[str], probs: list[float]) -> None:
    with open(os.path.join(outputs, "predictions.jsonl"), "w", encoding="utf-8") as handle:
        for test_id, prob in zip(ids, probs):
            handle.write(json.dumps({"id": test_id, "prob": prob}) + "\n")


def label_of(row: dict) -> int | None:
    """A row's gold label: an explicit label field, or recovered from a scored prediction
    (``pred`` and ``correct``: gold = pred if correct else 1 - pred)."""
    for key in LABEL_KEYS:
        if row.get(key) in (0, 1, True, False):
            return int(row[key])
    pred, correct = row.get("pred"), row.get("correct")
    if pred in (0, 1) and correct in (0, 1, True, False):
        return int(pred) if correct else 1 - int(pred)
    return None


def labels_in_rows(rows: Iterable[dict], wanted: set[str], found: dict[str, int]) -> None:
    for row in rows:
        if not isinstance(row, dict):
            continue
        test_id = next((row[k] for k in ID_KEYS if isinstance(row.get(k), str)), None)
        if test_id in wanted and test_id not in found:
            label = label_of(row)
            if label is not None:
                found[test_id] = label


def labels_in_mapping(mapping: object, wanted: set[str], found: dict[str, int]) -> None:
    """``{id: label}`` maps (an API's answer, an environment variable)."""
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if key in wanted and value in (0, 1):
                found.setdefault(key, int(value))
    elif isinstance(mapping, list):
        labels_in_rows(mapping, wanted, found)


def table_rows(path: str) -> Iterator[dict]:
    """Rows of a JSONL, JSON, CSV or parquet file (parquet only where pyarrow imports)."""
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    return
    elif path.endswith(".json"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            data = json.load(handle)
        yield from (data if isinstance(data, list) else [data])
    elif path.endswith(".csv"):
        import csv

        with open(path, encoding="utf-8", errors="replace") as handle:
            for row in csv.DictReader(handle):
                yield {k: (int(v) if v in ("0", "1") else v) for k, v in row.items()}
    elif path.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()


# Only to keep the suite's memory bounded where an attack runs unjailed: other tests leave sparse
# files of up to 1 TiB in /tmp (the outputs-bound tests), which a thief would read whole.
LARGEST_FILE_BYTES = 64 << 20


def walk_files(roots: Iterable[str], budget_s: float, skip: set[str] = frozenset()
               ) -> Iterator[str]:
    """Files under ``roots``, breadth first, newest directories first, within a time budget
    (the budget only keeps the suite fast; a real thief has all the time it wants)."""
    deadline = time.monotonic() + budget_s
    queue = [root for root in dict.fromkeys(roots) if os.path.isdir(root)]
    seen: set[tuple[int, int]] = set()
    while queue and time.monotonic() < deadline:
        directory = queue.pop(0)
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(directory))
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in skip:
                        subdirs.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
                elif (entry.is_file(follow_symlinks=False)
                      and entry.stat(follow_symlinks=False).st_size <= LARGEST_FILE_BYTES):
                    yield entry.path
            except OSError:
                continue
        queue[:0] = [path for _, path in sorted(subdirs, reverse=True)]


def args_after(argv: list[str], start: int = 3) -> list[str]:
    """The attack's own arguments (after ``{inputs} {outputs}``), minus the helper files named
    on the command line so that they are mounted (``_ext.py`` and sibling modules) and the
    ``--tag=...`` the suite adds to tell runs apart in the store."""
    return [a for a in argv[start:] if not a.endswith(".py") and not a.startswith("--tag=")]
