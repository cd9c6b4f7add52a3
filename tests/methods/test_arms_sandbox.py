"""The methods' sandbox wired into the real arms (micro ladder): built-ins run in-process,
plugins in the namespace sandbox, which hides the dataset, the run store and the evaluator's
sources but not the trainer's caches; the trainer handed over carries no labels or paths."""
from __future__ import annotations

import json
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from methods import sandbox
from test_arms_plugins import readable_paths

pytestmark = pytest.mark.skipif(not sandbox.namespaces_available(),
                                reason="Linux namespaces not permitted here")

RUNG = "m0"


def write_task(task, directory: Path) -> Path:
    """``task`` as a generic JSONL task directory, the way a user would hand it over."""
    directory.mkdir()
    for name, split in task.splits.items():
        (directory / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": e.id, "text": e.text, "label": int(e.label)}) + "\n"
            for e in split.examples))
    (directory / "labels.json").write_text(json.dumps(list(task.label_names)))
    return directory


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    from transfer.data import synthetic_task

    task = synthetic_task(seed=0, n_train_label=300, n_train_unlabel=300, n_test=200,
                          n_corpus=3000)
    return write_task(task, tmp_path_factory.mktemp("arms-sandbox") / "task")


@pytest.fixture
def ctx(dataset_dir, tmp_path):
    from flows.context import arm_context

    return arm_context("micro", dataset_dir, tmp_path / "store", {"epochs": 2})


def student_probs(ctx, reference, params=(), **options) -> tuple[np.ndarray, list[str]]:
    from flows.context import method_function
    from transfer.arms import run_arm

    name, params_dict, fn = method_function(reference, list(params), ctx=ctx,
                                            data=options.pop("data", None), **options)
    record = run_arm(ctx, RUNG, "student", 0, method=name, method_params=params_dict,
                     method_fn=fn)
    return record.predictions()["prob"].to_numpy(), fn.isolation


def test_a_plugin_in_the_sandbox_trains_exactly_like_the_builtin_in_process(ctx, tmp_path):
    from transfer.store import RunStore

    builtin, how = student_probs(ctx, "vanilla")
    assert how == ["in-process"]
    # The same class named as a plugin: same store key, so it needs a store of its own.
    ctx.store = RunStore(tmp_path / "plugin-store")
    plugin, how = student_probs(ctx, "methods.builtin.simple:Vanilla")
    assert how == ["namespace"]
    np.testing.assert_array_equal(plugin, builtin)  # the pickled trainer is the same trainer
    assert not np.all(plugin == 0.5)


def test_the_sandbox_hides_dataset_store_and_evaluator_but_not_the_caches(ctx, dataset_dir):
    from transfer.arms import run_arm
    from transfer.fsutil import cache_dir

    weak = run_arm(ctx, RUNG, "weak", 0)
    paths = [str(dataset_dir / "test.jsonl"), str(weak.path / "predictions.parquet"),
             str(Path(__import__("transfer.data").data.__file__)), str(cache_dir() / "features")]
    reference = "test_arms_plugins:ProbePaths"
    param = "paths=" + json.dumps(paths)
    probs, how = student_probs(ctx, reference, [param], data=dataset_dir)
    assert how == ["namespace"]
    assert readable_paths(probs, paths) == [str(cache_dir() / "features")]
    # Control: without namespaces nothing is hidden, so the probe does see every path.
    ctx.store = type(ctx.store)(ctx.store.root.parent / "control-store")
    probs, how = student_probs(ctx, reference, [param], data=dataset_dir,
                               isolation="subprocess")
    assert how == ["subprocess"] and readable_paths(probs, paths) == paths


def test_the_trainer_handed_to_the_sandbox_carries_no_labels_or_paths(ctx, dataset_dir):
    from transfer.arms import run_arm, sealed_student_inputs

    weak = run_arm(ctx, RUNG, "weak", 0)
    data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
    payload = pickle.dumps({"data": data, "trainer": trainer})
    globals_used = {arg for op, arg, _ in pickletools.genops(payload)
                    if op.name in ("GLOBAL", "STACK_GLOBAL") or isinstance(arg, str)}
    assert not any(str(arg).startswith(("transfer.data", "transfer.arms", "transfer.store"))
                   for arg in globals_used)
    for secret in (str(dataset_dir), str(ctx.store.root), str(weak.path)):
        assert secret.encode() not in payload
    # No array in it equals a labelled split's gold labels.
    restored = pickle.loads(payload)
    arrays = [restored["data"].weak_probs, restored["data"].weak_test_probs,
              *restored["trainer"].strong.features.values()]
    for split in ("train_unlabel", "test"):
        gold = ctx.task.splits[split].labels
        assert not any(a.shape == gold.shape and np.array_equal(a, gold) for a in arrays)
    assert set(restored["trainer"].strong.features) == {"train_unlabel", "test"}


@pytest.mark.parametrize("reference", ["malicious.inspect_objects:InspectObjects",
                                       "test_arms_plugins:GcSplitThief"])
def test_object_hunting_plugins_find_nothing_in_the_real_arms(ctx, dataset_dir, reference):
    from methods.registry import parse_params, resolve_method
    from transfer.arms import run_arm, sealed_student_inputs

    if reference.endswith("GcSplitThief"):
        # The route is real: unsandboxed, in this process, gc leads to the task's labels.
        weak = run_arm(ctx, RUNG, "weak", 0)
        data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
        method = resolve_method(reference)
        stolen = method.run(data, trainer, parse_params(method, []))
        np.testing.assert_array_equal(stolen, ctx.task.splits["test"].labels)
    probs, how = student_probs(ctx, reference, data=dataset_dir)
    assert how == ["namespace"]
    assert np.all(probs == 0.5)


def test_importing_the_evaluator_regenerates_labels_in_process_but_not_in_the_sandbox(tmp_path):
    from flows.context import arm_context
    from methods.registry import parse_params, resolve_method
    from transfer.arms import run_arm, sealed_student_inputs

    ctx = arm_context("micro", None, tmp_path / "store", {"epochs": 1})  # the synthetic task
    weak = run_arm(ctx, RUNG, "weak", 0)
    data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
    reference = "malicious.import_evaluator:ImportEvaluator"
    method = resolve_method(reference)
    stolen = method.run(data, trainer, parse_params(method, []))
    np.testing.assert_array_equal(stolen, ctx.task.splits["test"].labels)
    probs, how = student_probs(ctx, reference)
    assert how == ["namespace"] and np.all(probs == 0.5)


def test_a_store_holding_the_trainer_caches_is_refused(tmp_path, monkeypatch):
    from flows.context import arm_context, method_function
    from transfer.errors import InputError

    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    ctx = arm_context("micro", None, tmp_path / "cache")
    with pytest.raises(InputError, match=r"--store: .*contains the trainer.s cache .*models"):
        method_function("vanilla", [], ctx=ctx)
