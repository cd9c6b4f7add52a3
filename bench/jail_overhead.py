"""What the jail costs per sandboxed method run, against the same run unjailed, same command.

Usage: ``python bench/jail_overhead.py [--rounds R]``.

A plugin (bench/jail_bench_plugin.py, which returns the weak teacher's probabilities) runs on the
micro ladder's real sealed inputs and prepared trainer, R times in the jail and R times as a plain
subprocess (``jail: {mode: off}``), interleaved. Both pay the same interpreter start, imports and
unpickling; the difference of the medians is the jail's own cost (building the root, namespaces,
the uid drop). Also timed: the plugin's ``describe`` both ways, and a bare ``true`` in the jail
against a bare subprocess. Last line: ``jail overhead per method run X s (goal < 0.3 s)``.
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
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from flows.context import arm_context
    from methods.jail import (
        JailLimits,
        JailSpec,
        jail_builder,
        run_jailed,
        run_process,
        system_mounts,
    )
    from methods.plugins import run_plugin
    from methods.policy import JailSettings, jail_settings
    from methods.registry import resolve_with_params
    from transfer.arms import run_arm, sealed_student_inputs

    reference = "jail_bench_plugin:WeakCopy"
    jailed, unjailed = JailSettings(), JailSettings(mode="off")
    with tempfile.TemporaryDirectory(prefix="w2s-bench-jail-") as scratch:
        ctx = arm_context("micro", None, Path(scratch) / "store")
        rung = ctx.ladder.rungs[0]
        weak = run_arm(ctx, rung.name, "weak", 0)
        data, trainer = sealed_student_inputs(ctx, rung, weak, 0)
        trainer.prepared()
        plugin, params = resolve_with_params(reference, [])
        times: dict[str, list[float]] = {k: [] for k in
                                         ("run jail", "run unjailed", "describe jail",
                                          "describe unjailed", "true jail", "true subprocess")}
        bare = JailSpec(mounts=tuple(system_mounts()), env={"PATH": "/usr/bin:/bin"})
        for _ in range(args.rounds):
            for label, settings in (("jail", jailed), ("unjailed", unjailed)):
                times[f"run {label}"].append(_time(
                    lambda s=settings: run_plugin(plugin, data, trainer, params, s)))
                with jail_settings(settings):
                    times[f"describe {label}"].append(_time(
                        lambda: resolve_with_params(reference, [])))
            times["true jail"].append(_time(lambda: run_jailed(["true"], bare, timeout_s=30)))
            times["true subprocess"].append(_time(lambda: run_process(
                ["true"], env={"PATH": "/usr/bin:/bin"}, cwd="/", limits=JailLimits(),
                timeout_s=30, label="none")))
    median = {label: statistics.median(values) for label, values in times.items()}
    print(f"jail builder: {jail_builder()}; rounds: {args.rounds}; load average: "
          f"{os.getloadavg()[0]:.2f}")
    for what in ("run", "describe"):
        jail, plain = median[f"{what} jail"], median[f"{what} unjailed"]
        print(f"{what:9s} jail {jail:6.3f} s  unjailed {plain:6.3f} s  "
              f"overhead {jail - plain:+.3f} s  ratio {jail / plain:.2f}")
    print(f"bare true jail {median['true jail']:.3f} s  subprocess "
          f"{median['true subprocess']:.3f} s")
    overhead = median["run jail"] - median["run unjailed"]
    print(f"jail overhead per method run {overhead:.3f} s (goal < 0.3 s)")


if __name__ == "__main__":
    main()
