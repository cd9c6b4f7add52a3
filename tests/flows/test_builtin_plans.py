"""Built-in plans ship with the package and can be named instead of given by path."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.plan import PLAN_DIR, builtin_plan_names, load_plan
from w2s_common.errors import InputError


def test_a_builtin_plan_loads_by_name_as_by_path() -> None:
    assert builtin_plan_names() == ["demo", "micro-ci", "tiny-ci"]
    by_name = load_plan("micro-ci")
    assert by_name.source == PLAN_DIR / "micro-ci.yaml"
    assert by_name.plan_hash == load_plan(PLAN_DIR / "micro-ci.yaml").plan_hash


def test_a_file_in_the_working_directory_wins_over_a_builtin_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("demo").write_text((PLAN_DIR / "micro-ci.yaml").read_text())
    assert load_plan("demo").source == Path("demo")


def test_an_unknown_name_lists_the_builtin_plans(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:
        load_plan("nosuch")
    assert str(err.value) == ("plan: unknown plan 'nosuch'; built in: demo, micro-ci, tiny-ci, "
                              "or a path to a YAML file")
    result = CliRunner().invoke(app, ["validate", "nosuch", "--out", str(tmp_path / "out")])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == [f"error: {err.value}"], result.output
    assert not (tmp_path / "out").exists()
