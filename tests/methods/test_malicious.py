"""Malicious methods: each route to the gold labels works unjailed and fails in the jail.

Every test first shows the route is real (the thief gets the labels without isolation), then
that the jail closes it. The attack suite on the real pipeline (every cache, store and source
byte-identical afterwards; the audit) is tests/security/.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeTrainer, accuracy, make_task

from methods.jail import jail_available
from methods.policy import JailSettings
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
from transfer.sealed import StudentData

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")
UNJAILED = JailSettings(mode="off")

HERE = Path(__file__).parent


def stole_everything(probs, gold) -> bool:
    return accuracy(probs, gold) == 1.0 and not np.any(probs == 0.5)


def found_nothing(probs) -> bool:
    return bool(np.all(probs == 0.5))


def write_dataset(directory: Path, task) -> Path:
    """Dataset files with gold labels, as a loader would find them on disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir()
    rows = [{"id": i, "text": t, "label": int(y)}
            for i, t, y in zip(task.data.test_ids, task.data.test_texts, task.test_gold)]
    (directory / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), directory / "test.parquet")
    return directory


def plugin(reference: str):
    """The plugin as the pipeline knows it (described in the jail) and, for the in-process
    demonstration that a route is real, the same class imported here by the test."""
    import importlib

    method = resolve_method(reference)
    module, _, attr = reference.partition(":")
    imported = getattr(importlib.import_module(module), attr)()
    return method, parse_params(method, []), imported


def test_inspecting_handed_objects_finds_nothing_in_the_jail(task, trainer):
    method, params, imported = plugin("malicious.inspect_objects:InspectObjects")
    # In-process, the gold labels sit next to the sealed data (here: in the FakeTask) and the
    # thief finds them through gc referrers: the route is real.
    assert stole_everything(imported.run(task.data, trainer, params), task.test_gold)
    run = run_method(method, task.data, trainer, params)
    assert run.isolation == "jail"
    assert found_nothing(run.probs)


def test_walking_the_filesystem_finds_nothing_in_the_jail(tmp_path, task, trainer):
    write_dataset(tmp_path / "dataset", task)
    method, params, imported = plugin("malicious.walk_filesystem:WalkFilesystem")
    assert stole_everything(imported.run(task.data, trainer, params), task.test_gold)
    run = run_method(method, task.data, trainer, params)
    assert run.isolation == "jail"
    assert found_nothing(run.probs)


DECOY_PIPELINE = """
import json, pickle, sys
from methods.policy import JailSettings, jail_settings
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
data, trainer = pickle.load(open(sys.argv[1], "rb"))
with jail_settings(JailSettings(mode=sys.argv[2])):
    method = resolve_method("malicious.read_parent_proc:ReadParentProc")
    run = run_method(method, data, trainer, parse_params(method, []))
print(json.dumps(run.probs.tolist()))
"""


@pytest.mark.parametrize("mode, leaks", [("off", True), ("required", False)])
def test_reading_the_parent_process_finds_nothing_in_the_jail(tmp_path, task, trainer,
                                                              mode, leaks):
    # A decoy pipeline process carries the gold labels in its environment and a gold file
    # path on its command line, as a careless pipeline might.
    gold = dict(zip(task.data.test_ids, task.test_gold.tolist()))
    gold_file = tmp_path / "gold.jsonl"
    gold_file.write_text("".join(json.dumps({"id": k, "label": v}) + "\n"
                                 for k, v in gold.items()))
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps((task.data, trainer)))
    env = {**os.environ, "W2S_GOLD_LABELS": json.dumps(gold),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", DECOY_PIPELINE, str(job), mode,
                           f"--gold-file={gold_file}", str(gold_file)],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    probs = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    if leaks:  # the route is real without the jail
        assert stole_everything(probs, task.test_gold)
    else:
        assert found_nothing(probs)


def _synthetic_student_data() -> tuple[StudentData, np.ndarray]:
    """Sealed data with the ids of the built-in synthetic task, whose labels code can make."""
    from transfer.data import load_task

    real = load_task(None, seed=0)
    test = real.splits["test"].examples[:50]
    student = real.splits["train_unlabel"].examples[:50]
    data = StudentData(ids=[e.id for e in student], texts=[e.text for e in student],
                       weak_probs=np.full(50, 0.6), test_ids=[e.id for e in test],
                       test_texts=[e.text for e in test], weak_test_probs=np.full(50, 0.6),
                       label_names=tuple(real.label_names), seed=0)
    return data, np.array([e.label for e in test])


def test_importing_the_evaluator_fails_in_the_jail():
    data, gold = _synthetic_student_data()
    fake = make_task(n_student=50, n_test=50)
    trainer = FakeTrainer.for_task(fake)
    method, params, imported = plugin("malicious.import_evaluator:ImportEvaluator")
    # In-process the thief regenerates the synthetic task from transfer.data: the route is real,
    # and the canary cannot see it (permuting stored labels does not change generated ones).
    assert stole_everything(imported.run(data, trainer, params), gold)
    run = run_method(method, data, trainer, params)
    assert run.isolation == "jail"
    assert found_nothing(run.probs)


def test_a_stand_in_evaluator_module_is_not_in_the_jail(tmp_path, monkeypatch, task, trainer):
    # An evaluator the jail was never told about: importable here, absent there (allow-list).
    package = tmp_path / "lib" / "w2s_test_evaluator"
    package.mkdir(parents=True)
    gold = dict(zip(task.data.test_ids, task.test_gold.tolist()))
    (package / "__init__.py").write_text(f"def gold_labels():\n    return {gold!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    method, params, imported = plugin("malicious.import_evaluator:ImportEvaluator")
    assert stole_everything(imported.run(task.data, trainer, params), task.test_gold)
    run = run_method(method, task.data, trainer, params)
    assert found_nothing(run.probs)


def test_an_external_script_grepping_the_filesystem_finds_nothing(tmp_path, task, trainer):
    write_dataset(tmp_path / "dataset", task)
    method = resolve_method("external")
    params = parse_params(method, [f"command=sh {HERE / 'malicious' / 'grep_filesystem.sh'} "
                                   "{inputs} {outputs}", "timeout_s=120"])
    leaked = run_method(method, task.data, trainer, params, settings=UNJAILED)
    assert leaked.isolation == "unjailed"
    assert stole_everything(leaked.probs, task.test_gold)  # the route is real
    run = run_method(method, task.data, trainer, params)
    assert run.isolation == "jail"
    assert found_nothing(run.probs)
