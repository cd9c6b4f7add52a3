"""`w2s-transfer audit` end to end on the micro ladder: exit 0 clean, 1 flagged, 2 bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import install_builtin, one_error_line
from typer.testing import CliRunner

from flows.cli import app

METHODS_TESTS = Path(__file__).resolve().parents[1] / "methods"


@pytest.fixture(autouse=True)
def plugins_importable(monkeypatch):
    """The malicious test plugins live in tests/methods (mounted into the jail from there)."""
    monkeypatch.syspath_prepend(str(METHODS_TESTS))


def audit(tmp_path, *args: str):
    result = CliRunner().invoke(app, ["audit", "--store", str(tmp_path / "store"), *args])
    return result


@pytest.mark.parametrize("method, params", [("vanilla", []),
                                            ("aux_conf", ["--param", "a_max=0.3"])])
def test_sealed_builtins_are_clean(tmp_path, method, params):
    result = audit(tmp_path, "--method", method, *params)
    assert result.exit_code == 0, result.output
    assert f"CLEAN {method} ladder=micro rung=m0 seed=0 isolation=builtin" in result.stdout
    assert "agree exactly on all 2000 test examples" in result.stdout
    # Only the real weak run reached the real store.
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["weak"]


def installed_thief(monkeypatch):
    """The gc thief installed as a trusted built-in: it runs in the audit's own process."""
    from malicious.gc_split import GcSplitThief

    return install_builtin(monkeypatch, GcSplitThief())


def test_an_in_process_builtin_reading_labels_is_flagged(tmp_path, monkeypatch):
    thief = installed_thief(monkeypatch)
    # Another copy of the task alive in the process (an earlier test's, in CI): the thief
    # must still find the labels the audit scores (it read the stale copy once: 2026-12-04).
    from flows.context import load_dataset

    stale = load_dataset(None)
    result = audit(tmp_path, "--method", thief.name, "--seed", "1")
    assert stale.splits["test"].name == "test"
    assert result.exit_code == 1, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"FLAGGED {thief.name} ladder=micro rung=m0 seed=1 "
                           "isolation=builtin: label leak: predictions under gold "
                           "permutations 1 and 2 differ on ")
    assert "(max |diff| 1)" in line


def test_the_follows_labels_rule_flags_the_reader_and_clears_the_sealed(tmp_path, monkeypatch):
    thief = installed_thief(monkeypatch)
    result = audit(tmp_path, "--method", thief.name, "--rule", "follows_labels")
    assert result.exit_code == 1, result.output
    assert "rule=follows_labels: label leak: " in result.stdout
    assert result.stdout.strip().endswith("the method's output follows the gold labels")
    result = audit(tmp_path, "--method", "vanilla", "--rule", "follows_labels")
    assert result.exit_code == 0 and "agree exactly" in result.stdout, result.output
    result = audit(tmp_path, "--method", "vanilla", "--rule", "nope")
    assert result.exit_code == 2
    assert one_error_line(result) == ("error: --rule: expected auto, exact or follows_labels, "
                                      "got 'nope'")


def test_the_same_code_as_a_plugin_is_jailed_and_gets_nothing(tmp_path):
    result = audit(tmp_path, "--method", "malicious.gc_split:GcSplitThief")
    assert result.exit_code == 0, result.output
    assert "CLEAN malicious_gc_split" in result.stdout and "isolation=jail" in result.stdout


def test_a_plugin_run_outside_the_jail_fails_the_audit(tmp_path):
    result = audit(tmp_path, "--method", "plugins_for_tests:ScaledWeak", "--unjailed")
    assert result.exit_code == 1, result.output
    assert "FLAGGED scaled_weak" in result.stdout and "isolation=unjailed" in result.stdout
    assert "outside the jail" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["--method", "no_such_method"], "error: --method: unknown method 'no_such_method'; known"),
    (["--method", "vanilla", "--param", "hard=maybe"],
     "error: --param hard: method vanilla: expected bool"),
    (["--method", "vanilla", "--param", "nope=1"],
     "error: --param nope: method vanilla: unknown param; known params: hard"),
    (["--method", "vanilla", "--rung", "r9"],
     "error: rung: unknown rung 'r9'; ladder 'micro' has: m0, m1"),
    (["--method", "vanilla", "--ladder", "no-such-ladder"],
     "error: ladder: unknown ladder 'no-such-ladder'; built in: micro"),
    (["--method", "vanilla", "--data", "/nonexistent/task"], "error: /nonexistent/task"),
    (["--method", "zero_shot_prior"],
     "error: --method: method zero_shot_prior cannot run on rung m0 of ladder micro: "),
    (["--method", "vanilla", "--plan", "micro-ci", "--rung", "r9"],
     "error: --rung: rung 'r9' is not one the plan runs (m0, m1)"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    line = one_error_line(audit(tmp_path, *args))
    assert line.startswith(expected)


def test_with_a_plan_every_rung_is_audited_at_a_seed_drawn_from_the_plan(tmp_path):
    """A method sees its rung and seed, so an audit of one fixed cell (the ladder's first rung,
    seed 0, before) leaves it the others to read labels in (found by an independent attacker
    review, 2026-12-04)."""
    from flows.commands.audit import audit_cells
    from flows.plan import load_plan
    from transfer.ladder import load_ladder

    micro, plan = load_ladder("micro"), load_plan("micro-ci")
    drawn = {audit_cells(plan, micro, None, None)[1] for _ in range(200)}
    assert drawn == {0, 1, 2}  # micro-ci: seeds.max 3, each drawn
    assert audit_cells(plan, micro, None, 5) == (["m0", "m1"], 5)
    assert audit_cells(plan, micro, "m1", 1) == (["m1"], 1)
    assert audit_cells(None, micro, None, None) == (["m0"], 0)
