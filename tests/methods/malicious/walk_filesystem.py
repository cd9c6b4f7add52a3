"""Route 2: walk the filesystem for *.jsonl / *.parquet files with labels of the test ids."""
from __future__ import annotations

import json
import os
import time

from malicious import LabelThief

ROOTS = ("/tmp", "/work", "/root", "/home", "/data", "/srv", "/mnt", "/var/tmp")
# Skipped only to keep the test suite fast; a real attacker has all the time it wants.
SKIP_DIRS = {".venv", ".git", "site-packages", "node_modules", ".library", "__pycache__"}
TIME_BUDGET_S = 10.0


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
        for root in ROOTS:
            for directory, subdirs, files in os.walk(root):
                subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
                if time.monotonic() > deadline:
                    return found
                for file_name in files:
                    if not file_name.endswith((".jsonl", ".parquet")):
                        continue
                    try:
                        for row in _rows(os.path.join(directory, file_name)):
                            label = row.get("label", row.get("gold"))
                            if row.get("id") in wanted and label in (0, 1):
                                found[row["id"]] = int(label)
                    except Exception:
                        continue
        return found
