"""run_method: built-ins in-process (or in a jail of their own), plugins in the jail worker,
outputs validated."""
from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeTrainer, accuracy

from methods import jail
from methods.policy import JailSettings
from methods.registry import parse_params, resolve_method
from methods.runner import run_method
from transfer.sealed import MethodUnsupported
from w2s_common.errors import InputError

needs_jail = pytest.mark.skipif(not jail.jail_available(), reason="no jail builder works here")
JAILED = JailSettings(builtins="jail")


def run(reference, task, trainer, *pairs, **kwargs):
    method = resolve_method(reference)
    return run_method(method, task.data, trainer, parse_params(method, list(pairs)), **kwargs)


def test_builtins_run_in_process_by_default(task, trainer):
    result = run("vanilla", task, trainer)
    assert result.isolation == "builtin"
    assert len(trainer.calls) == 1  # the caller's trainer object did the fitting


@needs_jail
def test_builtins_run_in_a_jail_of_their_own_where_the_settings_say_so(task, trainer,
                                                                       monkeypatch):
    method = resolve_method("confident")
    ran_here = []
    # Patched in this process only: the jail imports its own copy of the built-in.
    monkeypatch.setattr(type(method), "run", lambda *args: ran_here.append(args) or 1 / 0)
    result = run("confident", task, trainer, settings=JAILED)
    assert result.isolation == "jail"
    assert ran_here == [] and trainer.calls == []  # the jail trained its own copy
    assert accuracy(result.probs, task.test_gold) > 0.6
    # mode: off runs them here, whatever `builtins` says
    with pytest.raises(ZeroDivisionError):
        run("confident", task, trainer, settings=JailSettings(mode="off", builtins="jail"))


def test_the_reference_baseline_is_the_pipeline_s_own_code_and_runs_here(task, trainer):
    """``vanilla`` lives outside ``methods/builtin/`` (methods/reference.py) and runs in the
    trusted process under any ``builtins`` setting: who may change the built-ins cannot change
    the reference they are measured against."""
    assert type(resolve_method("vanilla")).__module__ == "methods.reference"
    assert run("vanilla", task, trainer, settings=JAILED).isolation == "builtin"
    assert len(trainer.calls) == 1


@needs_jail
def test_a_builtin_cannot_declare_itself_out_of_its_jail(task, trainer, monkeypatch):
    """Only the runner's allow-list (``external``) runs in-process under ``builtins: jail``;
    an attribute the built-in sets does not."""
    method = resolve_method("confident")
    monkeypatch.setattr(type(method), "runs_untrusted_code", True, raising=False)
    monkeypatch.setattr(type(method), "run", lambda *args: 1 / 0)
    assert run("confident", task, trainer, settings=JAILED).isolation == "jail"


@needs_jail
def test_a_jailed_builtin_s_failure_names_it(task, trainer):
    with pytest.raises(MethodUnsupported, match="^built-in method zero_shot_prior: "):
        run("zero_shot_prior", task, FakeTrainer.for_task(task, label_tokens=False),
            settings=JAILED)


@needs_jail
def test_plugins_run_in_the_jail_with_their_params(task, trainer):
    result = run("plugins_for_tests:ScaledWeak", task, trainer, "scale=0.5")
    assert result.isolation == "jail"
    np.testing.assert_allclose(result.probs, 0.5 * task.data.weak_test_probs)


@needs_jail
def test_a_plugin_trains_through_a_pickled_trainer(task, trainer):
    result = run("plugins_for_tests:TrainsStudent", task, trainer)
    assert accuracy(result.probs, task.test_gold) > 0.6
    assert trainer.calls == []  # the worker trained its own copy


@needs_jail
def test_plugin_failures_come_back_as_clear_errors(task, trainer):
    with pytest.raises(MethodUnsupported, match="needs label tokens"):
        run("plugins_for_tests:Unsupported", task, trainer)
    with pytest.raises(InputError, match="plugin method crashes failed: ZeroDivisionError: "
                                         "plugin bug"):
        run("plugins_for_tests:Crashes", task, trainer)
    with pytest.raises(InputError, match=r"method wrong_length.*expected 200 test probabilities"):
        run("plugins_for_tests:WrongLength", task, trainer)


@needs_jail
def test_unpicklable_trainers_cannot_go_to_the_worker(task):
    class LocalTrainer:  # defined in a function: pickle cannot name it
        pass

    with pytest.raises((AttributeError, TypeError, Exception), match="[Pp]ickle|local object"):
        run("plugins_for_tests:ScaledWeak", task, LocalTrainer())


def test_builtin_outputs_are_validated(task, trainer, monkeypatch):
    method = resolve_method("vanilla")
    monkeypatch.setattr(type(method), "run", lambda self, d, t, p: np.full(len(d.test_ids), 2.0))
    with pytest.raises(InputError, match="method vanilla: returned probabilities outside"):
        run_method(method, task.data, trainer, parse_params(method, []))


EXTERNAL_HALF = ("command=sh -c 'sed -E \"s/, \\\"text.*/, \\\"prob\\\": 0.5}/\" "
                 "{inputs}/test.jsonl > {outputs}/predictions.jsonl'")


@needs_jail
def test_external_reports_the_isolation_its_command_got(task, trainer):
    result = run("external", task, trainer, EXTERNAL_HALF)
    assert result.isolation == "jail"
    np.testing.assert_array_equal(result.probs, 0.5)


def test_running_unjailed_is_explicit_and_recorded(task, trainer):
    off = JailSettings(mode="off")
    result = run("external", task, trainer, EXTERNAL_HALF, settings=off)
    assert result.isolation == "unjailed"
    np.testing.assert_array_equal(result.probs, 0.5)


def test_a_required_jail_that_cannot_be_built_is_one_line(task, trainer, monkeypatch):
    monkeypatch.setenv(jail.BUILDER_ENV, "docker")
    with pytest.raises(InputError, match="expected 'bwrap' or 'unshare'.*jail: {mode: off}"):
        run("external", task, trainer, EXTERNAL_HALF)
    with pytest.raises(InputError, match="expected 'bwrap' or 'unshare'"):
        resolve_method("plugins_for_tests:ScaledWeak")


@needs_jail
def test_a_jailed_builtin_s_runs_are_keyed_apart_from_in_process_ones():
    from methods.resolve import method_function
    from transfer.store import RunSpec

    _, _, here = method_function("confident", {})
    _, _, jailed = method_function("confident", {}, jail={"builtins": "jail"})
    assert (here.jailed_builtin, jailed.jailed_builtin) == (False, True)
    assert here.fingerprint == jailed.fingerprint  # the same code: the spec tells them apart
    spec = dict(arm="student", ladder="micro", rung="m0", dataset="d", dataset_fingerprint="f",
                seed=0, model="s", model_fingerprint="m", method="vanilla")
    assert "\"jailed\"" not in RunSpec(**spec).canonical_json()  # earlier keys are unchanged
    assert RunSpec(**spec).run_hash() != RunSpec(**spec, jailed=True).run_hash()
