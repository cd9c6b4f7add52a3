"""Inputs a fuzz review found to escape the one-line standard (exit 2, ``error: ...``, no
traceback): JSON nested too deeply, a FIFO given as a file, a key that is not UTF-8, a worker
without a server, and usage errors of every command (bad option values, unknown options)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_app import product_app
from cli_helpers import one_error_line
from test_gate import bind
from typer.testing import CliRunner

from flows.binding import KEY_ENV, check_key_settings, verdict_key
from flows.plan import load_plan
from flows.sweep import load_registry
from w2s_common.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
DEEP = 200_000  # far past Python's recursion limit: json.loads raises RecursionError
NO_KEY = {"W2S_VERDICT_HMAC_KEY": None, "W2S_VERDICT_HMAC_SECRET_BLOCK": None}


@pytest.mark.parametrize("deep", ["[" * DEEP, '{"a":' * DEEP])
def test_deeply_nested_verdict_is_one_line_naming_the_file(tmp_path: Path, deep: str) -> None:
    path = tmp_path / "verdict.json"
    path.write_text(deep)
    result = CliRunner().invoke(product_app(), ["gate", str(path), "-m", "aux_conf"], env=NO_KEY)
    assert one_error_line(result).startswith(f"error: {path}: JSON nested too deeply")


def test_deeply_nested_provenance_is_one_line_naming_the_file(saved_run: Path) -> None:
    (saved_run / "provenance.json").write_text('{"a":' * DEEP)
    result = CliRunner().invoke(product_app(), ["report", str(saved_run)])
    assert one_error_line(result).startswith(
        f"error: {saved_run / 'provenance.json'}: JSON nested too deeply")


# --- a FIFO (or anything but a regular file) is refused, never read (a read would block) ------

def test_fifo_verdict_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "verdict.json"
    os.mkfifo(fifo)
    result = CliRunner().invoke(product_app(), ["gate", str(fifo), "-m", "aux_conf"], env=NO_KEY)
    assert one_error_line(result) == (f"error: {fifo}: cannot read verdict file: a FIFO, "
                                      "expected a regular file")


def test_fifo_plan_registry_and_provenance_are_refused(tmp_path: Path, saved_run: Path) -> None:
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="cannot read plan file: a FIFO"):
        load_plan(fifo)
    with pytest.raises(InputError, match="cannot read registry file: a FIFO"):
        load_registry(fifo)
    (saved_run / "provenance.json").unlink()
    os.mkfifo(saved_run / "provenance.json")
    result = CliRunner().invoke(product_app(), ["report", str(saved_run)])
    assert "cannot read provenance: a FIFO" in one_error_line(result)


# --- the HMAC key -----------------------------------------------------------------------------

def test_key_that_is_not_utf8_names_the_variable() -> None:
    env = {KEY_ENV: "\udcff"}  # how os.environ holds the byte 0xff (PEP 383)
    for check in (check_key_settings, verdict_key):
        with pytest.raises(InputError) as info:
            check(env)
        assert str(info.value) == f"{KEY_ENV}: not valid UTF-8; give a UTF-8 value or unset it"


def test_gate_with_a_key_that_is_not_utf8_is_one_error_line(tmp_path: Path, verdict) -> None:
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(bind(verdict)))
    assert CliRunner().invoke(product_app(), ["gate", str(path), "-m", "aux_conf"],
                              env=NO_KEY).exit_code in (0, 1)
    result = CliRunner().invoke(product_app(), ["gate", str(path), "-m", "aux_conf"],
                                env={**NO_KEY, KEY_ENV: os.fsdecode(b"\xff")})
    assert one_error_line(result) == (f"error: {KEY_ENV}: not valid UTF-8; give a UTF-8 value "
                                      "or unset it")


# --- the worker needs a server ----------------------------------------------------------------

def test_worker_without_api_url_is_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)  # no profile that could name a server
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "worker", "--pool", "p"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: PREFECT_API_URL: not set; a worker polls a Prefect server: set it to the "
        "server's API URL (e.g. http://127.0.0.1:4200/api)"]


# --- usage errors: one line for every command, help unchanged ----------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (["analyze", "in.csv", "--out", "o", "--alpha", "abc"], "error: --alpha: "),
    (["run-arm", "--rung", "m0", "--arm", "weak", "--out", "o", "--seed", "-1"],
     "error: --seed: "),
    (["run-arm", "--rung", "m0", "--arm", "weak", "--out", "o", "--seed", str(2**31)],
     "error: --seed: "),
    (["run-arm", "--rung", "m0", "--arm", "weak", "--out", "o",
      "--seed", "99999999999999999999999"], "error: --seed: "),
    (["audit", "--method", "aux_conf", "--seed", str(2**31)], "error: --seed: "),
    (["gate", "v.json", "--bogus"], "error: --bogus: no such option"),
    (["gate", "v.json"], "error: --method: required option is missing"),
    (["validate"], "error: PLAN: required argument is missing"),
    (["ladders", "--jsn"], "error: --jsn: no such option (did you mean --json?)"),
    (["no-such-command"], "error: No such command 'no-such-command'"),
    (["--nope"], "error: --nope: no such option"),
])
def test_usage_errors_are_one_error_line(args: list[str], expected: str) -> None:
    from flows.cli import app

    assert one_error_line(CliRunner().invoke(app, args)).startswith(expected)


def test_help_is_unchanged() -> None:
    from flows.cli import app

    for args in (["--help"], ["gate", "--help"], ["run-arm", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and "Usage:" in result.stdout, result.output


def test_a_crash_is_exit_70_with_its_traceback_never_an_answer(monkeypatch) -> None:
    """A bug inside a command (here the gate's check raising) exits 70, not 1: for ``gate``, 1
    means "not promotable", which a crash must not read as. The traceback is kept for the bug
    report; the last line says what happened."""
    import flows.gate
    from flows.cli import app
    from flows.commands._errors import INTERNAL_ERROR_EXIT

    def crash(*args, **kwargs):
        raise ZeroDivisionError("division by zero in a check")

    monkeypatch.setattr(flows.gate, "check_promotion", crash)
    result = CliRunner().invoke(app, ["gate", "v.json", "--method", "m"], env=NO_KEY)
    assert result.exit_code == INTERNAL_ERROR_EXIT == 70, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback (most recent call last):" in result.stderr and "def crash" not in lines[-1]
    assert lines[-1] == ("error: internal error (a bug in w2s-transfer, not a verdict): "
                         "ZeroDivisionError: division by zero in a check")
    monkeypatch.undo()  # bad input is still exit 2 and one line
    assert one_error_line(CliRunner().invoke(app, ["gate", "missing.json", "--method", "m"],
                                             env=NO_KEY)).startswith("error: missing.json")


def test_a_number_python_cannot_read_is_one_line_in_every_json_reader(tmp_path: Path) -> None:
    """helper-44: json.loads raises a bare ValueError for an integer of more than 4300 digits,
    which readers catching only JSONDecodeError let through as a traceback (gate, report,
    analyze --claims, the sandbox reader, DeepSpeed configs, dataset lines)."""
    from flows.userfiles import parse_json
    from stats.aar import _read_record
    from stats.claims import load_claims
    from transfer.data.jsonl import parse_json as parse_json_line
    from transfer.engine.config import load_ds_file
    from w2s_common.errors import TOO_LONG_NUMBER, InputError

    big = tmp_path / "big.json"
    big.write_text('{"a": ' + "9" * 5000 + "}")
    readers = [lambda: parse_json(big.read_text(), big), lambda: load_claims(big),
               lambda: parse_json_line(big.read_text(), path=big, line=3),
               lambda: load_ds_file(str(big))]
    for read in readers:
        with pytest.raises(InputError) as caught:
            read()
        assert str(caught.value).endswith(TOO_LONG_NUMBER), str(caught.value)
    assert _read_record(big) == f"unreadable JSON ({TOO_LONG_NUMBER})"


@pytest.mark.parametrize("argv, flag", [
    (["run-arm", "--ladder", "micro", "--rung", "m0", "--arm", "weak", "--out", ""], "--out"),
    (["run-arm", "--ladder", "micro", "--rung", "m0", "--arm", "weak", "--out", "o",
      "--store", " "], "--store"),
    (["validate", "demo", "--out", ""], "--out"),
    (["demo", "--store", ""], "--store"),
    (["plan-schema", "--out", ""], "--out"),
    (["gate", "verdict.json", "-m", "aux_conf", "--plan", ""], "--plan"),
])
def test_an_empty_path_is_refused_not_read_as_the_working_directory(
        tmp_path: Path, monkeypatch, argv: list[str], flag: str) -> None:
    """helper-44: typer turns "" into Path("."), so `run-arm --out ""` wrote its predictions
    into the working directory."""
    from flows.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, argv, env=NO_KEY)
    assert one_error_line(result) == f"error: {flag}: empty; expected a path"
    assert list(tmp_path.iterdir()) == []


def test_a_file_written_over_a_directory_names_the_file_asked_for(tmp_path: Path) -> None:
    """helper-44: `plan-schema --out /tmp` named the temporary file beside it."""
    result = CliRunner().invoke(product_app(), ["plan-schema", "--out", str(tmp_path)])
    assert one_error_line(result) == f"error: {tmp_path}: Is a directory"
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """helper-46: `w2s-transfer methods --json | head -c 300` printed a BrokenPipe traceback
    and "internal error", exit 70. Here the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "flows.cli", "ladders", "--json"],
                              stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    stderr = proc.stderr.decode()
    assert proc.returncode == 141, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


def test_analyze_never_replaces_a_validate_run_s_bound_verdict(saved_run: Path) -> None:
    """helper-46: `analyze DIR/results.parquet --out DIR` replaced the bound verdict with an
    unbound one, which the gate then refused; and `report` on an analyze output only said the
    results table was not found."""
    from flows.cli import app

    verdict = saved_run / "verdict.json"
    raw = json.loads(verdict.read_text())
    raw["binding"] = {"format": "w2s-verdict-binding/1"}
    verdict.write_text(json.dumps(raw))
    before = verdict.read_bytes()
    result = CliRunner().invoke(app, ["analyze", str(saved_run / "results.parquet"), "--out",
                                      str(saved_run), "--n-boot", "0"])
    assert one_error_line(result).startswith(f"error: --out: {verdict} is a validate run's "
                                             "bound verdict")
    assert verdict.read_bytes() == before

    analyzed = saved_run.parent / "analyzed"
    done = CliRunner().invoke(app, ["analyze", str(saved_run / "results.parquet"), "--out",
                                    str(analyzed), "--n-boot", "0"])
    assert done.exit_code == 0, done.output
    report = CliRunner().invoke(app, ["report", str(analyzed)])
    assert "`report` re-renders a validate run's output" in one_error_line(report)


def test_an_unknown_ladder_name_is_a_plan_line(tmp_path: Path) -> None:
    """helper-46: `ladder: tiny2` was `error: ladder: unknown ladder 'tiny2'`, no file or line."""
    path = tmp_path / "plan.yaml"
    path.write_text((ROOT / "flows" / "plans" / "micro-ci.yaml").read_text().replace(
        "ladder: micro", "ladder: tiny2"))
    with pytest.raises(InputError) as caught:
        load_plan(path)
    assert str(caught.value).startswith(f"{path}:9: ladder: unknown ladder 'tiny2'; built in: ")


def test_a_broken_pipe_that_is_not_stdout_s_is_one_line_exit_2() -> None:
    """helper-47: after BrokenPipe became a quiet 141, a child process's broken pipe ended a
    command silently too; only stdout's own reader going away is quiet."""
    import typer

    from flows.commands._errors import user_errors

    with pytest.raises(typer.Exit) as caught:
        with user_errors():
            raise BrokenPipeError(32, "Broken pipe")
    assert caught.value.exit_code == 2
