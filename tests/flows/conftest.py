"""Fixtures for the product-layer tests: a realistic results table and the verdict built from it.

The verdict is computed from the simulated table (per-seed accuracy differences, t intervals,
Holm-adjusted p-values), so its numbers are consistent with the table without being typed in.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

RUNGS = [("xs", "tiny-weak-0.5M", "tiny-strong-2M", 2_000_000, 0.72),
         ("s", "tiny-weak-0.5M", "tiny-strong-8M", 8_000_000, 0.80),
         ("m", "tiny-weak-0.5M", "tiny-strong-32M", 32_000_000, 0.88)]
WEAK_ACC = 0.65
DATASETS = ["synthetic", "reviews-small"]
BASELINE = "vanilla"
# True gain over the baseline per method (fractions) and seeds it used (sequential design).
METHODS = {"aux_conf": (0.06, 6), "em_posterior": (0.0, 6), "confident": (-0.07, 3)}
SEEDS = 6
N_EXAMPLES = 1000


def build_results_table(seed: int = 7) -> pd.DataFrame:
    """Per-example results (the architecture's results-table contract) for 3 rungs, 2 datasets."""
    rng = np.random.default_rng(seed)
    rows = []
    for rung, weak_model, strong_model, strong_params, ceiling in RUNGS:
        for dataset in DATASETS:
            # reviews-small's smallest rung: the ceiling does not beat the weak model (PGR
            # undefined).
            ceiling_acc = (WEAK_ACC - 0.02 if (dataset == "reviews-small" and rung == "xs")
                           else ceiling)
            vanilla = WEAK_ACC + 0.4 * (ceiling_acc - WEAK_ACC)
            arms = {"weak": WEAK_ACC, "ceiling": ceiling_acc, BASELINE: vanilla}
            arms.update({m: min(0.99, vanilla + gain) for m, (gain, _) in METHODS.items()})
            gold = rng.integers(0, 2, N_EXAMPLES)
            ids = np.array([f"{dataset}-test-{i:04d}" for i in range(N_EXAMPLES)])
            for seed_id in range(SEEDS):
                for arm, accuracy in arms.items():
                    correct = (rng.random(N_EXAMPLES) < accuracy).astype(int)
                    pred = np.where(correct == 1, gold, 1 - gold)
                    prob = np.clip(np.where(pred == 1, 0.75, 0.25)
                                   + rng.normal(0, 0.05, N_EXAMPLES), 0, 1)
                    rows.append(pd.DataFrame({
                        "rung": rung, "dataset": dataset, "seed": seed_id, "arm": arm,
                        "example_id": ids, "prob": prob, "pred": pred, "correct": correct,
                        "weak_model": weak_model, "strong_model": strong_model,
                        "weak_params": 500_000, "strong_params": strong_params}))
    return pd.concat(rows, ignore_index=True)


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    mean = float(values.mean())
    se = float(values.std(ddof=1) / np.sqrt(len(values)))
    half = float(stats.t.ppf(1 - alpha / 2, len(values) - 1)) * se
    return mean, mean - half, mean + half, se


def _pgr(student: np.ndarray, weak: np.ndarray, ceiling: np.ndarray,
         alpha: float) -> dict[str, Any]:
    gap = ceiling - weak
    if gap.mean() <= 0.005:
        return {"defined": False, "estimate": None, "ci_low": None, "ci_high": None}
    est, low, high, _ = _interval((student - weak) / gap.mean(), alpha)
    return {"defined": True, "estimate": est, "ci_low": low, "ci_high": high}


def build_verdict(table: pd.DataFrame, alpha: float = 0.05, sesoi: float = 0.01) -> dict[str, Any]:
    """A verdict dict of schema_version 1 computed from the table (a stand-in for stats/)."""
    accuracy = table.groupby(["rung", "dataset", "arm", "seed"])["correct"].mean()
    methods: dict[str, Any] = {}
    raw_p: list[tuple[str, int, float]] = []
    for method, (_, n_seeds) in METHODS.items():
        cells = []
        for rung, weak_model, strong_model, strong_params, _ in RUNGS:
            for dataset in DATASETS:
                acc = {arm: accuracy[(rung, dataset, arm)].to_numpy()[:n_seeds]
                       for arm in ("weak", "ceiling", BASELINE, method)}
                est, low, high, se = _interval(acc[method] - acc[BASELINE], alpha)
                p_sup = float(stats.t.sf(est / se, n_seeds - 1)) if se > 0 else 0.0
                p_eq = float(max(stats.t.sf((est + sesoi) / se, n_seeds - 1),
                                 stats.t.cdf((est - sesoi) / se, n_seeds - 1))) if se > 0 else 1.0
                cells.append({
                    "rung": rung, "dataset": dataset, "weak_model": weak_model,
                    "strong_model": strong_model, "strong_params": strong_params,
                    "n_seeds": n_seeds, "n_examples": N_EXAMPLES,
                    "acc": {"weak": float(acc["weak"].mean()),
                            "ceiling": float(acc["ceiling"].mean()),
                            "baseline": float(acc[BASELINE].mean()),
                            "method": float(acc[method].mean())},
                    "gain": {"estimate": est, "ci_low": low, "ci_high": high,
                             "p_superiority": p_sup, "p_equivalence": p_eq, "p_adjusted": None},
                    "pgr": _pgr(acc[method], acc["weak"], acc["ceiling"], alpha),
                    "pgr_baseline": _pgr(acc[BASELINE], acc["weak"], acc["ceiling"], alpha),
                    "mde80": 2.8 * se,
                })
                raw_p.append((method, len(cells) - 1, p_sup))
        methods[method] = {"cells": cells}
    adjusted = multipletests([p for _, _, p in raw_p], alpha=alpha, method="holm")[1]
    for (method, index, _), p_adj in zip(raw_p, adjusted):
        methods[method]["cells"][index]["gain"]["p_adjusted"] = float(p_adj)
    for method, decision in methods.items():
        production = [c for c in decision["cells"] if c["rung"] == RUNGS[-1][0]]
        if all(c["gain"]["ci_low"] > 0 and c["gain"]["p_adjusted"] < alpha for c in production):
            verdict, reasons = "REAL", ["gain above zero at the production rung on every dataset"]
        elif any(c["gain"]["ci_high"] < -sesoi for c in production):
            verdict, reasons = "HARMFUL", ["interval below -SESOI at the production rung"]
        elif all(c["gain"]["p_equivalence"] < alpha for c in production):
            verdict, reasons = "VANISHED", ["gain equivalent to zero within ±SESOI"]
        else:
            verdict, reasons = "INCONCLUSIVE", ["seed budget spent before a decision"]
        decision.update({"verdict": verdict, "promote": verdict == "REAL", "reasons": reasons,
                         "trend": {"slope_per_decade": -0.004, "ci_low": -0.02, "ci_high": 0.012,
                                   "p_decline": 0.31} if method == "aux_conf" else None})
    return {"schema_version": 1, "alpha": alpha, "sesoi": sesoi, "baseline": BASELINE,
            "production_rung": RUNGS[-1][0], "methods": methods}


@pytest.fixture(scope="session")
def _results_table_once() -> pd.DataFrame:
    return build_results_table()


@pytest.fixture(scope="session")
def _verdict_once(_results_table_once: pd.DataFrame) -> dict[str, Any]:
    return build_verdict(_results_table_once)


@pytest.fixture
def results_table(_results_table_once: pd.DataFrame) -> pd.DataFrame:
    """A fresh copy of the simulated per-example results table."""
    return _results_table_once.copy()


@pytest.fixture
def verdict(_verdict_once: dict[str, Any]) -> dict[str, Any]:
    """A fresh deep copy of the verdict dict (tests may edit it)."""
    return copy.deepcopy(_verdict_once)


@pytest.fixture
def provenance() -> dict[str, Any]:
    """Provenance as the validate flow records it."""
    return {"plan": {"name": "demo", "plan_hash": "73eb2b21a298edd9"},
            "git_commit": "3bc65ca0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6",
            "packages": {"torch": "2.13.0", "transformers": "5.0.0", "deepspeed": "0.19.0"},
            "models": {"xs": {"weak": "tiny-weak-0.5M", "strong": "tiny-strong-2M"}},
            "seeds": {"initial": 3, "batch": 3, "max": 6},
            "timings": {"total_s": 412.5, "arms_s": 380.1}}


@pytest.fixture
def saved_run(tmp_path: Path, verdict, results_table, provenance) -> Path:
    """A finished run's output directory: verdict.json, results.parquet, provenance.json."""
    (tmp_path / "verdict.json").write_text(json.dumps(verdict))
    results_table.to_parquet(tmp_path / "results.parquet")
    (tmp_path / "provenance.json").write_text(json.dumps(provenance))
    return tmp_path
