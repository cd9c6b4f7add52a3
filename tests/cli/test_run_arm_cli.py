"""`w2s-transfer run-arm` end to end on the micro ladder: outputs of every arm, and every bad
input as one line on stderr with exit code 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import one_error_line
from typer.testing import CliRunner

from flows.cli import app

GENERIC = Path(__file__).resolve().parents[1] / "transfer" / "fixtures" / "generic"
MICRO = ["--ladder", "micro", "--rung", "m0"]
RENDEZVOUS_VARS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                   "MASTER_PORT"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store in which the weak and ceiling arms of m0, seed 0 already ran (in-process), so
    that student runs start from the cached features and print nothing but their result."""
    from flows.context import arm_context
    from transfer.arms import run_arm

    root = tmp_path_factory.mktemp("run-arm-cli") / "store"
    ctx = arm_context("micro", None, root)
    for arm in ("weak", "ceiling"):
        run_arm(ctx, "m0", arm, 0)
    return root


def run_arm_cli(*args: str, store: Path, out: Path):
    return CliRunner().invoke(app, ["run-arm", *args, "--store", str(store), "--out", str(out)])


def check_outputs(out: Path, arm: str, seed: int) -> dict:
    predictions = pd.read_parquet(out / "predictions.parquet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(predictions.columns) == ["example_id", "prob", "pred", "correct"]
    assert len(predictions) == metrics["n"] > 0 and predictions["prob"].between(0, 1).all()
    assert metrics["accuracy"] == pytest.approx(predictions["correct"].mean())
    assert (metrics["arm"], metrics["rung"], metrics["seed"]) == (arm, "m0", seed)
    assert not list(out.glob(".*.tmp"))  # written through temp files, none left behind
    return metrics


@pytest.mark.parametrize("arm, extra, label", [
    ("weak", [], "weak"), ("ceiling", [], "ceiling"), ("student", [], "vanilla"),
    ("student", ["--method", "aux_conf", "--param", "a_max=0.3"], "aux_conf")])
def test_every_arm_writes_predictions_and_metrics(store, tmp_path, arm, extra, label):
    result = run_arm_cli(*MICRO, "--arm", arm, *extra, store=store, out=tmp_path / "out")
    assert result.exit_code == 0, result.output
    metrics = check_outputs(tmp_path / "out", label, 0)
    assert result.stdout.strip() == (f"{label} rung=m0 seed=0 accuracy={metrics['accuracy']:.4f} "
                                     f"n={metrics['n']} -> {tmp_path / 'out'}")
    if label == "aux_conf":
        assert metrics["method_params"] == {"a_max": 0.3, "warmup_frac": 0.2}


def test_a_plugin_student_trains_in_the_jail_from_a_subprocess(tmp_path):
    # A real process, as a user runs it: a new seed (so every arm trains), a plugin method that
    # trains through the handed-over trainer inside the jail.
    # Without this process's single-rank rendezvous: the child must pick its own port.
    env = {key: value for key, value in os.environ.items() if key not in RENDEZVOUS_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "methods")
    done = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "run-arm", *MICRO,
         "--arm", "student", "--seed", "3", "--method", "plugins_for_tests:TrainsStudent",
         "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    metrics = check_outputs(tmp_path / "out", "trains_student", 3)
    assert metrics["isolation"] == "jail" and metrics["accuracy"] > 0.6
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["student", "weak"]


def dataset_missing_a_file(tmp_path: Path) -> Path:
    shutil.copytree(GENERIC, tmp_path / "missing")
    (tmp_path / "missing" / "test.jsonl").unlink()
    return tmp_path / "missing"


def dataset_with_malformed_json(tmp_path: Path) -> Path:
    shutil.copytree(GENERIC, tmp_path / "malformed")
    path = tmp_path / "malformed" / "train_unlabel.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = '{"id": "r7", "text": broken'
    path.write_text("\n".join(lines) + "\n")
    return tmp_path / "malformed"


@pytest.mark.parametrize("args, expected", [
    (["--ladder", "nope", "--rung", "m0", "--arm", "weak"],
     "error: ladder: unknown ladder 'nope'; built in: micro"),
    (["--ladder", "micro", "--rung", "r9", "--arm", "weak"],
     "error: rung: unknown rung 'r9'; ladder 'micro' has: m0, m1"),
    ([*MICRO, "--arm", "teacher"],
     "error: --arm: expected weak, ceiling or student, got 'teacher'"),
    ([*MICRO, "--arm", "weak", "--method", "vanilla"],
     "error: --method: --method and --param apply to the student arm only"),
    ([*MICRO, "--arm", "ceiling", "--param", "hard=true"],
     "error: --method: --method and --param apply to the student arm only"),
    ([*MICRO, "--arm", "student", "--method", "nope"], "error: --method: unknown method 'nope'"),
    ([*MICRO, "--arm", "student", "--param", "hard=maybe"],
     "error: --param hard: method vanilla: expected bool"),
    ([*MICRO, "--arm", "student", "--param", "hard"],
     "error: --param: method vanilla: expected key=value, got 'hard'"),
    ([*MICRO, "--arm", "student", "--method", "zero_shot_prior"],
     "error: --method: method zero_shot_prior cannot run on rung m0 of ladder micro: "),
    ([*MICRO, "--arm", "student", "--method", "external", "--param",
      "command=sh -c 'echo doomed >&2; exit 3'"],
     "error: --param command: method external: command exited with status 3: doomed"),
])
def test_bad_input_is_one_line_and_exit_2(store, tmp_path, args, expected):
    line = one_error_line(run_arm_cli(*args, store=store, out=tmp_path / "out"))
    assert line.startswith(expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make, expected", [
    (dataset_missing_a_file, "missing/test.jsonl: missing file: every task directory needs"),
    (dataset_with_malformed_json, "malformed/train_unlabel.jsonl:2: malformed JSON: "),
    (lambda tmp: tmp / "absent", "absent: expected a task directory holding"),
])
def test_bad_data_directory_is_one_line_and_exit_2(store, tmp_path, make, expected):
    data = make(tmp_path)
    line = one_error_line(run_arm_cli(*MICRO, "--arm", "weak", "--data", str(data), store=store,
                                      out=tmp_path / "out"))
    assert line.startswith(f"error: {tmp_path}/") and expected in line
