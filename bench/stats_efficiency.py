"""Statistical efficiency and speed of the statistics engine, on simulated data.

1. Minimum detectable effect (80% power, one-sided at the decision level alpha/2 = 0.025 of a
   single comparison) of the engine's paired analysis over that of an unpaired seed-level Welch
   t test on the same experiments (goal <= 0.6), on the additive generator (stats/simulate.py)
   and on the independent W2S generator (stats/simulate_w2s.py, calibrated to the sandbox:
   per-seed correlation of the two students 0.72, per-item agreement 0.84). Both of the
   engine's estimands: ``population`` (two-way, items random) and ``test_set`` (paired on the
   per-seed accuracies, conditional on the test items, as the Welch t test is).
2. Wall time of ``analyze_table`` on 5 methods x 3 rungs x 3 datasets x 10 seeds x 2000 examples
   with 10,000 two-way bootstrap resamples (goal < 5 s).
3. Operating characteristics of the sequential design against the fixed design.

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/stats_efficiency.py [--quick] [--results PARQUET]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stats.analyze import analyze_table
from stats.estimates import seed_level_moments, two_way_moments
from stats.power import VarianceComponents, mde, seeds_needed
from stats.sequential import SequentialDesign, simulate_design
from stats.simulate import scores_to_table, simulate_scores
from stats.simulate_w2s import World, draw_items, draw_scores
from stats.table import check_table
from stats.tests_and_verdicts import decision_level

LEVEL = decision_level(0.05, 1)  # one comparison: one-sided alpha / 2

# Calibrated to the sandbox (chat/math, 5 seeds, ~1300 examples): per-arm seed-to-seed sd of
# accuracy ~1.9 points, sd of the per-seed paired difference ~1.6 points (correlation 0.7-0.9).
NOISE = {"seed_sd": 0.0125, "arm_seed_sd": 0.005, "example_gain_sd": 0.1, "shared": 0.5}
# Same, with the prediction agreement typical of two fine-tunes of one base model on mostly the
# same weak labels (80% of (seed, example) outcomes share their randomness across arms).
HIGH_AGREEMENT = {**NOISE, "shared": 0.8}
# A harsher setting: more arm-specific training noise, less shared seed noise to pair away.
NOISY_ARMS = {"seed_sd": 0.02, "arm_seed_sd": 0.015, "example_gain_sd": 0.1, "shared": 0.5}


def _welch_mde(acc: np.ndarray) -> float:
    """MDE of the unpaired seed-level Welch t test on (2, S) per-seed accuracies."""
    n_seeds = acc.shape[1]
    var_b, var_m = acc[0].var(ddof=1) / n_seeds, acc[1].var(ddof=1) / n_seeds
    se = np.sqrt(var_b + var_m)
    df = se ** 4 / ((var_b ** 2 + var_m ** 2) / (n_seeds - 1))
    return mde(se, df, LEVEL)


def _test_set_mde(acc: np.ndarray, n_examples: int) -> float:
    """MDE of the engine's test-set analysis (``estimand="test_set"``) of (2, S) accuracies."""
    seeds = range(acc.shape[1])
    moments = seed_level_moments({"vanilla": pd.Series(acc[0], index=seeds),
                                  "m": pd.Series(acc[1], index=seeds)},
                                 {"vanilla": n_examples, "m": n_examples})
    c = moments.contrast({"m": 1.0, "vanilla": -1.0})
    return mde(c.se, c.df, LEVEL)


def _ratios(cubes, n_seeds: int) -> dict:
    """MDE ratios over an iterable of (2, S, I) baseline/method score arrays: the two-way
    (population) analysis and the test-set analysis, each over the unpaired Welch t test."""
    ratios, test_set, paired, unpaired = [], [], [], []
    for y in cubes:
        c = two_way_moments(y, ("vanilla", "m")).contrast({"m": 1.0, "vanilla": -1.0})
        m_two_way = mde(c.se, c.df, LEVEL)
        acc = y.mean(axis=2)  # (arm, seed) accuracies
        m_unpaired = _welch_mde(acc)
        ratios.append(m_two_way / m_unpaired)
        test_set.append(_test_set_mde(acc, y.shape[2]) / m_unpaired)
        paired.append(m_two_way)
        unpaired.append(m_unpaired)
    return {"ratio_median": float(np.median(ratios)), "ratio_mean": float(np.mean(ratios)),
            "test_set_ratio_median": float(np.median(test_set)),
            "mde_paired_median": float(np.median(paired)),
            "mde_unpaired_median": float(np.median(unpaired))}


def mde_ratio(n_experiments: int, n_seeds: int, n_examples: int, rng, noise: dict) -> dict:
    """Median over experiments of MDE(two-way paired) / MDE(unpaired seed-level Welch t), on the
    additive generator."""
    shifts = {"vanilla": 0.0, "m": 0.0}
    cubes = simulate_scores(rng, n_experiments, n_seeds, n_examples, shifts, **noise)
    return _ratios(cubes, n_seeds)


def mde_ratio_w2s(n_experiments: int, n_seeds: int, world: World, rng) -> dict:
    """The same ratio on the independent W2S generator (baseline and method arms)."""
    draw = draw_scores(world, rng, n_seeds, draw_items(world, rng, n_experiments))
    agreement = float((draw.scores[:, 2] == draw.scores[:, 3]).mean())
    out = _ratios(draw.scores[:, 2:4].astype(float), n_seeds)
    out["agreement"] = agreement
    return out


def real_mde_ratios(path: str, baseline: str = "vanilla") -> list[dict]:
    """MDE ratio (paired two-way / unpaired seed-level Welch) on a real per-example results table,
    per (rung, dataset, method), using the seeds the method and the baseline share."""
    table = pd.read_parquet(path)
    out = []
    for (rung, dataset), rows in table.groupby(["rung", "dataset"]):
        for method in sorted(set(rows["arm"]) - {"weak", "ceiling", baseline}):
            seeds = sorted(set(rows.loc[rows["arm"] == method, "seed"]))
            pair = rows[rows["arm"].isin([baseline, method]) & rows["seed"].isin(seeds)]
            cube = (pair.pivot_table(index=["arm", "seed"], columns="example_id",
                                     values="correct").loc[[baseline, method]])
            y = cube.to_numpy(dtype=float).reshape(2, len(seeds), -1)
            c = two_way_moments(y, (baseline, method)).contrast({method: 1.0, baseline: -1.0})
            acc = y.mean(axis=2)
            welch = _welch_mde(acc)
            agree = float((y[0] == y[1]).mean())
            out.append({"rung": rung, "dataset": dataset, "method": method, "seeds": len(seeds),
                        "agreement": agree, "ratio": mde(c.se, c.df, LEVEL) / welch,
                        "test_set_ratio": _test_set_mde(acc, y.shape[2]) / welch})
    return out


def timing_table(rng, n_methods=5, n_rungs=3, n_datasets=3, n_seeds=10, n_examples=2000):
    """The benchmark results table (per-example form)."""
    parts = []
    for r in range(n_rungs):
        for d in range(n_datasets):
            shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0}
            shifts.update({f"method{k}": 0.01 * k for k in range(n_methods)})
            y = simulate_scores(rng, 1, n_seeds, n_examples, shifts, **NOISE)[0]
            parts.append(scores_to_table(y, list(shifts), rung=f"r{r}", dataset=f"d{d}",
                                         strong_params=10 ** (8 + r)))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer experiments and resamples")
    parser.add_argument("--results", help="also measure the MDE ratio on a real per-example "
                        "results table (e.g. reports/demo/results.parquet)")
    args = parser.parse_args()
    if args.results:
        print(f"== MDE ratio on real results: {args.results} ==")
        for r in real_mde_ratios(args.results):
            print(f"   {r['rung']}/{r['dataset']} {r['method']}: {r['seeds']} seeds, per-example "
                  f"agreement with the baseline {r['agreement']:.3f}, MDE ratio population "
                  f"{r['ratio']:.3f}, test set {r['test_set_ratio']:.3f}")
    rng = np.random.default_rng(2024)
    n_exp = 50 if args.quick else 300
    print("== MDE of the paired analysis over an unpaired seed-level t test "
          "(population: two-way; test set: paired per-seed accuracies) ==")
    for name, noise in (("sandbox-calibrated", NOISE), ("high agreement", HIGH_AGREEMENT),
                        ("noisy arms", NOISY_ARMS)):
        print(f"   {name}: {noise}; {n_exp} experiments per design")
        for n_seeds, n_examples in ((5, 1300), (10, 2000)):
            r = mde_ratio(n_exp, n_seeds, n_examples, rng, noise)
            print(f"      seeds={n_seeds:3d} examples={n_examples:5d}: MDE ratio median "
                  f"{r['ratio_median']:.3f} (mean {r['ratio_mean']:.3f}), test set "
                  f"{r['test_set_ratio_median']:.3f}; MDE paired "
                  f"{100 * r['mde_paired_median']:.2f} pts vs unpaired "
                  f"{100 * r['mde_unpaired_median']:.2f} pts  (goal <= 0.6)")
    sandbox = World(n_items=1300)
    for name, world in (("W2S generator, sandbox-calibrated", sandbox),
                        ("W2S generator, no per-item method effects",
                         sandbox.with_(item_swap=0.0, absorb_method=sandbox.absorb_baseline))):
        print(f"   {name}; {n_exp} experiments per design")
        for n_seeds, n_examples in ((5, 1300), (10, 2000)):
            r = mde_ratio_w2s(n_exp, n_seeds, world.with_(n_items=n_examples), rng)
            print(f"      seeds={n_seeds:3d} examples={n_examples:5d}: per-item agreement "
                  f"{r['agreement']:.3f}; MDE ratio median {r['ratio_median']:.3f} (mean "
                  f"{r['ratio_mean']:.3f}), test set {r['test_set_ratio_median']:.3f}; MDE paired "
                  f"{100 * r['mde_paired_median']:.2f} pts vs "
                  f"unpaired {100 * r['mde_unpaired_median']:.2f} pts  (goal <= 0.6)")

    n_boot = 1000 if args.quick else 10_000
    table = timing_table(rng)
    print(f"== Time: 5 methods x 3 rungs x 3 datasets x 10 seeds x 2000 examples "
          f"({len(table):,} rows), {n_boot:,} bootstrap resamples ==")
    start = time.perf_counter()
    checked = check_table(table)
    checked_s = time.perf_counter() - start
    start = time.perf_counter()
    verdict = analyze_table(checked, baseline="vanilla", n_boot=n_boot)
    analyse_s = time.perf_counter() - start
    print(f"   schema check {checked_s:.2f} s; analyze_table {analyse_s:.2f} s; total "
          f"{checked_s + analyse_s:.2f} s  (goal < 5 s)")
    print("   verdicts:", {m: e.verdict for m, e in verdict.methods.items()})

    print("== Sequential (O'Brien-Fleming, 4 looks) vs fixed design, seed sd 2 pts, SESOI 1 pt ==")
    seed_sd, sesoi = 0.02, 0.01
    fixed = seeds_needed(VarianceComponents(seed_sd ** 2, 0, 0, 10, None, False), sesoi, LEVEL)
    design = SequentialDesign(4, 0.05, sesoi)
    per_look = int(np.ceil(1.1 * fixed / 4))
    n_sim = 5_000 if args.quick else 20_000
    for effect, label in ((0.0, "gain 0"), (sesoi, "gain = SESOI"), (2 * sesoi, "gain = 2 SESOI")):
        r = simulate_design(design, per_look, effect, seed_sd, n_sim, rng)
        print(f"   {label:15s} P(REAL) {r['p_real']:.4f} P(VANISHED) {r['p_vanished']:.4f} "
              f"P(HARMFUL) {r['p_harmful']:.4f} mean seeds {r['mean_seeds']:.1f} "
              f"(max {r['max_seeds']}) / fixed {fixed} = {r['mean_seeds'] / fixed:.3f}")
    fixed_power = simulate_design(SequentialDesign(1, 0.05, sesoi), fixed, sesoi, seed_sd, n_sim,
                                  rng)["p_real"]
    print(f"   fixed design: {fixed} seeds, power at SESOI {fixed_power:.4f}")


if __name__ == "__main__":
    main()
