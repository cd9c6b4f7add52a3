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
