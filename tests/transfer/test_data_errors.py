"""Every bad task directory gives one InputError naming file, line, field and the expectation."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from transfer.data import load_task
from w2s_common.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


def _pairwise(i: int, label: str = "A", **extra) -> dict:
    return {"prompt": f"prompt {i}", "first": f"first {i}", "second": f"second {i}",
            "label": label, **extra}


def _task(root: Path, train_label=None, train_unlabel=None, test=None) -> Path:
    """A valid pairwise task; each argument replaces that file's lines (dicts or raw strings)."""
    default = {"train_label": [_pairwise(0, "A"), _pairwise(1, "B")],
               "train_unlabel": [_pairwise(2, "A"), _pairwise(3, "B")],
               "test": [_pairwise(4, "A"), _pairwise(5, "B")]}
    given = {"train_label": train_label, "train_unlabel": train_unlabel, "test": test}
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in default.items():
        rows = given[name] if given[name] is not None else rows
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        (root / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines))
    return root


def _error(root: Path) -> str:
    with pytest.raises(InputError) as info:
        load_task(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_helper_task_loads(tmp_path):
    assert len(load_task(_task(tmp_path / "t")).test) == 2


def test_malformed_json_names_file_and_line(tmp_path):
    root = _task(tmp_path / "t", train_unlabel=[_pairwise(2), '{"prompt": "x", "first": '])
    assert re.fullmatch(rf"{re.escape(str(root / 'train_unlabel.jsonl'))}:2: malformed JSON: "
                        r"Expecting value at column \d+", _error(root))


def test_a_key_named_twice_in_a_line_is_refused(tmp_path):
    """helper-44: json keeps the last of a repeated key, so a row's label read one way here
    and another way in any reader that keeps the first."""
    row = json.dumps(_pairwise(2))
    root = _task(tmp_path / "t", test=[_pairwise(1), row[:-1] + ', "prompt": "again"}'])
    assert _error(root) == f"{root / 'test.jsonl'}:2: key 'prompt' appears twice in one object"


def test_line_numbers_count_blank_lines(tmp_path):
    root = _task(tmp_path / "t", test=["", _pairwise(4), "", "[1, 2]"])
    assert _error(root) == f"{root / 'test.jsonl'}:4: expected a JSON object per line, got list"


def test_missing_field_names_the_field_and_the_format(tmp_path):
    row = _pairwise(1)
    del row["second"]
    root = _task(tmp_path / "t", train_label=[_pairwise(0), row])
    assert _error(root) == (f"{root / 'train_label.jsonl'}:2: second: missing field; pairwise "
                            "rows need pairwise {prompt, first, second, label: \"A\" or \"B\"}")


def test_missing_label(tmp_path):
    row = _pairwise(5)
    del row["label"]
    root = _task(tmp_path / "t", test=[_pairwise(4), row])
    assert _error(root).startswith(f"{root / 'test.jsonl'}:2: label: missing field")


def test_wrong_type_of_an_input_field(tmp_path):
    root = _task(tmp_path / "t", train_unlabel=[{**_pairwise(2), "prompt": 7}, _pairwise(3)])
    assert _error(root) == (f"{root / 'train_unlabel.jsonl'}:1: prompt: expected a string, "
                            "got a number")


@pytest.mark.parametrize("label", ["C", "a", 1, True, None])
def test_pairwise_label_outside_a_b(tmp_path, label):
    root = _task(tmp_path / "t", test=[_pairwise(4), _pairwise(5, label)])
    assert _error(root) == (f"{root / 'test.jsonl'}:2: label: expected \"A\" or \"B\", "
                            f"got {json.dumps(label)}")


@pytest.mark.parametrize("label", ["true", 1, 0])
def test_binary_label_must_be_a_boolean(tmp_path, label):
    rows = [{"question": "q", "choice": "c", "label": label}]
    root = _task(tmp_path / "t", train_label=rows)
    assert _error(root) == (f"{root / 'train_label.jsonl'}:1: label: expected true or false, "
                            f"got {json.dumps(label)}")


@pytest.mark.parametrize("label", [2, -1, 0.5, "1"])
def test_generic_label_outside_binary_set(tmp_path, label):
    root = _task(tmp_path / "t",
                 train_label=[{"text": "a", "label": 0}, {"text": "b", "label": label}],
                 train_unlabel=[{"text": "c", "label": 1}], test=[{"text": "d", "label": 0}])
    assert _error(root) == (f"{root / 'train_label.jsonl'}:2: label: expected 0, 1, true or "
                            f"false, got {json.dumps(label)}")


def test_generic_text_must_not_be_blank(tmp_path):
    root = _task(tmp_path / "t", train_label=[{"text": "  ", "label": 0}],
                 train_unlabel=[{"text": "c", "label": 1}], test=[{"text": "d", "label": 0}])
    assert _error(root) == f"{root / 'train_label.jsonl'}:1: text: expected a non-empty string"


def test_duplicate_ids_name_both_lines(tmp_path):
    root = _task(tmp_path / "t", train_label=[_pairwise(0, id="x1"), _pairwise(1, id="x2")],
                 test=[_pairwise(4, id="x9"), _pairwise(5, "B", id="x2")])
    assert _error(root) == (f"{root / 'test.jsonl'}:2: id: duplicate id 'x2': also used at "
                            f"{root / 'train_label.jsonl'}:2")


@pytest.mark.parametrize("bad_id", ["", True, [1]])
def test_unusable_id(tmp_path, bad_id):
    root = _task(tmp_path / "t", train_label=[_pairwise(0, id=bad_id)])
    assert _error(root) == (f"{root / 'train_label.jsonl'}:1: id: expected a non-empty string "
                            f"or an integer, got {json.dumps(bad_id)}")


def test_empty_split(tmp_path):
    root = _task(tmp_path / "t", train_unlabel=["", "   "])
    assert _error(root) == (f"{root / 'train_unlabel.jsonl'}: empty split: the file holds no "
                            "rows; every split needs at least one example")


def test_missing_file(tmp_path):
    root = _task(tmp_path / "t")
    (root / "test.jsonl").unlink()
    assert _error(root) == (f"{root / 'test.jsonl'}: missing file: every task directory needs "
                            "train_label.jsonl, train_unlabel.jsonl and test.jsonl")


def test_path_that_is_not_a_directory(tmp_path):
    assert _error(tmp_path / "nowhere") == (
        f"{tmp_path / 'nowhere'}: expected a task directory holding train_label.jsonl, "
        "train_unlabel.jsonl and test.jsonl")


def test_test_text_in_training_split_is_a_leak(tmp_path):
    root = _task(tmp_path / "t", test=[_pairwise(4), _pairwise(3, "A")])
    assert _error(root) == (f"{root / 'test.jsonl'}:2: text: test text also occurs in training "
                            f"data at {root / 'train_unlabel.jsonl'}:2 (leak: the test split "
                            "must be unseen)")


def test_leak_ignores_case_and_spacing(tmp_path):
    root = _task(tmp_path / "t",
                 train_label=[{"text": "Great  movie", "label": 1}, {"text": "bad", "label": 0}],
                 train_unlabel=[{"text": "fine", "label": 1}],
                 test=[{"text": "great movie ", "label": 1}])
    assert "test text also occurs in training data at" in _error(root)


def test_mixed_formats_within_a_file(tmp_path):
    root = _task(tmp_path / "t", train_unlabel=[
        _pairwise(2), {"question": "q", "choice": "c", "label": True}])
    assert _error(root) == (f"{root / 'train_unlabel.jsonl'}:2: mixed formats: this row is "
                            "binary {question, choice, label: true or false} but the task "
                            "started as pairwise {prompt, first, second, label: \"A\" or \"B\"}")


def test_mixed_formats_across_files(tmp_path):
    root = _task(tmp_path / "t", test=[{"id": "t1", "text": "hello", "label": 1}])
    assert _error(root).startswith(f"{root / 'test.jsonl'}:1: mixed formats: this row is generic")


def test_unknown_first_row(tmp_path):
    root = _task(tmp_path / "t", train_label=[{"sentence": "x", "label": 1}])
    message = _error(root)
    assert message.startswith(f"{root / 'train_label.jsonl'}:1: unknown row format: expected "
                              "pairwise {prompt, first, second")
    assert message.endswith("got fields ['label', 'sentence']")


def test_invalid_utf8(tmp_path):
    root = _task(tmp_path / "t")
    (root / "test.jsonl").write_bytes(b'{"prompt": "\xff"}\n')
    assert _error(root) == f"{root / 'test.jsonl'}: file is not valid UTF-8 (byte 12)"


def test_deeply_nested_line_names_file_and_line(tmp_path):
    # Past Python's recursion limit json.loads raises RecursionError (was a traceback).
    root = _task(tmp_path / "t", test=[_pairwise(4, "A"), "[" * 200_000])
    assert _error(root) == (f"{root / 'test.jsonl'}:2: JSON nested too deeply (expected arrays "
                            "and objects less than about 1000 levels deep)")


def test_deeply_nested_labels_json(tmp_path):
    root = tmp_path / "generic"
    shutil.copytree(FIXTURES / "generic", root)
    (root / "labels.json").write_text('{"a":' * 200_000)
    assert _error(root).startswith(f"{root / 'labels.json'}: labels: JSON nested too deeply")


def test_a_fifo_labels_json_is_refused_without_blocking(tmp_path):
    root = tmp_path / "generic"
    shutil.copytree(FIXTURES / "generic", root)
    (root / "labels.json").unlink(missing_ok=True)
    os.mkfifo(root / "labels.json")  # reading it would wait forever for a writer
    assert _error(root) == f"{root / 'labels.json'}: labels: expected a regular file"


@pytest.mark.parametrize("content", ['["neg"]', '["a", "a"]', '{"0": "neg"}', "not json"])
def test_bad_labels_json(tmp_path, content):
    root = tmp_path / "generic"
    shutil.copytree(FIXTURES / "generic", root)
    (root / "labels.json").write_text(content)
    message = _error(root)
    assert message.startswith(f"{root / 'labels.json'}: labels: ")
    if content != "not json":
        assert "expected a list of two distinct non-empty names" in message


def test_labels_json_with_sandbox_rows(tmp_path):
    root = _task(tmp_path / "t")
    (root / "labels.json").write_text('["bad", "good"]')
    assert _error(root) == (f"{root / 'labels.json'}: labels.json applies to generic rows only; "
                            "pairwise rows have fixed label names ['A', 'B']")


def test_cli_wrapper_prints_one_line_and_exits_2(tmp_path):
    """Through the CLI's error wrapper, a data error is one stderr line and exit code 2."""
    from flows.commands._errors import user_errors

    app = typer.Typer()

    @app.command()
    def load(data: Path) -> None:
        with user_errors():
            load_task(data)

    root = _task(tmp_path / "t", test=[_pairwise(4), _pairwise(3, "A")])
    result = CliRunner().invoke(app, [str(root)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {root / 'test.jsonl'}:2: text: test text also occurs in training data at "
        f"{root / 'train_unlabel.jsonl'}:2 (leak: the test split must be unseen)"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_split_that_is_not_a_regular_file_is_named_as_such(tmp_path, kind):
    root = tmp_path / "generic"
    shutil.copytree(FIXTURES / "generic", root)
    (root / "test.jsonl").unlink()
    if kind == "fifo":
        os.mkfifo(root / "test.jsonl")
    else:
        (root / "test.jsonl").mkdir()
    assert _error(root) == f"{root / 'test.jsonl'}: expected a regular file"
