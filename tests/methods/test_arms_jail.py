"""The jail wired into the real arms (micro ladder): built-ins run in-process, plugins in the
jail, which holds neither the dataset, nor the run store, nor the evaluator's sources, nor the
trainer's caches; the trainer handed over carries no labels or paths and trains there exactly
as it does in-process (DeepSpeed included)."""
from __future__ import annotations

import json
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
from plugins_for_tests import readable_paths

from methods.jail import jail_available

pytestmark = pytest.mark.skipif(not jail_available(), reason="no jail builder works here")

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
    from methods.resolve import method_function
    from transfer.arms import run_arm

    options.pop("data", None)
    name, params_dict, fn = method_function(reference, list(params), **options)
    record = run_arm(ctx, RUNG, "student", 0, method=name, method_params=params_dict,
                     method_fn=fn)
    return record.predictions()["prob"].to_numpy(), fn.isolation


def test_a_plugin_in_the_jail_trains_exactly_like_the_builtin_in_process(ctx, tmp_path):
    builtin, how = student_probs(ctx, "vanilla")
    assert how == ["builtin"]
    # The same training (fit on the soft weak labels) as a plugin, in the jail.
    plugin, how = student_probs(ctx, "plugins_for_tests:TrainsStudent")
    assert how == ["jail"]
    np.testing.assert_array_equal(plugin, builtin)  # the pickled trainer is the same trainer
    assert not np.all(plugin == 0.5)


def test_the_jail_holds_no_dataset_store_evaluator_or_cache(ctx, dataset_dir):
    from transfer.arms import run_arm
    from transfer.fsutil import cache_dir

    weak = run_arm(ctx, RUNG, "weak", 0)
    paths = [str(dataset_dir / "test.jsonl"), str(weak.path / "predictions.parquet"),
             str(Path(__import__("transfer.data").data.__file__)), str(cache_dir() / "features")]
    reference = "plugins_for_tests:ProbePaths"
    param = "paths=" + json.dumps(paths)
    probs, how = student_probs(ctx, reference, [param])
    assert how == ["jail"]
    assert readable_paths(probs, paths) == []
    # Control: unjailed, the probe does see every path.
    probs, how = student_probs(ctx, reference, [param], jail={"mode": "off"})
    assert how == ["unjailed"] and readable_paths(probs, paths) == paths


def test_the_trainer_handed_to_the_jail_carries_no_labels_or_paths(ctx, dataset_dir):
    from transfer.arms import run_arm, sealed_student_inputs

    weak = run_arm(ctx, RUNG, "weak", 0)
    data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
    payload = pickle.dumps({"data": data, "trainer": trainer.prepared()})
    globals_used = {arg for op, arg, _ in pickletools.genops(payload)
                    if op.name in ("GLOBAL", "STACK_GLOBAL") or isinstance(arg, str)}
    assert not any(str(arg).startswith(("transfer.data", "transfer.arms", "transfer.store"))
                   for arg in globals_used)
    for secret in (str(dataset_dir), str(ctx.store.root), str(weak.path)):
        assert secret.encode() not in payload
    # No array in it equals a labelled split's gold labels.
    restored = pickle.loads(payload)
    backends = [restored["trainer"].strong, *restored["trainer"]._backends.values()]
    assert len(backends) == len(restored["trainer"].model_names())  # ready: no cache needed
    arrays = [restored["data"].weak_probs, restored["data"].weak_test_probs,
              *(a for backend in backends for a in backend.features.values())]
    for split in ("train_unlabel", "test"):
        gold = ctx.task.splits[split].labels
        assert not any(a.shape == gold.shape and np.array_equal(a, gold) for a in arrays)
    for backend in backends:
        assert set(backend.features) == {"train_unlabel", "test"}


@pytest.mark.parametrize("reference", ["malicious.inspect_objects:InspectObjects",
                                       "malicious.gc_split:GcSplitThief"])
def test_object_hunting_plugins_find_nothing_in_the_real_arms(ctx, dataset_dir, reference):
    from transfer.arms import run_arm, sealed_student_inputs

    if reference.endswith("GcSplitThief"):
        # The route is real: unjailed, in this process, gc leads to the task's labels.
        from malicious.gc_split import GcSplitThief

        weak = run_arm(ctx, RUNG, "weak", 0)
        data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
        stolen = GcSplitThief().run(data, trainer, None)
        np.testing.assert_array_equal(stolen, ctx.task.splits["test"].labels)
    probs, how = student_probs(ctx, reference, data=dataset_dir)
    assert how == ["jail"]
    assert np.all(probs == 0.5)


def test_importing_the_evaluator_regenerates_labels_in_process_but_not_in_the_jail(tmp_path):
    from malicious.import_evaluator import ImportEvaluator

    from flows.context import arm_context
    from transfer.arms import run_arm, sealed_student_inputs

    ctx = arm_context("micro", None, tmp_path / "store", {"epochs": 1})  # the synthetic task
    weak = run_arm(ctx, RUNG, "weak", 0)
    data, trainer = sealed_student_inputs(ctx, ctx.ladder.rung(RUNG), weak, 0)
    reference = "malicious.import_evaluator:ImportEvaluator"
    stolen = ImportEvaluator().run(data, trainer, None)
    np.testing.assert_array_equal(stolen, ctx.task.splits["test"].labels)
    probs, how = student_probs(ctx, reference)
    assert how == ["jail"] and np.all(probs == 0.5)
