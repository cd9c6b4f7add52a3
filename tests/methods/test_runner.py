"""run_method: built-ins in-process, plugins through the sandbox worker, outputs validated."""
from __future__ import annotations

import numpy as np
import pytest

from fakes import accuracy
from methods import sandbox
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
from methods.sandbox import SandboxError
from transfer.errors import InputError
from transfer.sealed import MethodUnsupported


def run(reference, task, trainer, *pairs, **kwargs):
    method = resolve_method(reference)
    return run_method(method, task.data, trainer, parse_params(method, list(pairs)), **kwargs)


def test_builtins_run_in_process(task, trainer):
    result = run("vanilla", task, trainer)
    assert result.isolation == "in-process"
    assert len(trainer.calls) == 1  # the caller's trainer object did the fitting


def test_plugins_run_in_the_sandbox_worker_with_their_params(task, trainer):
    result = run("plugins_for_tests:ScaledWeak", task, trainer, "scale=0.5")
    assert result.isolation in ("namespace", "subprocess")
    np.testing.assert_allclose(result.probs, 0.5 * task.data.weak_test_probs)


def test_a_plugin_trains_through_a_pickled_trainer(task, trainer):
    result = run("plugins_for_tests:TrainsStudent", task, trainer)
    assert accuracy(result.probs, task.test_gold) > 0.6
    assert trainer.calls == []  # the worker trained its own copy


def test_plugin_failures_come_back_as_clear_errors(task, trainer):
    with pytest.raises(MethodUnsupported, match="needs label tokens"):
        run("plugins_for_tests:Unsupported", task, trainer)
    with pytest.raises(InputError, match="plugin method crashes failed: ZeroDivisionError: "
                                         "plugin bug"):
        run("plugins_for_tests:Crashes", task, trainer)
    with pytest.raises(InputError, match=r"method wrong_length.*expected 200 test probabilities"):
        run("plugins_for_tests:WrongLength", task, trainer)


def test_unpicklable_trainers_cannot_go_to_the_worker(task):
    class LocalTrainer:  # defined in a function: pickle cannot name it
        pass

    with pytest.raises(SandboxError, match="not picklable"):
        run("plugins_for_tests:ScaledWeak", task, LocalTrainer())


def test_builtin_outputs_are_validated(task, trainer, monkeypatch):
    method = resolve_method("vanilla")
    monkeypatch.setattr(type(method), "run", lambda self, d, t, p: np.full(len(d.test_ids), 2.0))
    with pytest.raises(InputError, match="method vanilla: returned probabilities outside"):
        run_method(method, task.data, trainer, parse_params(method, []))


def test_external_reports_the_isolation_its_command_got(task, trainer, monkeypatch):
    monkeypatch.setattr(sandbox, "namespaces_available", lambda: False)
    result = run("external", task, trainer,
                 "command=sh -c 'sed -E \"s/, \\\"text.*/, \\\"prob\\\": 0.5}/\" "
                 "{inputs}/test.jsonl > {outputs}/predictions.jsonl'")
    assert result.isolation == "subprocess"
    np.testing.assert_array_equal(result.probs, 0.5)
