"""stats/ stays pure: numpy, scipy, statsmodels, pandas, pyarrow, pydantic (the verdict's typed
model), the standard library and the leaf of shared primitives (w2s_common) only."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

STATS = Path(__file__).resolve().parents[2] / "stats"
ALLOWED_THIRD_PARTY = {"numpy", "scipy", "statsmodels", "pandas", "pyarrow", "pydantic"}
FORBIDDEN = {"torch", "prefect", "transformers", "deepspeed", "transfer", "methods", "flows"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_stats_sources_import_only_allowed_packages():
    files = sorted(STATS.glob("*.py"))
    assert len(files) > 5
    allowed = ALLOWED_THIRD_PARTY | set(sys.stdlib_module_names) | {"stats", "w2s_common"}
    bad = {f.name: sorted(_imported_roots(f) - allowed) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_scanner_catches_a_forbidden_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    import torch.nn as nn\n    from prefect import flow\n")
    assert {"torch", "prefect"} <= _imported_roots(sneaky)


def test_importing_stats_loads_no_torch_or_prefect():
    code = ("import sys, stats, stats.analyze, stats.aar, stats.sequential, stats.verdict, "
            "stats.scale, stats.simulate\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=STATS.parent, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""
