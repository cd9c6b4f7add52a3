"""Route class: other runs' outputs and datasets anywhere on disk.

Walks the filesystem for tables holding labels of the test ids: dataset splits (``label``),
stored runs and results tables (``pred`` + ``correct`` give the gold label back), reports,
pytest temp dirs. As an ``external`` script: ``python3 disk_hunter.py {inputs} {outputs}
_ext.py [ROOT...]``; as a plugin, through ``attacks.omnivore``.

The roots it is given only make it fast; it also walks the places an attacker would try
(``/tmp``, ``/root``, ``/home``, ``/work``, ``/srv``, ``/data``, ``/mnt``, the cache named by
``W2S_CACHE_DIR`` or ``~/.cache``).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

DEFAULT_ROOTS = ("/tmp", "/root", "/home", "/work", "/srv", "/data", "/mnt", "/var/tmp")
# Where no run writes its outputs (interpreters, packages, this machine's tool folders).
SKIP = {".venv", ".git", "site-packages", "node_modules", "__pycache__", "proc", "sys",
        ".library", "dist-packages", ".pyenv", "python3.11", "include", "share"}
BUDGET_S = 8.0


def roots_to_try(given: list[str]) -> list[str]:
    cache = os.environ.get("W2S_CACHE_DIR") or os.path.expanduser("~/.cache/w2s-transfer")
    return [*given, cache, *DEFAULT_ROOTS]


def find(roots: list[str], wanted: set[str], budget_s: float = BUDGET_S) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in _ext.walk_files(roots_to_try(roots), budget_s, SKIP):
        if not path.endswith(_ext.TABLE_SUFFIXES) or os.path.basename(path).startswith("."):
            continue
        try:
            _ext.labels_in_rows(_ext.table_rows(path), wanted, found)
        except Exception:  # noqa: BLE001 - unreadable: try the next file
            continue
        if len(found) == len(wanted):
            break
    return found


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    found = find(_ext.args_after(argv), set(ids))
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, found))


if __name__ == "__main__":
    main(sys.argv)
