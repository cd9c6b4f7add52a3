"""The YAML every plan, ladder and sweep registry is read with (w2s_common/yamlio.py): YAML 1.2
booleans, and files that would hang or crash the reader are one line (found by an independent
fuzz review, 2026-12-03)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.plan import load_plan
from w2s_common.errors import InputError
from w2s_common.yamlio import MAX_EXPANDED_NODES, parse_yaml

PLAN = """\
name: check
methods:
  - name: aux_conf
baseline: vanilla
ladder: micro
seeds: {initial: 2, batch: 1, max: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_the_documented_opt_out_of_the_jail_loads_as_written(tmp_path):
    # YAML 1.1 reads off/on/yes/no as booleans: `mode: off` arrived as False and was refused
    # with "expected 'required' or 'off'".
    plan = load_plan(write(tmp_path, PLAN + "jail: {mode: off}\n"))
    assert plan.jail.mode == "off"
    assert parse_yaml("a: yes\nb: no\nc: on\nd: true\ne: False\n", "x.yaml")[0] == {
        "a": "yes", "b": "no", "c": "on", "d": True, "e": False}


def test_anchors_and_aliases_that_expand_a_little_load(tmp_path):
    text = PLAN.replace("  - name: aux_conf\n", "  - name: aux_conf\n    params: &p {}\n"
                        "  - name: confident\n    params: *p\n")
    assert load_plan(write(tmp_path, text)).method_names == ["aux_conf", "confident"]


def test_an_alias_bomb_is_one_line_at_once(tmp_path):
    # 1 KB that expands to 9^10 nodes: validating it took hours before the bound.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij"))
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        load_plan(write(tmp_path, PLAN + bomb))
    assert time.monotonic() - start < 5
    assert f"expand to more than {MAX_EXPANDED_NODES} nodes" in str(err.value)
    assert str(err.value).startswith(f"{tmp_path / 'plan.yaml'}:")


@pytest.mark.parametrize("extra, expected", [
    ("deep: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("sesoi: 1" + "0" * 5000 + "\n", "plan.yaml:7: invalid YAML: an integer of 5001 characters"),
])
def test_files_that_crashed_the_reader_are_one_line(tmp_path, extra, expected):
    with pytest.raises(InputError) as err:
        load_plan(write(tmp_path, PLAN + extra))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_numbers_with_an_exponent_are_numbers_in_every_file(tmp_path):
    """helper-44: YAML 1.1 reads 1e-2 as a string, which the strict plan refused as "not a
    valid number" and the lax ladder took as a number."""
    plan = load_plan(write(tmp_path, PLAN + "sesoi: 1e-2\nalpha: 5E-2\n"))
    assert (plan.sesoi, plan.alpha) == (0.01, 0.05)
    assert parse_yaml("a: 1.5e3\nb: -2e+1\nc: 10\nd: 1e\ne: 0.5\n", "x.yaml")[0] == {
        "a": 1500.0, "b": -20.0, "c": 10, "d": "1e", "e": 0.5}


@pytest.mark.parametrize("text, expected", [
    ("rungs: []\nrungs: []\n", "x.yaml:2: rungs: duplicate key 'rungs'"),
    ("models:\n  a: {kind: tiny}\n  a: {kind: tiny}\n", "x.yaml:3: models.a: duplicate key 'a'"),
    ("- {out: a, out: b}\n", "x.yaml:1: [0].out: duplicate key 'out'"),
])
def test_a_key_named_twice_is_refused_in_every_file(text, expected):
    """helper-44: only the plan refused duplicate keys; a sweep's registry and template and a
    ladder kept the last value silently."""
    with pytest.raises(InputError) as caught:
        parse_yaml(text, "x.yaml")
    assert str(caught.value) == expected


def test_a_relative_ladder_file_is_the_plan_s_neighbour_whatever_the_directory(
        tmp_path, monkeypatch):
    """helper-44: a relative ladder path was read from the working directory (datasets from the
    plan's), and a missing one named no plan line."""
    from transfer.ladder import LADDER_DIR

    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "mine.yaml").write_text((LADDER_DIR / "micro.yaml").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.yaml").write_text("not: a ladder\n")  # the wrong neighbour
    monkeypatch.chdir(elsewhere)
    plan = load_plan(write(folder, PLAN.replace("ladder: micro", "ladder: mine.yaml")))
    assert plan.ladder_ref() == str(folder / "mine.yaml")
    with pytest.raises(InputError) as caught:
        load_plan(write(folder, PLAN.replace("ladder: micro", "ladder: gone.yaml")))
    assert str(caught.value) == (
        f"{folder / 'plan.yaml'}:5: ladder: expected a built-in ladder name or an existing "
        f"ladder file, got 'gone.yaml' (looked in {folder / 'gone.yaml'})")
