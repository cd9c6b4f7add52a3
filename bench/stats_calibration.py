"""Calibration of the verdicts on a generator that is not the estimator's model.

Every scenario of ``stats.calibration.scenarios()`` (floor/ceiling items, weak-label errors
shared within a seed, heavy-tailed training noise, per-item method effects, partial seed
overlap, one or three datasets, 3 or 4 rungs) is simulated ``--experiments`` times; each
experiment's full results table goes through ``analyze_table``.  Printed per scenario: the rate
of each verdict with its Monte Carlo standard error, the coverage of the production-rung gain
intervals (all cells, and the cells whose seed variance component was truncated), the false
"shrinks with scale" rate, how often PGR was reported, the paired seed-bootstrap coverage where
it is reported, how often a decided production cell contradicts the gain it answers for
(better at a gain <= 0, worse at >= 0, equivalent at |gain| >= SESOI), and the goals of issue 10
that are missed.  Then the coverage of the old
union-of-seeds bootstrap under partial overlap, which the engine no longer reports.

``--estimand test_set`` runs the same scenarios with the engine answering for the test set
(``analyze_table(estimand="test_set")``): every interval is judged against the gain on that
experiment's test items.

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/stats_calibration.py [--experiments 400]
       [--jobs 2] [--only NAME ...] [--seed 0] [--estimand population|test_set]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stats.calibration import goals, run_scenario, scenarios, union_bootstrap_coverage
from stats.cells import ESTIMANDS


def _scenarios(estimand: str) -> list:
    return [dataclasses.replace(s, estimand=estimand) for s in scenarios()]


def _run(args: tuple[str, int, int, str]) -> tuple[str, dict, float]:
    name, n, seed, estimand = args
    scenario = next(s for s in _scenarios(estimand) if s.name == name)
    start = time.perf_counter()
    summary = run_scenario(scenario, n, seed=seed).summary()
    return name, summary, time.perf_counter() - start


def _pct(value: tuple[float, float]) -> str:
    rate, err = value
    if rate != rate:  # NaN
        return "-"
    return f"{100 * rate:.1f} ± {100 * err:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run in parallel")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimand", choices=ESTIMANDS, default="population")
    args = parser.parse_args()
    chosen = [s for s in _scenarios(args.estimand) if not args.only or s.name in args.only]
    start = time.perf_counter()
    work = [(s.name, args.experiments, args.seed + k, args.estimand)
            for k, s in enumerate(chosen)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run, work))
    else:
        results = [_run(w) for w in work]
    by_name = {name: (summary, seconds) for name, summary, seconds in results}
    print(f"# Calibration on stats/simulate_w2s.py: {args.experiments} experiments per scenario, "
          f"estimand {args.estimand}, rates in % ± one Monte Carlo standard error\n")
    print("| scenario | truth | REAL | VANISHED | HARMFUL | INCONCLUSIVE | coverage | truncated "
          "cells | coverage (truncated) | false shrinks | PGR reported | seed-boot coverage | "
          "wrong decided cell | goals missed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scenario in chosen:
        s, _ = by_name[scenario.name]
        missed = goals(scenario, s)
        truth = {"null": "gain 0", "sesoi": "gain = SESOI", "gap_zero": "gap 0",
                 "power": f"gain {100 * scenario.gains[-1]:.0f} pts"}[scenario.kind]
        if not scenario.verdicts_judged and scenario.kind in ("null", "sesoi"):
            truth += " (population; verdict rates shown, not judged)"
        print(f"| {scenario.name} | {truth} | {_pct(s['REAL'])} | {_pct(s['VANISHED'])} | "
              f"{_pct(s['HARMFUL'])} | {_pct(s['INCONCLUSIVE'])} | {_pct(s['coverage'])} | "
              f"{s['truncated_cells']} / {s['cells']} | {_pct(s['truncated_coverage'])} | "
              f"{_pct(s['shrinks'])} | {_pct(s['pgr_defined'])} | {_pct(s['boot_coverage'])} | "
              f"{_pct(s['wrong_outcome'])} | {'; '.join(missed) or 'none'} |")
    print()
    for scenario in chosen:
        print(f"- {scenario.name}: {scenario.description} ({by_name[scenario.name][1]:.0f} s)")
    partial = next((s for s in chosen if s.name == "null-partial-overlap"), None)
    if partial is not None and args.estimand == "population":
        cov, err = union_bootstrap_coverage(partial, args.experiments, seed=args.seed + 99)
        print(f"\nOld union-of-seeds percentile bootstrap under partial overlap (not reported "
              f"by the engine any more): coverage {100 * cov:.1f} ± {100 * err:.1f}%")
    print(f"\nTotal {time.perf_counter() - start:.0f} s with {args.jobs} job(s).")


if __name__ == "__main__":
    main()
