"""`run-arm --processes 2`: two data-parallel ranks under the deepspeed launcher give the same
predictions as one process (float32 summation order only), and bad input is still one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]


def _run_arm(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run([sys.executable, "-m", "flows.cli", "run-arm", "--ladder", "micro",
                           "--rung", "m0", "--arm", "weak", "--seed", "0",
                           "--out", str(tmp_path / name / "out"),
                           "--store", str(tmp_path / name / "store"), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_two_processes_match_one(tmp_path):
    one = _run_arm(tmp_path, "one")
    two = _run_arm(tmp_path, "two", "--processes", "2")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a = pd.read_parquet(tmp_path / "one" / "out" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "two" / "out" / "predictions.parquet")
    assert list(a["example_id"]) == list(b["example_id"])
    # Same global batches and gradient averaging: only the order of float32 sums differs.
    np.testing.assert_allclose(a["prob"], b["prob"], atol=1e-5)
    assert "weak rung=m0 seed=0 accuracy=" in two.stdout


def test_bad_input_under_two_processes_is_one_line(tmp_path):
    result = _run_arm(tmp_path, "bad", "--processes", "2", "--method", "vanilla")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2
    assert lines == ["error: --method: --method and --param apply to the student arm only"]
