"""The statistics benchmarks still run against the engine's current interfaces (they are not
run by the suite otherwise, and two of them broke silently when analyze_table began returning
the typed Verdict). Figures are not checked here: bench/ measures, tests do not time."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv", [
    ["bench/stats_efficiency.py", "--quick"],
    ["bench/truncation_rules.py", "--experiments", "40", "--only", "null",
     "null-seed-dominated-3seeds"],
    ["bench/stats_calibration.py", "--experiments", "3", "--only", "null",
     "null-partial-overlap"],
])
def test_a_statistics_benchmark_runs_to_its_last_line(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(("Total", "   fixed design")), last
