"""Error rates of a campaign's whole procedure: sequential looks, then the final verdict.

The canonical joint normal model of a group-sequential design (Jennison & Turnbull 2000,
ch. 3): at look k of K (information fraction k / K) method m's statistic is
Z_k = W_m(t_k) / sqrt(t_k) + drift sqrt(t_k), where drift is the gain in units of its standard
error at the last look; M methods compared with one baseline are correlated 0.5. The design
(``stats.sequential.boundaries``: O'Brien-Fleming, alpha / 2 split over the M methods) stops a
method at the first look whose |Z_k| crosses c_k. Two final verdicts are compared on the same
draws:

- ``fixed-sample``: the one-sided tests at alpha / 2 with Holm over the methods on Z at the
  stopping look (what verdict.json said before 2026-12-06);
- ``design``: the design's decision at the stopping look, i.e. Z beyond c_k (what
  ``stats.analyze_table`` decides since, given the campaign's record).

Also the coverage of the gain by the fixed-sample 95% interval and by the repeated interval at
the stopping look (M = 1), overall and among methods stopped before the last look.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/sequential_procedure.py [--draws N]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stats.sequential import boundaries  # noqa: E402

ALPHA = 0.05


def statistics(rng: np.random.Generator, draws: int, looks: int, methods: int,
               drift: float) -> np.ndarray:
    """Z of every draw, look and method: (draws, looks, methods)."""
    cov = np.full((methods, methods), 0.5) + 0.5 * np.eye(methods)
    steps = rng.standard_normal((draws, looks, methods)) @ np.linalg.cholesky(cov).T
    brownian = np.cumsum(steps / np.sqrt(looks), axis=1)
    t = (np.arange(1, looks + 1) / looks)[None, :, None]
    return brownian / np.sqrt(t) + drift * np.sqrt(t)


def holm_below(p: np.ndarray, level: float) -> np.ndarray:
    """Which p values (per row) Holm rejects at ``level``."""
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1)
    m = p.shape[1]
    adjusted = np.minimum(np.maximum.accumulate(ranked * np.arange(m, 0, -1), axis=1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=1)
    return out < level


def rates(rng: np.random.Generator, draws: int, looks: int, methods: int) -> dict[str, float]:
    """False REAL (per comparison) of both final verdicts at gain 0."""
    c = boundaries(ALPHA / 2 / methods, np.arange(1, looks + 1) / looks)
    z = statistics(rng, draws, looks, methods, 0.0)
    crossed = np.abs(z) >= c[None, :, None]
    crossed[:, -1, :] = True
    stop = crossed.argmax(axis=1)
    z_stop = np.take_along_axis(z, stop[:, None, :], axis=1)[:, 0, :]
    return {"fixed": float(holm_below(sps.norm.sf(z_stop), ALPHA / 2).mean()),
            "design": float((z_stop >= c[stop]).mean())}


def coverage(rng: np.random.Generator, draws: int, looks: int, drift: float) -> dict[str, float]:
    """Coverage of the gain by the fixed-sample 95% interval and the repeated interval."""
    c = boundaries(ALPHA / 2, np.arange(1, looks + 1) / looks)
    z = statistics(rng, draws, looks, 1, drift)[:, :, 0]
    crossed = np.abs(z) >= c[None, :]
    crossed[:, -1] = True
    stop = crossed.argmax(axis=1)
    z_stop = z[np.arange(draws), stop]
    root = np.sqrt((stop + 1) / looks)  # estimate = Z / sqrt(info); the gain is drift
    error = np.abs(z_stop / root - drift) * root  # |estimate - gain| in se at that look
    early = stop < looks - 1
    fixed, repeated = error <= sps.norm.isf(ALPHA / 2), error <= c[stop]
    return {"fixed": float(fixed.mean()), "repeated": float(repeated.mean()),
            "early": float(early.mean()),
            "fixed_early": float(fixed[early].mean()) if early.any() else float("nan"),
            "repeated_early": float(repeated[early].mean()) if early.any() else float("nan")}


def mc_error(rate: float, draws: int) -> float:
    """One Monte Carlo standard error of a rate, in percentage points."""
    return 100 * float(np.sqrt(rate * (1 - rate) / draws))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.draws
    print(f"false REAL per comparison at gain 0, % ({n} draws each; target alpha/2 = 2.5%, "
          "split over the methods)")
    print("| looks | methods | target | fixed-sample verdict | design's decision |")
    print("|---|---|---|---|---|")
    for looks in (2, 3, 4):
        for methods in (1, 2):
            got = rates(rng, n, looks, methods)
            fixed, design = (got[k] for k in ("fixed", "design"))
            print(f"| {looks} | {methods} | {100 * ALPHA / 2 / methods:.2f} | "
                  f"{100 * fixed:.2f} +/- {mc_error(fixed, n * methods):.2f} | "
                  f"{100 * design:.2f} +/- {mc_error(design, n * methods):.2f} |")
    print("\ncoverage of the gain, % (one method, 4 looks)")
    print("| gain (se at the last look) | stopped early | fixed-sample 95% | repeated | "
          "fixed-sample, early stops | repeated, early stops |")
    print("|---|---|---|---|---|---|")
    for drift in (0.0, 1.0, 2.0, 3.0):
        got = coverage(rng, n, 4, drift)
        print(f"| {drift:g} | {100 * got['early']:.1f} | {100 * got['fixed']:.1f} | "
              f"{100 * got['repeated']:.1f} | {100 * got['fixed_early']:.1f} | "
              f"{100 * got['repeated_early']:.1f} |")


if __name__ == "__main__":
    main()
