"""What a control adds on real compute: measured gains of spike-in and null controls per rung.

    OMP_NUM_THREADS=1 .venv/bin/python bench/spike_in_gains.py [--ladder tiny] [--seeds 6]
        [--fractions 0.25 0.5 1.0] [--gains 0.01 0.02] [--store DIR]

For every rung and seed: the weak, ceiling and baseline (``vanilla``) arms, a ``null`` control
(an independent replicate of the baseline), a ``spike_in`` control per gold fraction (weak labels
partly replaced by gold, ``transfer.controls``) and a ``synthetic_spike_in`` per gain. Prints,
per rung, the mean accuracies, the gap and the baseline's headroom (ceiling - baseline), and for
each control its mean gain over the baseline in points with the standard error over seeds (the
seed-level paired difference; the pipeline's two-way analysis is tighter), and the share of the
headroom it recovers. Then the pipeline's own analysis (``stats.analyze_table``, each control
against the baseline alone, as ``flows.derive.derive_controls`` does at a lone candidate's alpha):
the verdict of every control with all seeds, and with ``--block B`` the verdicts over disjoint
blocks of B seeds (independent experiments of the plan's size), so the share of blocks calling the
null control REAL is a measured false-REAL rate on real compute. The last lines are the figures:
recovered / injected gain of each synthetic spike-in, and the null's REAL count. The same store is
reused on a second call (nothing recomputed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", default="tiny")
    parser.add_argument("--rungs", nargs="*", default=None, help="default: every rung")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.25, 0.5, 1.0])
    parser.add_argument("--gains", type=float, nargs="*", default=[])
    parser.add_argument("--baseline", default="vanilla")
    parser.add_argument("--store", default=None, help="run store (default: a new temp dir)")
    parser.add_argument("--alpha", type=float, default=0.05, help="the controls' level")
    parser.add_argument("--sesoi", type=float, default=0.01)
    parser.add_argument("--block", type=int, default=0,
                        help="seeds per block for the block verdicts (0: no blocks)")
    args = parser.parse_args()

    from flows.context import arm_context
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.controls import ControlSpec
    from transfer.results import analysis_table, results_table

    store = args.store or tempfile.mkdtemp(prefix="w2s-spike-store-")
    ctx = arm_context(args.ladder, None, store)
    name, params, fn = method_function(args.baseline, {})
    controls = [ControlSpec("null", "replicate")]
    controls += [ControlSpec("spike_in", f"gold{f:g}", gold_fraction=f) for f in args.fractions]
    controls += [ControlSpec("synthetic_spike_in", f"plus{g:g}", gain=g) for g in args.gains]
    rungs = args.rungs or [r.name for r in ctx.ladder.rungs]
    start = time.perf_counter()
    rows, records = [], []
    for rung in rungs:
        acc: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            for arm in ("weak", "ceiling"):
                records.append(run_arm(ctx, rung, arm, seed))
                acc.setdefault(arm, []).append(records[-1].metrics["accuracy"])
            records.append(run_arm(ctx, rung, "student", seed, method=name, method_params=params,
                                   method_fn=fn))
            acc.setdefault("baseline", []).append(records[-1].metrics["accuracy"])
            for control in controls:
                records.append(run_arm(ctx, rung, "student", seed, method=name,
                                       method_params=params, method_fn=fn, control=control))
                acc.setdefault(control.label, []).append(records[-1].metrics["accuracy"])
        rows.append((rung, acc))
        print(f"rung {rung}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
              flush=True)

    def mean(values):
        return statistics.fmean(values)

    print(f"ladder {args.ladder}, baseline {name}, {args.seeds} seeds; gains in points, "
          "mean +/- se over seeds (paired by seed)\n")
    print("| rung | weak | ceiling | baseline | gap | headroom | control | gain | se | "
          "share of headroom |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rung, acc in rows:
        weak, ceiling, base = mean(acc["weak"]), mean(acc["ceiling"]), mean(acc["baseline"])
        headroom = ceiling - base
        for control in controls:
            diffs = [c - b for c, b in zip(acc[control.label], acc["baseline"])]
            gain = mean(diffs)
            se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
            share = gain / headroom if headroom > 0 else float("nan")
            print(f"| {rung} | {100 * weak:.2f} | {100 * ceiling:.2f} | {100 * base:.2f} | "
                  f"{100 * (ceiling - weak):+.2f} | {100 * headroom:+.2f} | {control.label} | "
                  f"{100 * gain:+.2f} | {100 * se:.2f} | {share:.2f} |")
    table = analysis_table(results_table(records, ctx.ladder))
    production = rungs[-1]
    print(f"\npipeline verdicts at the production rung {production} (each control against the "
          f"baseline alone, alpha {args.alpha:g}, SESOI {100 * args.sesoi:g} pp)\n")
    blocks = ([list(range(i, i + args.block)) for i in range(0, args.seeds - args.block + 1,
                                                             args.block)]
              if args.block else [])
    print("| control | seeds | verdict | gain (pp) [CI] | " +
          (f"REAL in blocks of {args.block} seeds |" if blocks else "|"))
    print("|---|---|---|---|" + ("---|" if blocks else ""))
    figures = []
    for control in controls:
        entry, cell = verdict_of(table, control.label, name, range(args.seeds), args)
        gain = cell.gain
        line = (f"| {control.label} | {args.seeds} | {entry.verdict} | "
                f"{100 * gain.estimate:+.2f} [{100 * gain.ci_low:+.2f}, "
                f"{100 * gain.ci_high:+.2f}] |")
        real = [verdict_of(table, control.label, name, b, args)[0].verdict == "REAL"
                for b in blocks]
        if blocks:
            line += f" {sum(real)}/{len(real)} |"
        print(line)
        if control.kind == "synthetic_spike_in":
            figures.append(f"figure: {control.label} injected {100 * control.gain:+.2f} pp, "
                           f"recovered {100 * gain.estimate:+.2f} pp at {production} "
                           f"(ratio {gain.estimate / control.gain:.2f}), verdict "
                           f"{entry.verdict}")
        if control.kind == "null":
            figures.append(f"figure: {control.label} gain {100 * gain.estimate:+.2f} pp at "
                           f"{production}, verdict {entry.verdict}" +
                           (f"; called REAL in {sum(real)}/{len(real)} blocks of "
                            f"{args.block} seeds" if blocks else ""))
    print()
    print("\n".join(figures))
    print(f"\n{time.perf_counter() - start:.0f} s; store {store}")


def verdict_of(table, label: str, baseline: str, seeds, args):
    """The pipeline's verdict on one control with these seeds, and its production-rung cell."""
    from stats import analyze_table

    rows = table[table["seed"].isin(list(seeds)) &
                 table["arm"].isin(["weak", "ceiling", baseline, label])]
    verdict = analyze_table(rows.reset_index(drop=True), baseline=baseline, sesoi=args.sesoi,
                            alpha=args.alpha, n_boot=0)
    entry = verdict.methods[label]
    cell = [c for c in entry.cells if c.rung == verdict.production_rung][0]
    return entry, cell


if __name__ == "__main__":
    main()
