"""Every built-in method on a ladder for several seeds: test accuracy and PGR per method and rung.

    OMP_NUM_THREADS=1 .venv/bin/python bench/methods_table.py --ladder tiny --seeds 0 1 2

All arms run through ``transfer.arms.run_arm`` against one shared store, so each (rung, seed)
trains its weak and ceiling arms once and every method reuses them; the script counts the runs
it executed (vs. found complete) per arm kind and prints the count. Methods run through
``methods.resolve.method_function`` exactly as ``w2s-transfer run-arm`` runs them. A method that
cannot run (``MethodUnsupported``, or required params without defaults) is shown as
'unsupported' with its reason.

PGR = (acc_student - acc_weak) / (acc_ceiling - acc_weak), computed per seed; the table shows
the mean over seeds and each seed's value.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    """One (method, rung): accuracies and PGRs per seed, or why the method could not run."""

    accuracy: dict[int, float] = field(default_factory=dict)
    pgr: dict[int, float] = field(default_factory=dict)
    unsupported: str | None = None


def pgr(student: float, weak: float, ceiling: float) -> float:
    """Performance gap recovered (Burns et al. 2023): NaN when the ceiling does not beat weak."""
    gap = ceiling - weak
    return (student - weak) / gap if gap > 0 else float("nan")


def builtin_methods() -> list[str]:
    """Names of the registered built-in methods, in registry order."""
    from methods.registry import list_methods

    names = [info.method.name for info in list_methods()
             if not isinstance(info, tuple) and info.origin == "builtin"]
    return sorted(names, key=lambda name: name != "vanilla")  # the baseline first


def _mean_and_seeds(values: dict[int, float], fmt: str) -> str:
    shown = [v for v in values.values() if v == v]  # NaN-free for the mean
    mean = format(statistics.fmean(shown), fmt) if shown else "n/a"
    per_seed = ", ".join(format(values[s], fmt) for s in sorted(values))
    return f"{mean} ({per_seed})"


def bootstrap_note(ladder, rungs: list[str]) -> str:
    """Which intermediate model ``bootstrap`` (default params) uses on each rung."""
    from methods.builtin.bootstrap import pick_intermediate
    from transfer.sealed import MethodUnsupported

    parts = []
    for name in rungs:
        rung = ladder.rung(name)
        try:
            middle = pick_intermediate(ladder.between(rung) + [rung.strong.name], None)
        except MethodUnsupported:
            parts.append(f"{name}: none")
            continue
        parts.append(f"{name}: {middle}")
    return "bootstrap's intermediate model per rung: " + "; ".join(parts) + "."


def markdown(rungs: list[str], arms: list[str], cells: dict[tuple[str, str], Cell],
             seeds: list[int]) -> str:
    """The table: one row per arm, for each rung 'accuracy' and 'PGR' columns."""
    header = ["arm"] + [f"{r} {what}" for r in rungs for what in ("accuracy", "PGR")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        row = [arm]
        for rung in rungs:
            cell = cells[(arm, rung)]
            if cell.unsupported is not None:
                row += [f"unsupported: {cell.unsupported}", "-"]
                continue
            row.append(_mean_and_seeds(cell.accuracy, ".4f"))
            row.append(_mean_and_seeds(cell.pgr, ".3f") if arm not in ("weak", "ceiling")
                       else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Cells: mean over seeds {', '.join(map(str, seeds))} (per-seed values in "
                 "parentheses, in seed order).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rungs", nargs="+", default=None, help="default: every rung")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every built-in method")
    parser.add_argument("--store", type=Path, default=None,
                        help="shared run store (default: a fresh temporary directory)")
    parser.add_argument("--external-command", default=None,
                        help="command for the `external` method, e.g. 'python3 "
                             "/abs/examples/external_bow.py {inputs} {outputs}'")
    args = parser.parse_args(argv)

    from flows.context import arm_context
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.sealed import MethodUnsupported
    from w2s_common.errors import InputError

    store = args.store or Path(tempfile.mkdtemp(prefix="w2s-methods-table-"))
    ctx = arm_context(args.ladder, None, store)
    rungs = args.rungs or [r.name for r in ctx.ladder.rungs]
    methods = args.methods or builtin_methods()
    resolved, cells = {}, {}
    for name in methods:
        try:
            params = ({"command": args.external_command}
                      if name == "external" and args.external_command else {})
            resolved[name] = method_function(name, params)
        except InputError as err:  # e.g. `external` has no default command
            for rung in rungs:
                cells[(name, rung)] = Cell(unsupported=f"{err.field}: {err.message}")
    start, requested = time.perf_counter(), 0
    for rung in rungs:
        for arm in ("weak", "ceiling", *methods):
            cells.setdefault((arm, rung), Cell())
        for seed in args.seeds:
            weak = run_arm(ctx, rung, "weak", seed).metrics["accuracy"]
            ceiling = run_arm(ctx, rung, "ceiling", seed).metrics["accuracy"]
            requested += 2
            cells[("weak", rung)].accuracy[seed] = weak
            cells[("ceiling", rung)].accuracy[seed] = ceiling
            for name, (label, params, fn) in resolved.items():
                cell = cells[(name, rung)]
                if cell.unsupported is not None:
                    continue
                try:
                    record = run_arm(ctx, rung, "student", seed, method=label,
                                     method_params=params, method_fn=fn)
                except MethodUnsupported as err:
                    cell.unsupported = " ".join(str(err).split())
                    continue
                requested += 1
                accuracy = record.metrics["accuracy"]
                cell.accuracy[seed], cell.pgr[seed] = accuracy, pgr(accuracy, weak, ceiling)
            print(f"{rung} seed={seed} done at {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    executed = Counter(spec.label for spec in ctx.store.executed)
    print(markdown(rungs, ["weak", "ceiling", *methods], cells, args.seeds))
    print()
    if "bootstrap" in methods:
        print(bootstrap_note(ctx.ladder, rungs))
        print()
    by_arm = ", ".join(f"{arm} {n}" for arm, n in sorted(executed.items())) or "none"
    print(f"Runs: {requested} requested, {len(ctx.store.executed)} executed ({by_arm}), "
          f"{requested - len(ctx.store.executed)} found complete in the store; weak and ceiling "
          f"run once per (rung, seed) and every method reuses them. Store: {store}. "
          f"Wall time: {time.perf_counter() - start:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
