"""The three arms of a weak-to-strong experiment for one (rung, dataset, seed).

- weak: the rung's weak model trained on gold labels of ``train_label``; predicts soft labels on
  ``train_unlabel`` and probabilities on ``test``.
- ceiling: the strong model trained on gold labels of ``train_unlabel``.
- student: the strong model trained through a method on the weak soft labels of
  ``train_unlabel``. The method sees a sealed ``StudentData`` and a ``StudentTrainer``; gold labels
  are used only here, after it returns, to score its test predictions.
- a control (``control=``): a student arm that re-runs the baseline's procedure as an independent
  replicate, with a known change made here on the trusted side (``transfer.controls``). Its label
  is ``control:<kind>:<name>``; it is never a method.

Weak and ceiling runs do not depend on the method, so every method reuses them from the store.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfer.controls import (
    ControlSpec,
    check_trusted,
    control_fingerprint,
    corrected_predictions,
    mixed_targets,
    replicate_seed,
)
from transfer.ladder import Ladder, Rung, spec_fingerprint
from transfer.sealed import RungFacts, StudentData
from transfer.store import RunRecord, RunSpec, RunStore
from transfer.student import STUDENT_SPLIT, TEST_SPLIT, BackendStudentTrainer, TextsOnlyTask
from w2s_common.errors import InputError
from w2s_common.names import ARM_NAMES as ARMS

if TYPE_CHECKING:
    from transfer.data import TaskData
    from transfer.engine import EngineConfig

MethodFn = Callable[[StudentData, Any], np.ndarray]


@dataclass
class ArmContext:
    """What every arm of one (ladder, dataset) needs; backends are built once and shared."""

    ladder: Ladder
    task: TaskData
    store: RunStore
    engine_config: EngineConfig
    _backends: dict[str, Any] = field(default_factory=dict, repr=False)
    _trainer_fingerprint: str | None = field(default=None, repr=False)

    @property
    def trainer_fingerprint(self) -> str:
        """The trainer's code and package versions (``transfer.fingerprint``), read once per
        context: every arm's key holds it."""
        if self._trainer_fingerprint is None:
            from transfer.fingerprint import trainer_fingerprint

            self._trainer_fingerprint = trainer_fingerprint()
        return self._trainer_fingerprint

    def backend(self, spec):
        if spec.name not in self._backends:
            from transfer.backends import make_backend

            self._backends[spec.name] = make_backend(spec, self.task)
        return self._backends[spec.name]

    def hparams(self) -> dict[str, Any]:
        return self.engine_config.model_dump(mode="json", exclude={"seed"})


def arm_spec(ctx: ArmContext, rung: Rung, arm: str, seed: int, method: str | None = None,
             method_params: dict[str, Any] | None = None, unjailed: bool = False,
             method_fingerprint: str | None = None, jailed: bool = False) -> RunSpec:
    """The store key of an arm; a student's key includes the key of the weak run it learns from
    and the fingerprint of the method's code, every arm's the trainer's fingerprint.

    Raises:
        InputError: an unknown arm, or a student arm without a method or its fingerprint.
    """
    if arm not in ARMS:
        raise InputError(f"unknown arm {arm!r}; expected one of {', '.join(ARMS)}", field="arm")
    model = rung.weak if arm == "weak" else rung.strong
    depends_on = None
    if arm == "student":
        if not method:
            raise InputError("a student arm needs a method (the baseline is 'vanilla')",
                             field="method")
        if not method_fingerprint:
            raise InputError(f"a student arm of {method} needs the fingerprint of its code",
                             field="method")
        depends_on = arm_spec(ctx, rung, "weak", seed).run_hash()
    return RunSpec(arm=arm, ladder=ctx.ladder.name, rung=rung.name, dataset=ctx.task.name,
                   dataset_fingerprint=ctx.task.fingerprint, seed=seed, model=model.name,
                   model_fingerprint=spec_fingerprint(model), hparams=ctx.hparams(),
                   method=method if arm == "student" else None,
                   method_params=(method_params or {}) if arm == "student" else {},
                   depends_on=depends_on, unjailed=unjailed and arm == "student",
                   jailed=True if jailed and arm == "student" else None,
                   trainer_fingerprint=ctx.trainer_fingerprint,
                   method_fingerprint=method_fingerprint if arm == "student" else None)


def fingerprint_of(method_fn: MethodFn | None) -> str | None:
    """The fingerprint of a method function's code: its ``fingerprint`` attribute (set by
    ``methods.resolve.method_function`` from ``methods.fingerprint``), else the fingerprint of
    the plain callable's source file (``transfer.fingerprint.callable_fingerprint``)."""
    if method_fn is None:
        return None
    given = getattr(method_fn, "fingerprint", None)
    if given:
        return str(given)
    from transfer.fingerprint import callable_fingerprint

    return callable_fingerprint(method_fn)


def _gold_targets(labels: np.ndarray) -> np.ndarray:
    """Gold labels as targets P(label 1): 0.0 or 1.0."""
    return np.asarray(labels, dtype=np.float64)


def _scored(ids, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    probs = np.asarray(probs, dtype=np.float64)
    pred = (probs > 0.5).astype(np.int64)
    return pd.DataFrame({"example_id": list(ids), "prob": probs, "pred": pred,
                         "correct": (pred == np.asarray(labels)).astype(np.int64)})


def _metrics(spec: RunSpec, rung: Rung, predictions: pd.DataFrame, seconds: float,
             backend) -> dict[str, Any]:
    return {"accuracy": float(predictions["correct"].mean()), "n": int(len(predictions)),
            "arm": spec.label, "kind": spec.arm, "rung": spec.rung, "seed": spec.seed,
            "dataset": spec.dataset, "ladder": spec.ladder, "model": spec.model,
            "model_params": backend.params, "weak_model": rung.weak.name,
            "strong_model": rung.strong.name, "method": spec.method,
            "method_params": spec.method_params, "seconds": round(seconds, 3)}


def control_run_identity(control: ControlSpec, baseline: str,
                         baseline_params: dict[str, Any] | None, baseline_fingerprint: str
                         ) -> tuple[str, dict[str, Any], str]:
    """``(method, method_params, method_fingerprint)`` of a control's student run: its label,
    the control's spec with the baseline it replicates, and the baseline's code plus that spec
    (``transfer.controls.control_fingerprint``)."""
    params = {"control": control.as_dict(), "baseline": baseline,
              "baseline_params": dict(baseline_params or {})}
    return (control.label, params,
            control_fingerprint(baseline_fingerprint, control, baseline_params))


def run_arm(ctx: ArmContext, rung_name: str, arm: str, seed: int, *,
            method: str | None = None, method_params: dict[str, Any] | None = None,
            method_fn: MethodFn | None = None,
            method_fingerprint: str | None = None,
            control: ControlSpec | None = None,
            weak: RunRecord | None = None) -> RunRecord:
    """Run one arm, or return it from the store if it is already complete.

    A student learns from ``weak`` when given (the record of its seed's weak run the caller
    already holds: every read is checked against that record's manifest, so a copy swapped in
    the store since is refused, not learned from); else from the weak run read here.

    A student arm first makes sure its weak teacher exists (running it if needed). The run is
    computed under the store's claim on it, so processes sharing the store compute it once. Its
    key holds ``method_fingerprint`` (default: :func:`fingerprint_of` ``method_fn``), so a run
    made by other code is never reused.

    With ``control``, the student arm is that control of the baseline named by ``method``
    (whose ``method_params``, ``method_fn`` and fingerprint are the baseline's): stored under the
    control's label, keyed by the baseline's code plus the control's spec
    (:func:`control_run_identity`).
    """
    rung = ctx.ladder.rung(rung_name)
    if control is not None and arm != "student":
        raise InputError("a control is a student arm", field="arm")
    if arm == "student" and not method_fingerprint:
        if method_fn is None:
            raise InputError("a student arm needs the method's function", field="method")
        method_fingerprint = fingerprint_of(method_fn)
    if control is not None:
        if not method:
            raise InputError("a control needs the baseline it replicates", field="method")
        # Before the store: a control is never built from code the pipeline does not trust.
        check_trusted(method_fn, control, str(method))
        method, method_params, method_fingerprint = control_run_identity(
            control, method, method_params, method_fingerprint)
    spec = arm_spec(ctx, rung, arm, seed, method, method_params,
                    unjailed=bool(getattr(method_fn, "unjailed", False)),
                    method_fingerprint=method_fingerprint,
                    jailed=bool(getattr(method_fn, "jailed_builtin", False)))
    done = ctx.store.get(spec)
    if done is not None:
        return done
    if arm == "student" and method_fn is None:
        raise InputError("a student arm needs the method's function", field="method")
    # The teacher first, so that no claim is held while waiting for another.
    if arm == "student" and weak is None:
        weak = run_arm(ctx, rung_name, "weak", seed)
    elif arm == "student" and weak.spec != arm_spec(ctx, rung, "weak", seed):
        raise InputError(f"the weak run handed to the student is {weak.spec.run_hash()}, not "
                         f"seed {seed}'s on rung {rung_name}", field="weak")
    elif arm != "student":
        weak = None
    # Another process sharing the store may be computing this run: wait for it rather than
    # compute it twice (it may also finish between the check above and the claim).
    with ctx.store.claim(spec) as done:
        if done is not None:
            return done
        return _compute(ctx, rung, spec, seed, weak, method_fn, control)


def _compute(ctx: ArmContext, rung: Rung, spec: RunSpec, seed: int, weak: RunRecord | None,
             method_fn: MethodFn | None, control: ControlSpec | None = None) -> RunRecord:
    start = time.perf_counter()
    splits = ctx.task.splits
    isolation, facts = None, None
    if spec.arm == "weak":
        backend = ctx.backend(rung.weak)
        fitted = backend.fit("train_label", _gold_targets(splits["train_label"].labels), seed=seed,
                             engine_config=ctx.engine_config)
        soft = pd.DataFrame({"example_id": list(splits[STUDENT_SPLIT].ids),
                             "prob": fitted.predict(STUDENT_SPLIT)})
        test_probs = fitted.predict(TEST_SPLIT)
    elif spec.arm == "ceiling":
        backend = ctx.backend(rung.strong)
        fitted = backend.fit(STUDENT_SPLIT, _gold_targets(splits[STUDENT_SPLIT].labels), seed=seed,
                             engine_config=ctx.engine_config)
        soft, test_probs = None, fitted.predict(TEST_SPLIT)
    else:
        backend = ctx.backend(rung.strong)
        soft = None
        if control is None:
            test_probs, isolation = _run_student(ctx, rung, weak, seed, method_fn)
        else:
            test_probs, isolation, facts = _run_control(ctx, rung, weak, seed, method_fn,
                                                        control)
    predictions = _scored(splits[TEST_SPLIT].ids, splits[TEST_SPLIT].labels, test_probs)
    metrics = _metrics(spec, rung, predictions, time.perf_counter() - start, backend)
    if isolation is not None:
        metrics["isolation"] = isolation
    if facts is not None:
        metrics["control"] = facts
    config = {"engine": ctx.engine_config.model_dump(mode="json"),
              "rung": rung.model_dump(mode="json"), "dataset_source": ctx.task.source}
    return ctx.store.put(spec, predictions, metrics, soft_labels=soft, config=config)


def trainer_models(ladder: Ladder, rung: Rung) -> list[str]:
    """The models a student trainer offers on ``rung``: those strictly between its weak and
    strong model (smallest first), then the strong model."""
    return ladder.between(rung) + [rung.strong.name]


def rung_facts(ladder: Ladder, rung: Rung) -> RungFacts:
    """What ``rung`` offers a method, from the ladder alone (nothing is loaded or trained)."""
    from transfer.ladder import has_label_tokens

    return RungFacts(ladder=ladder.name, rung=rung.name, strong_model=rung.strong.name,
                     model_names=tuple(trainer_models(ladder, rung)),
                     label_tokens=has_label_tokens(rung.strong))


def sealed_student_inputs(ctx: ArmContext, rung: Rung, weak: RunRecord, seed: int
                          ) -> tuple[StudentData, BackendStudentTrainer]:
    """The label-free inputs a method receives: StudentData and a trainer over the strong model."""
    splits = ctx.task.splits
    soft = weak.soft_labels().set_index("example_id")["prob"]
    weak_test = weak.predictions().set_index("example_id")["prob"]
    data = StudentData(
        ids=splits[STUDENT_SPLIT].ids, texts=splits[STUDENT_SPLIT].texts,
        weak_probs=soft.loc[list(splits[STUDENT_SPLIT].ids)].to_numpy(),
        test_ids=splits[TEST_SPLIT].ids, test_texts=splits[TEST_SPLIT].texts,
        weak_test_probs=weak_test.loc[list(splits[TEST_SPLIT].ids)].to_numpy(),
        label_names=tuple(ctx.task.label_names), seed=seed)
    models = ctx.ladder.models()
    offered = trainer_models(ctx.ladder, rung)
    trainer = BackendStudentTrainer(
        strong=ctx.backend(rung.strong).without("train_label"),
        model_specs={name: models[name] for name in offered},
        task_view=TextsOnlyTask.of(ctx.task), engine_config=ctx.engine_config, seed=seed)
    return data, trainer


def _run_control(ctx, rung, weak, seed, method_fn, control: ControlSpec
                 ) -> tuple[np.ndarray, str, dict[str, Any]]:
    """A control's test probabilities, the isolation its baseline code ran with, and what was
    changed (``transfer.controls``): an independent replicate of the baseline (its own training
    seed), on weak labels partly replaced by gold (``spike_in``), with a fixed number of wrong
    test predictions corrected afterwards (``synthetic_spike_in``)."""
    from dataclasses import replace

    splits = ctx.task.splits
    data, trainer = sealed_student_inputs(ctx, rung, weak, seed)
    train_seed = replicate_seed(seed, control)
    data, trainer.seed = replace(data, seed=train_seed), train_seed
    facts: dict[str, Any] = {**control.as_dict(), "label": control.label,
                             "replicate_seed": train_seed}
    if control.kind == "spike_in":
        gold = np.asarray(splits[STUDENT_SPLIT].labels)
        targets, replaced = mixed_targets(data.weak_probs, gold, seed, control)
        facts["gold_labels_used"] = int(len(replaced))
        # How many of them the weak labels had wrong: what the gold labels actually fix.
        facts["weak_labels_corrected"] = int(np.sum(
            (data.weak_probs[replaced] > 0.5).astype(np.int64) != gold[replaced]))
        data = replace(data, weak_probs=targets)
    probs, isolation = _validated(method_fn(data, trainer), len(data.test_ids))
    if control.kind == "synthetic_spike_in":
        probs, corrected = corrected_predictions(probs, splits[TEST_SPLIT].labels, seed, control)
        facts["corrected"] = corrected
        facts["added_gain"] = corrected / len(probs)
    return probs, isolation, facts


def _run_student(ctx, rung, weak, seed, method_fn) -> tuple[np.ndarray, str]:
    """The method's test probabilities and the isolation its code ran with (``builtin`` for a
    plain function; a ``methods.runner.MethodRun`` says which)."""
    data, trainer = sealed_student_inputs(ctx, rung, weak, seed)
    return _validated(method_fn(data, trainer), len(data.test_ids))


def _validated(result, n_test: int) -> tuple[np.ndarray, str]:
    isolation = str(getattr(result, "isolation", "builtin"))
    probs = np.asarray(getattr(result, "probs", result), dtype=np.float64)
    if probs.shape != (n_test,):
        raise InputError(f"the method returned {probs.shape} predictions; expected "
                         f"({n_test},)", field="method")
    if not np.all(np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
        raise InputError("the method returned values outside [0, 1] or NaN", field="method")
    return probs, isolation
