"""Coverage of the two-way gain interval under alternative variance/df rules, split by truncation.

For the production-rung cell of each per-example calibration scenario (stats/calibration.py,
stats/simulate_w2s.py), the method-minus-baseline contrast of every experiment is estimated by
the engine (``two_way_moments(...).contrast``) and by the rules it replaced, and the 95%
interval's coverage of the true population gain is printed: overall, in the cells whose seed
variance component was estimated below zero (truncated) and in the others.  The point: the
truncated cells are selected for a small seed mean square and the untruncated ones for a large
one, so a rule that is a function of one cell's mean squares trades coverage between the two
subsets; ``--gaussian`` replaces the t(3) training noise by Gaussian noise to show that the
trade is not a heavy-tail effect.

Rules (q_k = the contrast's mean square k over S I; nu_k its df; q'_seed = max(q_seed, q_res)):
  engine      var = q'_seed + q'_ex - q_res; Satterthwaite df (plug-in q_k^2 / nu_k), capped at
              2 (S - 1) when the seed component is truncated
  unbiased-sq the same with each squared expected mean square estimated without bias,
              q_k^2 / (nu_k + 2): narrower and closer to 95% where items matter, but with a lone
              seed term its df is S + 1 instead of the exact S - 1 (tried and rejected,
              2026-12-02: it under-covers where seed noise dominates)
  unclamped   var = q_seed + max(q_ex - q_res, 0), plain Satterthwaite, no cap (textbook)

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/truncation_rules.py [--experiments 2000]
       [--gaussian] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stats.calibration import scenarios
from stats.estimates import two_way_moments
from stats.simulate_w2s import ARMS, draw_items, draw_scores

BASELINE, METHOD = ARMS.index("baseline"), ARMS.index("method")


def _contrast_mean_squares(pair: np.ndarray) -> tuple[float, float, float, float, object]:
    """The gain, its q_seed, q_ex, q_res (the engine's mean squares of the method - baseline
    contrast, over S I) and the engine's own ``Contrast``, for one (2, S, I) array."""
    moments = two_way_moments(pair, ("b", "m"))
    c = moments.weights({"m": 1.0, "b": -1.0})
    q_s, q_e, q_r = (float(c @ ms @ c) * moments.scale for ms, _, _ in moments.ms_terms)
    contrast = moments.contrast({"m": 1.0, "b": -1.0})
    return contrast.estimate, q_s, q_e, q_r, contrast


def _alternatives(q_s, q_e, q_r, s: int, i: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(variance, df) per experiment under the rules the engine does not use."""
    nu_s, nu_e, nu_r = s - 1.0, i - 1.0, (s - 1.0) * (i - 1.0)
    seed, example = np.maximum(q_s, q_r), np.maximum(q_e, q_r)
    var = seed + example - q_r
    df_unbiased = var ** 2 / (seed ** 2 / (nu_s + 2) + example ** 2 / (nu_e + 2)
                              + q_r ** 2 / (nu_r + 2))
    unbiased = np.where(q_s <= q_r, np.minimum(df_unbiased, 2 * nu_s), df_unbiased)
    item = np.maximum(q_e - q_r, 0.0)
    var_u = q_s + item
    df_u = var_u ** 2 / (q_s ** 2 / nu_s + np.where(q_e > q_r, q_e ** 2 / nu_e + q_r ** 2 / nu_r,
                                                      0.0))
    return {"unbiased-sq": (var, unbiased), "unclamped": (var_u, df_u)}


def run(scenario, n: int, seed: int, chunk: int = 100) -> dict:
    """Coverage counts of each rule on ``n`` experiments of the production-rung cell."""
    rng = np.random.default_rng(seed)
    world = scenario.world_at(scenario.n_rungs - 1)
    s, i = scenario.n_seeds, world.n_items
    hits: dict[str, list[np.ndarray]] = {}
    truncated: list[np.ndarray] = []
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        scores = draw_scores(world, rng, s, draw_items(world, rng, size)).scores.astype(float)
        pair = scores[:, [BASELINE, METHOD]]
        gain, q_s, q_e, q_r, engine = zip(*(_contrast_mean_squares(pair[k])
                                            for k in range(size)))
        gain, q_s, q_e, q_r = (np.array(x) for x in (gain, q_s, q_e, q_r))
        low_high = np.array([c.ci(0.95) for c in engine])
        hits.setdefault("engine", []).append((low_high[:, 0] <= world.gain)
                                              & (world.gain <= low_high[:, 1]))
        truncated.append(np.array([c.seed_truncated for c in engine]))
        for name, (var, df) in _alternatives(q_s, q_e, q_r, s, i).items():
            half = sps.t.ppf(0.975, df) * np.sqrt(var)
            hits.setdefault(name, []).append(np.abs(gain - world.gain) <= half)
    cut = np.concatenate(truncated)
    out = {"truncated_share": float(cut.mean())}
    for name, parts in hits.items():
        hit = np.concatenate(parts)
        out[name] = (hit.mean(), hit[cut].mean() if cut.any() else np.nan,
                     hit[~cut].mean() if (~cut).any() else np.nan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--gaussian", action="store_true",
                        help="Gaussian training noise instead of t(3)")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    chosen = [sc for sc in scenarios() if sc.form == "examples"
              and (not args.only or sc.name in args.only)]
    rules = ("engine", "unbiased-sq", "unclamped")
    print(f"# 95% gain-interval coverage, {args.experiments} experiments per scenario "
          f"(Monte Carlo se about {100 * np.sqrt(0.05 * 0.95 / args.experiments):.1f} pts "
          f"overall); training noise {'Gaussian' if args.gaussian else 't(3)'}\n")
    print("| scenario | seeds | truncated | " + " | ".join(
        f"{r}: all / trunc. / untrunc." for r in rules) + " |")
    print("|---|---|---|" + "---|" * len(rules))
    for k, sc in enumerate(chosen):
        if args.gaussian:
            sc = dataclasses.replace(sc, world=sc.world.with_(train_df=200.0))
        res = run(sc, args.experiments, args.seed + k)
        cells = " | ".join("{:.1f} / {:.1f} / {:.1f}".format(*(100 * x for x in res[r]))
                           for r in rules)
        print(f"| {sc.name} | {sc.n_seeds} | {100 * res['truncated_share']:.0f}% | {cells} |")
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
