"""The external-command method: the file contract end to end and every failure as one line."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from methods.exchange import read_predictions, write_inputs
from methods.jail import jail_available
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
from w2s_common.errors import InputError

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")

MEAN_WEAK_SCRIPT = textwrap.dedent("""\
    #!/bin/sh
    # An external method in plain sh/awk: predict the mean weak probability for every test row.
    set -e
    inputs=$1; outputs=$2
    mean=$(sed -E 's/.*"weak_prob": ([0-9.eE+-]+).*/\\1/' "$inputs/student.jsonl" \\
           | awk '{ s += $1 } END { printf "%.6f", s / NR }')
    sed -E "s/^\\{\\"id\\": (\\"[^\\"]*\\").*/{\\"id\\": \\1, \\"prob\\": $mean}/" \\
        "$inputs/test.jsonl" > "$outputs/predictions.jsonl"
    """)


def run_external(task, trainer, command: str, *extra: str):
    method = resolve_method("external")
    params = parse_params(method, [f"command={command}", *extra])
    return run_method(method, task.data, trainer, params)


def test_a_shell_script_method_works_end_to_end(tmp_path, task, trainer):
    script = tmp_path / "mean_weak.sh"
    script.write_text(MEAN_WEAK_SCRIPT)
    run = run_external(task, trainer, f"sh {script} {{inputs}} {{outputs}}")
    expected = round(float(np.mean(task.data.weak_probs)), 6)
    np.testing.assert_allclose(run.probs, expected, atol=1e-6)
    assert run.isolation == "jail"
    assert trainer.calls == []  # an external method trains its own model, if any


def test_the_command_gets_exactly_the_contract_files(task, trainer):
    # The command reports its listing as the last stderr line, which the error message carries.
    with pytest.raises(InputError) as err:
        run_external(task, trainer, "sh -c 'ls -A {inputs} | tr \"\\n\" \" \" >&2; exit 1'")
    assert str(err.value).endswith("student.jsonl task.json test.jsonl")


def test_inputs_carry_no_labels(tmp_path, task):
    write_inputs(task.data, tmp_path)
    student = [json.loads(line) for line in (tmp_path / "student.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert set(student[0]) == {"id", "text", "weak_prob"} and len(student) == len(task.data.ids)
    assert set(test[0]) == {"id", "text"} and [r["id"] for r in test] == list(task.data.test_ids)
    assert json.loads((tmp_path / "task.json").read_text()) == {
        "label_names": ["neg", "pos"], "seed": task.data.seed, "n_student": len(student),
        "n_test": len(test)}


def _writer(directory, rows: str) -> str:
    """A command that 'predicts' by copying ``rows`` into the outputs directory."""
    source = directory / "rows.jsonl"
    source.write_text(rows)
    return f"cp {source} {{outputs}}/predictions.jsonl"


@pytest.mark.parametrize("command, message", [
    ("sh -c 'echo starting; echo boom: bad model >&2; exit 3'",
     "exited with status 3: boom: bad model"),
    ("true", "predictions.jsonl: the method wrote no predictions file"),
    ("definitely-not-a-program-w2s {inputs}", "not found on the jail.s PATH"),
    ("sh -c 'unbalanced", "cannot split the command"),
])
def test_command_failures_are_one_line_errors(task, trainer, command, message):
    with pytest.raises(InputError, match=message) as err:
        run_external(task, trainer, command)
    assert "\n" not in str(err.value)


def test_timeout_is_an_error(task, trainer):
    with pytest.raises(InputError, match="timed out after 0.5 s"):
        run_external(task, trainer, "sleep 20", "timeout_s=0.5")


def test_the_plan_s_jail_time_out_caps_the_method_s_own(task, trainer):
    """A method's ``timeout_s`` param may shorten the plan's ``jail.timeout_s``, never lengthen
    it (attacker review 2026-12-05: ``timeout_s=inf`` was accepted and a sleeping command held
    its worker past the plan's limit)."""
    from methods.policy import JailSettings, jail_settings

    with jail_settings(JailSettings(timeout_s=1)), pytest.raises(
            InputError, match=r"timed out after 1 s \(raise the plan's jail.timeout_s"):
        run_external(task, trainer, "sleep 20", "timeout_s=600")


def test_malformed_predictions_name_the_line_and_field(tmp_path, task, trainer):
    first, second = task.data.test_ids[:2]
    cases = [
        (f'{{"id": "{first}", "prob": 0.5}}\n{{oops\n', r"predictions.jsonl:2: malformed JSON"),
        (f'{{"id": "{first}", "prob": NaN}}\n', r"predictions.jsonl:1: prob: .*probability"),
        (f'{{"id": "{first}", "prob": 1.5}}\n', r"predictions.jsonl:1: prob: .*probability"),
        (f'{{"id": "{first}", "prob": "high"}}\n', r"predictions.jsonl:1: prob: expected a number"),
        ('{"id": "nope", "prob": 0.5}\n', r"predictions.jsonl:1: id: unknown test id"),
        ('{"prob": 0.5}\n', r"predictions.jsonl:1: id: expected a string id"),
        (f'{{"id": "{first}", "prob": 0.5}}\n{{"id": "{first}", "prob": 0.5}}\n',
         r"predictions.jsonl:2: id: .*appears twice"),
        (f'{{"id": "{first}", "prob": 0.5}}\n{{"id": "{second}", "prob": 0.5}}\n',
         rf"expected {len(task.data.test_ids)} predictions, got 2"),
        ('[1, 2]\n', r"predictions.jsonl:1: expected an object"),
        (f'{{"id": "{first}", "prob": 1{"0" * 5000}}}\n', r"predictions.jsonl:1: malformed JSON"),
        (f'{{"id": "{first}", "prob": 1{"0" * 400}}}\n',
         r"predictions.jsonl:1: prob: expected a probability in \[0, 1\], got 1000.*\.\.\."),
        (f'{{"id": "{first}", "prob": 1e999}}\n', r"predictions.jsonl:1: prob: .*probability"),
        (f'{{"id": "{"x" * 5000}", "prob": 0.5}}\n', r"unknown test id 'xxxx.*\.\.\.$"),
    ]
    for rows, message in cases:
        with pytest.raises(InputError, match=message):
            run_external(task, trainer, _writer(tmp_path, rows))


@pytest.mark.parametrize("command, message", [
    ("ln -s /etc/hostname {outputs}/predictions.jsonl", "refused: a symbolic link"),
    ("mkfifo {outputs}/predictions.jsonl", "refused: not a regular file"),
    ("mkdir {outputs}/predictions.jsonl", "refused: not a regular file"),
    ("sh -c 'head -c 5000000 /dev/zero | tr \"\\\\0\" x > {outputs}/predictions.jsonl'",
     "refused: 5000000 bytes, more than the"),
])
def test_outputs_that_are_not_small_regular_files_are_refused(task, trainer, command, message):
    with pytest.raises(InputError, match=message) as err:
        run_external(task, trainer, command)
    assert "\n" not in str(err.value)


def test_read_predictions_accepts_any_row_order(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "b", "prob": 0.2}\n\n{"id": "a", "prob": 1}\n')
    np.testing.assert_array_equal(read_predictions(path, ["a", "b"]), [1.0, 0.2])


def test_bad_params_are_input_errors():
    method = resolve_method("external")
    with pytest.raises(InputError, match="--param command: method external: required"):
        parse_params(method, [])
    with pytest.raises(InputError, match="--param timeout_s"):
        parse_params(method, ["command=true", "timeout_s=-1"])
    for unbounded in ("inf", "nan", "1e12"):
        with pytest.raises(InputError, match="--param timeout_s"):
            parse_params(method, ["command=true", f"timeout_s={unbounded}"])
