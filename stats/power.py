"""Power, minimum detectable effect and the seeds or examples a design needs.

For a one-sided level-alpha t test with standard error se and df degrees of freedom:

* Exact power for a true effect delta: ``1 - F_nct(t_{1-alpha, df}; df, delta / se)`` with the
  noncentral t distribution.
* MDE at power 1-beta: the delta whose exact power is 1-beta (solved on the noncentral t).  The
  usual approximation ``(t_{1-alpha, df} + t_{1-beta, df}) * se`` (e.g. Bloom 1995, Eval. Rev.
  19:547) is the starting bracket; it overstates power at few df and small alpha (73% instead
  of 80% at 3 df and alpha = 0.004).

The contrast variance for S seeds and I examples is ``Sa/S + Sb/I + Se/(S I)`` (two-way design; the
components come from the mean squares) or ``s2/S`` (seed level).  Seeds needed use df = S - 1,
which is conservative for the Satterthwaite df of the two-way analysis.

``alpha`` here is the one-sided level of the test that will decide.  ``analyze_table`` passes
``tests_and_verdicts.decision_level``: alpha / 2 per direction, divided by the size of the
multiplicity family (what a lone effect needs under Holm), not the unadjusted alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

from stats.estimates import TWO_WAY, CellMoments

MAX_SEEDS = 10_000


@dataclass(frozen=True)
class VarianceComponents:
    """Per-observation variance components of a contrast.

    ``seed`` (Sa), ``example`` (Sb) and ``residual`` (Se); for seed-level data only ``seed`` is
    set and it already includes the within-seed test-sampling noise at ``n_examples``.
    """

    seed: float
    example: float
    residual: float
    n_seeds: int
    n_examples: int | None
    two_way: bool

    def variance(self, n_seeds: int, n_examples: int | None = None) -> float:
        """Variance of the contrast's mean with ``n_seeds`` seeds and ``n_examples`` examples."""
        if not self.two_way:
            # seed-level data cannot split seed noise from test noise: examples do not enter
            return self.seed / n_seeds
        n_ex = n_examples or self.n_examples or 1
        return self.seed / n_seeds + self.example / n_ex + self.residual / (n_seeds * n_ex)


def components(moments: CellMoments, coefficients: dict[str, float]) -> VarianceComponents:
    """Variance components of a contrast from a cell's mean squares (clipped at zero).

    Two-way: Se = c'MS_res c, Sa = (c'MS_seed c - Se) / I, Sb = (c'MS_ex c - Se) / S.
    Seed level: Sa = se^2 * S, with S the smallest seed count among the arms involved.
    """
    c = moments.weights(coefficients)
    contrast = moments.contrast(coefficients)
    if moments.design == TWO_WAY and len(moments.ms_terms) == 3:
        (ms_s, _, _), (ms_e, _, _), (ms_r, _, _) = moments.ms_terms
        n_s = next(iter(moments.n_seeds.values()))
        n_i = moments.n_examples or 1
        q_s, q_e, q_r = (float(c @ m @ c) for m in (ms_s, ms_e, ms_r))
        return VarianceComponents(max((q_s - q_r) / n_i, 0.0), max((q_e - q_r) / n_s, 0.0),
                                  max(q_r, 0.0), n_s, n_i, True)
    used = [n for a, n in moments.n_seeds.items() if c[moments.index(a)] != 0]
    n_s = min(used) if used else 1
    return VarianceComponents(contrast.se ** 2 * n_s, 0.0, 0.0, n_s, moments.n_examples, False)


def mde(se: float, df: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of a one-sided level-alpha t test at the given power (exact,
    noncentral t; module docstring)."""
    if not (np.isfinite(se) and np.isfinite(df)) or se <= 0:
        return float("nan") if not np.isfinite(se) else 0.0
    guess = float((sps.t.ppf(1 - alpha, df) + sps.t.ppf(power, df)) * se)
    high = guess
    while power_at(high, se, df, alpha) < power:
        high *= 1.5
    return float(optimize.brentq(lambda d: power_at(d, se, df, alpha) - power, 0.0, high,
                                 xtol=1e-12 * max(se, 1e-12)))


def power_at(effect: float, se: float, df: float, alpha: float = 0.05) -> float:
    """Exact power of the one-sided t test for a true ``effect`` (noncentral t)."""
    crit = sps.t.ppf(1 - alpha, df)
    return float(sps.nct.sf(crit, df, effect / se))


def seeds_needed(comp: VarianceComponents, effect: float, alpha: float = 0.05,
                 power: float = 0.8, n_examples: int | None = None) -> int | None:
    """Smallest number of seeds giving at least ``power`` to detect ``effect`` (df = S - 1).

    Returns None when no number of seeds suffices (the example-level variance alone is too big;
    then more test examples are needed, see ``examples_needed``).
    """
    if effect <= 0:
        return None
    candidates = np.unique(np.concatenate([np.arange(2, 65),
                                           np.round(64 * 1.1 ** np.arange(1, 120))])).astype(int)
    candidates = candidates[candidates <= MAX_SEEDS]
    var = np.array([comp.variance(int(n), n_examples) for n in candidates])
    if np.any(var <= 0):
        return int(candidates[np.argmax(var <= 0)])
    crit = sps.t.ppf(1 - alpha, candidates - 1)
    reached = sps.nct.sf(crit, candidates - 1, effect / np.sqrt(var)) >= power
    return int(candidates[np.argmax(reached)]) if reached.any() else None


def examples_needed(comp: VarianceComponents, effect: float, n_seeds: int, alpha: float = 0.05,
                    power: float = 0.8) -> int | None:
    """Test examples per seed needed at ``n_seeds`` seeds (two-way components only), or None."""
    if not comp.two_way or effect <= 0:
        return None
    budget = (effect / (sps.t.ppf(1 - alpha, n_seeds - 1) + sps.t.ppf(power, n_seeds - 1))) ** 2
    rest = budget - comp.seed / n_seeds
    if rest <= 0:
        return None
    return int(np.ceil((comp.example + comp.residual / n_seeds) / rest))
