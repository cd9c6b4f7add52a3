"""Route 2: walk the filesystem for *.jsonl / *.parquet files with labels of the test ids."""
from __future__ import annotations

import json
import os
import stat
import time

from malicious import LabelThief

ROOTS = ("/tmp", "/work", "/root", "/home", "/data", "/srv", "/mnt", "/var/tmp")
# Skipped only to keep the test suite fast; a real attacker has all the time it wants.
SKIP_DIRS = {".venv", ".git", "site-packages", "node_modules", ".library", "__pycache__"}
# A busy /tmp (the other pytest worker's runs, earlier sessions' directories) took more than 10 s
# to search under load; the walk ends as soon as every test id is found, so the budget only
# bounds a walk that finds nothing (in the jail, whose filesystem is small).
TIME_BUDGET_S = 60.0
# Also only for the suite, which runs this thief in its own process too (to show the route is
# real): a regular file of at most this size. A 1 TiB sparse predictions.jsonl another test left
# in /tmp was read as one line until the OOM killer took the pytest worker, and a FIFO named
# predictions.jsonl blocked the open forever (CI, 2026-12-03).
LARGEST_FILE_BYTES = 64 << 20


def _readable(entry: os.DirEntry) -> bool:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size <= LARGEST_FILE_BYTES


def _rows(path: str):
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    return
                if isinstance(row, dict):
                    yield row
    else:
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()


class WalkFilesystem(LabelThief):
    name = "malicious_walk_filesystem"
    description = "Malicious: walks the filesystem for dataset files holding labels"

    def steal(self, data, trainer):
        wanted = set(data.test_ids)
        found: dict[str, int] = {}
        deadline = time.monotonic() + TIME_BUDGET_S
        # Newest directories first: a dataset a run just wrote is found in seconds even on a
        # machine whose /tmp holds thousands of older files.
        queue = [root for root in ROOTS if os.path.isdir(root)]
        while queue:
            directory = queue.pop(0)
            if time.monotonic() > deadline or len(found) == len(wanted):
                return found
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            subdirs = [e for e in entries if e.is_dir(follow_symlinks=False)
                       and e.name not in SKIP_DIRS]
            subdirs.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime, reverse=True)
            queue[:0] = [e.path for e in subdirs]
            for entry in entries:
                if not entry.name.endswith((".jsonl", ".parquet")) or not _readable(entry):
                    continue
                try:
                    for row in _rows(entry.path):
                        label = row.get("label", row.get("gold"))
                        if row.get("id") in wanted and label in (0, 1):
                            found[row["id"]] = int(label)
                except Exception:  # noqa: BLE001 - unreadable: try the next file
                    continue
        return found
