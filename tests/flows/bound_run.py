"""A finished validate run without training: simulated predictions written as real stored runs.

``build_bound_run(directory)`` writes a run store (``transfer.store.RunStore.put``, manifests and
all), builds the results table from the stored runs (``transfer.results.results_table``) and writes
verdict.json through ``flows.outputs.write_verdict``: the validate flow's path from stored runs
to a bound verdict, with simulated accuracies instead of trained models. The micro ladder's two
rungs; the plan's methods are built-ins with known outcomes (seeded): aux_conf REAL and
promoted, em_posterior VANISHED, confident HARMFUL, bootstrap INCONCLUSIVE.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

SEEDS = 4
N_EXAMPLES = 400
BASELINE = "vanilla"
# The salted synthetic task: the public one blocks promotion at the production rung (flows.guards).
DATASET = "synthetic-salted"
# Baseline accuracy per rung, then each method's true gain over it.
RUNGS = {"m0": (0.62, 0.70, 0.66), "m1": (0.66, 0.80, 0.72)}  # weak, ceiling, baseline
# A gain as a number is paired with the baseline's answers (little noise); ("independent", g)
# draws the method's answers afresh (seed-to-seed noise that leaves the verdict open).
GAINS: dict[str, Any] = {"aux_conf": 0.08, "em_posterior": 0.004, "confident": -0.08,
                         "bootstrap": ("independent", 0.01)}
PLAN = {"name": "gate-sim", "methods": [{"name": m, "params": {}} for m in GAINS],
        "baseline": BASELINE, "ladder": "micro", "rungs": "all", "datasets": ["synthetic"],
        "seeds": {"initial": SEEDS, "batch": 1, "max": SEEDS}, "sesoi": 0.01, "alpha": 0.05,
        "correction": "holm"}


@dataclass(frozen=True)
class BoundRun:
    """Paths of the simulated run."""

    out: Path
    plan: Path
    store: Path

    @property
    def verdict(self) -> Path:
        return self.out / "verdict.json"

    @property
    def results(self) -> Path:
        return self.out / "results.parquet"

    def raw(self) -> dict[str, Any]:
        return json.loads(self.verdict.read_text())


def _correct(rng: np.random.Generator, n: int, accuracy: float) -> np.ndarray:
    return (rng.random(n) < accuracy).astype(np.int64)


def _paired(rng: np.random.Generator, baseline: np.ndarray, gain: float) -> np.ndarray:
    """A method's correctness: the baseline's, with wrong answers fixed (gain > 0) or right
    ones broken (gain < 0) at the rate that moves accuracy by ``gain`` (a paired effect)."""
    correct = baseline.copy()
    accuracy = baseline.mean()
    if gain > 0:
        flip = (baseline == 0) & (rng.random(len(baseline)) < gain / max(1 - accuracy, 1e-9))
        correct[flip] = 1
    elif gain < 0:
        flip = (baseline == 1) & (rng.random(len(baseline)) < -gain / max(accuracy, 1e-9))
        correct[flip] = 0
    return correct


def _predictions(rng: np.random.Generator, gold: np.ndarray, correct: np.ndarray
                 ) -> pd.DataFrame:
    pred = np.where(correct == 1, gold, 1 - gold).astype(np.int64)
    prob = np.where(pred == 1, 0.75, 0.25) + rng.uniform(-0.2, 0.2, len(gold))
    return pd.DataFrame({"example_id": [f"test-{i:04d}" for i in range(len(gold))],
                         "prob": prob, "pred": pred, "correct": correct})


def method_infos(plan) -> dict[str, Any]:
    """What ``Campaign.prepare`` records per plan entry (``flows.resolved.ResolvedMethod``)."""
    from flows.resolved import ResolvedMethod
    from methods.resolve import method_function

    infos = {}
    for name in [plan.baseline, *plan.method_names]:
        label, params, fn = method_function(name, {})
        infos[name] = ResolvedMethod(label, params, fn.code, bool(fn.runs_untrusted_code),
                                     bool(fn.jailed_builtin))
    return infos


def build_bound_run(directory: Path, *, key: bytes | None = None, seed: int = 11,
                    gains: dict[str, float] | None = None,
                    controls: list[dict[str, Any]] | None = None) -> BoundRun:
    """Write store, plan, results.parquet and a bound verdict.json under ``directory``.

    ``controls``: the plan's ``controls:`` entries; each is simulated as its kind promises (a
    synthetic spike-in paired with the baseline at its ``gain``, a null control as an independent
    draw at the baseline's accuracy) and stored as ``transfer.arms.run_arm`` stores it (label
    and key from ``transfer.arms.control_run_identity``).
    """
    from flows.plan import load_plan
    from transfer.fingerprint import trainer_fingerprint
    from transfer.ladder import load_ladder
    from transfer.store import RunSpec, RunStore

    directory.mkdir(parents=True, exist_ok=True)
    plan_path = directory / "plan.yaml"
    plan_path.write_text(yaml.safe_dump({**PLAN, "controls": controls} if controls else PLAN,
                                        sort_keys=False))
    plan = load_plan(plan_path)
    infos = method_infos(plan)
    control_ids = _control_identities(plan, infos)
    ladder = load_ladder("micro")
    store = RunStore(directory / "store")
    trainer = trainer_fingerprint()
    rng = np.random.default_rng(seed)
    records = []
    for rung in ladder.rungs:
        weak_acc, ceiling_acc, base_acc = RUNGS[rung.name]
        for s in range(SEEDS):
            gold = rng.integers(0, 2, N_EXAMPLES)
            baseline = _correct(rng, N_EXAMPLES, base_acc)
            arms = {"weak": _correct(rng, N_EXAMPLES, weak_acc),
                    "ceiling": _correct(rng, N_EXAMPLES, ceiling_acc), BASELINE: baseline}
            for method, gain in (gains or GAINS).items():
                if isinstance(gain, tuple):  # seed-to-seed noise: accuracy drawn per seed
                    gain = gain[1] + rng.normal(0, 0.04)
                    arms[method] = _correct(rng, N_EXAMPLES, base_acc + gain)
                else:
                    arms[method] = _paired(rng, baseline, gain)
            for entry in plan.controls:
                arms[entry.label] = (_paired(rng, baseline, entry.gain) if entry.gain else
                                     _correct(rng, N_EXAMPLES, base_acc))
            weak_hash = None
            for label, correct in arms.items():
                kind = label if label in ("weak", "ceiling") else "student"
                model = rung.weak if kind == "weak" else rung.strong
                params, fingerprint = (control_ids[label] if label in control_ids else
                                       (infos[label].params, infos[label].code.fingerprint)
                                       if kind == "student" else ({}, None))
                spec = RunSpec(arm=kind, ladder="micro", rung=rung.name, dataset=DATASET,
                               dataset_fingerprint="simulated", seed=s, model=model.name,
                               model_fingerprint="simulated", method=None if kind != "student"
                               else label, method_params=params, depends_on=weak_hash
                               if kind == "student" else None, trainer_fingerprint=trainer,
                               method_fingerprint=fingerprint)
                predictions = _predictions(rng, gold, correct)
                metrics = {"accuracy": float(predictions["correct"].mean()),
                           "n": len(predictions), "arm": label, "kind": kind}
                if kind == "student":
                    metrics["isolation"] = "builtin"
                record = store.put(spec, predictions, metrics)
                if kind == "weak":
                    weak_hash = spec.run_hash()
                records.append(record)
    out = directory / "out"
    write_bound_verdict(plan_path, records, out, key=key)
    return BoundRun(out=out, plan=plan_path, store=directory / "store")


def _control_identities(plan, infos: dict[str, Any]
                        ) -> dict[str, tuple[dict[str, Any], str]]:
    """Control label -> (method_params, method_fingerprint) of its runs, as run_arm keys them."""
    from transfer.arms import control_run_identity

    base = infos[plan.baseline]
    out = {}
    for entry in plan.controls:
        label, params, fingerprint = control_run_identity(
            entry.spec(), base.label, base.params, base.code.fingerprint)
        out[label] = (params, fingerprint)
    return out


def clean_audits(plan, labels: dict[str, str], records: list[Any]) -> dict[str, list[Any]]:
    """One clean label-leak audit per method and the baseline, at a cell of the records (what
    a campaign whose methods read no labels records)."""
    from stats.verdict_model import LabelAudit

    spec = records[0].spec
    return {label: [LabelAudit(rung=spec.rung, dataset=spec.dataset, seed=spec.seed, clean=True,
                               evidence="clean: predictions under gold permutations 1 and 2 "
                                        "agree exactly", rule="exact", isolation=["builtin"])]
            for label in labels.values()}


def write_bound_verdict(plan_path: Path, records: list[Any], out: Path, *,
                        key: bytes | None = None) -> None:
    """results.parquet and verdict.json of ``records`` under ``out``, as validate writes them
    (every method audited clean)."""
    from flows.derive import replay_looks
    from flows.outputs import write_verdict
    from flows.plan import load_plan
    from transfer.ladder import load_ladder
    from transfer.results import results_table

    plan = load_plan(plan_path)
    infos = method_infos(plan)
    results = results_table(records, load_ladder(plan.ladder))
    labels = {name: info.label for name, info in infos.items()}
    looks, seeds_used = replay_looks(plan, results, labels)
    write_verdict(out, plan, results, records, looks=looks, seeds_used=seeds_used,
                  methods=infos, key=key, git_commit="0" * 40,
                  audits=clean_audits(plan, labels, records))
