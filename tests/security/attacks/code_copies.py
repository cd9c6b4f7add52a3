"""Route class: other copies of the code that generates or scores the task.

Looks for a copy of this project's source tree (a second checkout, an old release, a clone: a
directory holding ``transfer/data/synthetic.py``), imports the task generator from it and
regenerates the built-in synthetic task, matching the test texts it was given to the generated
ones to read their labels. Also tries the evaluator modules by name, in case the jail offers
them. As an ``external`` script: ``python3 code_copies.py {inputs} {outputs} _ext.py [ROOT...]``;
as a plugin, through ``attacks.omnivore``.

The split sizes it tries are the project's defaults and those its own tests use: an attacker
has read the code base.
"""
from __future__ import annotations

import importlib
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

DEFAULT_ROOTS = ("/work", "/root", "/home", "/srv", "/opt", "/tmp", "/usr/local/src")
SKIP = {".venv", "site-packages", "node_modules", "__pycache__", "proc", "sys", ".library",
        ".cache", "dist-packages", ".pyenv", "python3.11", "include", "share"}
MARKER = os.path.join("transfer", "data", "synthetic.py")
# (n_train_label, n_train_unlabel, n_test, n_corpus): tests' sizes first, then the defaults.
SIZES = ((300, 300, 200, 3000), (2000, 2000, 2000, 50_000))
SEEDS = (0, 1)


def source_copies(roots: list[str], budget_s: float = 6.0):
    """Roots of source trees holding the task generator, as the walk finds them."""
    for path in _ext.walk_files([*roots, *DEFAULT_ROOTS], budget_s, SKIP):
        if path.endswith(MARKER):
            yield path[: -len(MARKER)].rstrip("/")


def _fresh_transfer(root: str | None):
    """``transfer.data.synthetic`` imported from ``root`` (None: whatever is importable)."""
    for name in [m for m in sys.modules if m == "transfer" or m.startswith("transfer.")]:
        del sys.modules[name]
    if root is not None:
        sys.path.insert(0, root)
    try:
        return importlib.import_module("transfer.data.synthetic")
    finally:
        if root is not None:
            sys.path.remove(root)


def regenerate(synthetic, texts: list[str], ids: list[str]) -> dict[str, int]:
    wanted = dict(zip(texts, ids))
    for seed in SEEDS:
        for n_label, n_unlabel, n_test, n_corpus in SIZES:
            task = synthetic.synthetic_task(seed=seed, n_train_label=n_label,
                                            n_train_unlabel=n_unlabel, n_test=n_test,
                                            n_corpus=n_corpus)
            found = {wanted[e.text]: int(e.label) for e in task.splits["test"].examples
                     if e.text in wanted}
            if len(found) > len(ids) // 2:
                return found
    return {}


def find(roots: list[str], texts: list[str], ids: list[str]) -> dict[str, int]:
    saved = dict(sys.modules)
    try:
        for root in itertools.chain(source_copies(roots), [None]):
            try:
                found = regenerate(_fresh_transfer(root), texts, ids)
            except Exception:  # noqa: BLE001 - a broken copy: try the next
                continue
            if found:
                return found
        return {}
    finally:
        # Leave the importing process as it was (a plugin keeps running after this).
        for name in [m for m in sys.modules if m == "transfer" or m.startswith("transfer.")]:
            del sys.modules[name]
        sys.modules.update({k: v for k, v in saved.items()
                            if k == "transfer" or k.startswith("transfer.")})


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, texts = _ext.test_split(inputs)
    found = find(_ext.args_after(argv), texts, ids)
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, found))


if __name__ == "__main__":
    main(sys.argv)
