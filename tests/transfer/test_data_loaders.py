"""Loading sandbox (pairwise, binary) and generic JSONL task directories."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from transfer.data import SPLIT_NAMES, DataWarning, Example, TaskData, load_task

FIXTURES = Path(__file__).parent / "fixtures"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load_quietly(path) -> TaskData:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return load_task(path)


def test_pairwise_sandbox_rows_become_examples():
    task = _load_quietly(FIXTURES / "sandbox_pairwise")
    assert task.name == "sandbox_pairwise"
    assert task.label_names == ("A", "B")
    assert set(task.splits) == set(SPLIT_NAMES)
    raw = _rows(FIXTURES / "sandbox_pairwise" / "test.jsonl")
    assert len(task.test) == len(raw)
    first = task.test.examples[0]
    assert first.text == (f"Question: {raw[0]['prompt']}\nAnswer A: {raw[0]['first']}\n"
                          f"Answer B: {raw[0]['second']}")
    assert list(task.test.labels) == [{"A": 0, "B": 1}[r["label"]] for r in raw]
    assert first.extra == {"subset": raw[0]["subset"]}
    assert task.warnings == []


def test_binary_sandbox_labels_true_is_one():
    task = _load_quietly(FIXTURES / "sandbox_binary")
    assert task.label_names == ("False", "True")
    raw = _rows(FIXTURES / "sandbox_binary" / "train_unlabel.jsonl")
    assert list(task.train_unlabel.labels) == [int(r["label"]) for r in raw]
    assert task.train_unlabel.texts[0] == (f"Question: {raw[0]['question']}\n"
                                           f"Answer: {raw[0]['choice']}")


def test_generic_rows_keep_ids_and_label_names_from_labels_json():
    task = _load_quietly(FIXTURES / "generic")
    assert task.label_names == ("neg", "pos")
    raw = _rows(FIXTURES / "generic" / "train_label.jsonl")
    assert task.train_label.ids == tuple(r["id"] for r in raw)
    assert list(task.train_label.labels) == [int(r["label"]) for r in raw]


def test_generic_label_names_default_without_labels_json(tmp_path):
    shutil.copytree(FIXTURES / "generic", tmp_path / "task")
    (tmp_path / "task" / "labels.json").unlink()
    assert load_task(tmp_path / "task").label_names == ("0", "1")


def test_corpus_is_training_texts_only():
    task = _load_quietly(FIXTURES / "sandbox_pairwise")
    assert task.corpus == task.train_label.texts + task.train_unlabel.texts
    assert not set(task.corpus) & set(task.test.texts)


def test_split_columns_are_aligned_and_read_only():
    split = _load_quietly(FIXTURES / "generic").train_unlabel
    assert isinstance(split.labels, np.ndarray) and split.labels.dtype == np.int64
    assert len(split.ids) == len(split.texts) == len(split.labels) == len(split)
    with pytest.raises(ValueError):
        split.labels[0] = 1
    with pytest.raises(AttributeError):
        split.examples[0].label = 1


def _write_task(root: Path, rows: dict[str, list[dict]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, split_rows in rows.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    return root


def _binary(i: int, label: bool, **extra) -> dict:
    return {"question": f"q{i}", "choice": f"c{i}", "label": label, **extra}


def test_derived_ids_ignore_the_label_and_are_stable(tmp_path):
    rows = {"train_label": [_binary(0, True), _binary(1, False)],
            "train_unlabel": [_binary(2, True), _binary(3, False)],
            "test": [_binary(4, True), _binary(5, False)]}
    flipped = {name: [{**r, "label": not r["label"]} for r in split_rows]
               for name, split_rows in rows.items()}
    first = load_task(_write_task(tmp_path / "a", rows))
    again = load_task(_write_task(tmp_path / "b", rows))
    relabelled = load_task(_write_task(tmp_path / "c", flipped))
    for name in SPLIT_NAMES:
        assert first.splits[name].ids == again.splits[name].ids == relabelled.splits[name].ids
    assert len(set(first.train_label.ids + first.train_unlabel.ids + first.test.ids)) == 6


def test_repeated_content_gets_deterministic_suffixes(tmp_path):
    rows = {"train_label": [_binary(0, True), _binary(0, False), _binary(1, True)],
            "train_unlabel": [_binary(0, True), _binary(2, False)],
            "test": [_binary(3, True), _binary(4, False)]}
    task = load_task(_write_task(tmp_path / "t", rows))
    base = task.train_label.ids[0]
    assert task.train_label.ids[1] == f"{base}-2"
    assert task.train_unlabel.ids[0] == f"{base}-3"
    assert load_task(_write_task(tmp_path / "u", rows)).train_unlabel.ids == task.train_unlabel.ids


def test_fingerprint_tracks_content_not_location(tmp_path):
    original = load_task(FIXTURES / "generic")
    copy = tmp_path / "elsewhere"
    shutil.copytree(FIXTURES / "generic", copy)
    assert load_task(copy).fingerprint == original.fingerprint
    assert len(original.fingerprint) == 16 and int(original.fingerprint, 16) >= 0
    test_file = copy / "test.jsonl"
    rows = _rows(test_file)
    rows[0]["label"] = 1 - rows[0]["label"]
    test_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_task(copy).fingerprint != original.fingerprint


def test_blank_lines_are_skipped(tmp_path):
    root = _write_task(tmp_path / "t", {"train_label": [_binary(0, True), _binary(1, False)],
                                        "train_unlabel": [_binary(2, True), _binary(3, False)],
                                        "test": [_binary(4, True), _binary(5, False)]})
    path = root / "test.jsonl"
    path.write_text("\n" + path.read_text().replace("\n", "\n\n  \n") + "\n")
    task = load_task(root)
    assert len(task.test) == 2 and all(isinstance(e, Example) for e in task.test)


def test_heavy_imbalance_warns_and_is_recorded(tmp_path):
    rows = {"train_label": [_binary(i, i == 0) for i in range(10)],
            "train_unlabel": [_binary(10 + i, i % 2 == 0) for i in range(10)],
            "test": [_binary(20 + i, i % 2 == 0) for i in range(4)]}
    root = _write_task(tmp_path / "t", rows)
    with pytest.warns(DataWarning, match=r"train_label\.jsonl: heavy class imbalance: 10\.0% "
                                         r"of 10 examples have label 'True'"):
        task = load_task(root)
    assert len(task.warnings) == 1 and "train_label.jsonl" in task.warnings[0]
