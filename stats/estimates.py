"""Arm means and their joint covariance for one (rung, dataset) cell, and linear contrasts of them.

Two designs:

* ``two_way``: per-example data where every arm has the same seeds and the same test examples.
  Seeds and examples are crossed random factors (seeds share weak labels across arms, examples
  are shared by every arm and seed), so for the vector of arm scores y_si (arms stacked)

      y_si = mu + a_s + b_i + e_si,     Var(mean) = Sa/S + Sb/I + Se/(S I)

  estimated without bias from the mean-square matrices of the two-way layout
  (Cornfield & Tukey 1956; the clustered standard errors of Miller 2024, "Adding Error Bars to
  Evals", sec. 2-3, with both clustering factors):

      Cov(mean) = (MS_seed + MS_example - MS_residual) / (S I)

  with Satterthwaite (1946) degrees of freedom for each contrast (at most 2 (S - 1) when the
  contrast's seed variance component is estimated below zero and truncated; see
  ``_two_way_se_df``).
* ``seed_level``: aggregate data (accuracy per seed), or per-example data whose arms do not share
  seeds/examples.  Each arm's mean is over its own seeds; two arms covary through the seeds they
  share (same weak labels):  Cov(mean_X, mean_Y) = n_XY / (n_X n_Y) * s_XY, with s_XY the sample
  covariance over the n_XY shared seeds.  This is conditional on the fixed test set: example-level
  variation shared by all seeds is not separable from seed-level accuracies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

TWO_WAY = "two_way"
SEED_LEVEL = "seed_level"


@dataclass(frozen=True)
class Contrast:
    """A linear combination of arm means with its standard error and degrees of freedom."""

    estimate: float
    se: float
    df: float
    seed_truncated: bool = False  # two-way: the seed variance component was estimated <= 0

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval ``estimate -/+ t_{df, 1-(1-level)/2} * se``."""
        if not np.isfinite(self.se):
            return (float("nan"), float("nan"))
        q = sps.t.ppf(0.5 + level / 2, self.df)
        return (self.estimate - q * self.se, self.estimate + q * self.se)


@dataclass
class CellMoments:
    """Arm means of one cell, their covariance, and what is needed for per-contrast df.

    Attributes:
        arms: arm names, the order of ``mean`` and ``cov``.
        mean: mean accuracy per arm.
        cov: estimated covariance matrix of the arm means.
        design: ``two_way`` or ``seed_level``.
        n_seeds: seeds per arm.
        n_examples: test examples per seed (two-way: shared; seed-level: from n, may be None).
        notes: plain-language caveats (degraded design, single seed, ...).
    """

    arms: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray
    design: str
    n_seeds: dict[str, int]
    n_examples: int | None
    notes: list[str] = field(default_factory=list)
    # two-way: (MS matrix, df, sign) per variance component, scaled by 1/(S I) in cov
    ms_terms: tuple[tuple[np.ndarray, float, float], ...] = ()
    floor_cov: np.ndarray | None = None
    seed_values: dict[str, pd.Series] = field(default_factory=dict)
    scale: float = 1.0

    def index(self, arm: str) -> int:
        """Position of ``arm`` in ``arms`` (KeyError if absent)."""
        try:
            return self.arms.index(arm)
        except ValueError:
            raise KeyError(arm) from None

    def weights(self, coefficients: dict[str, float]) -> np.ndarray:
        """Coefficient vector over ``arms`` from a mapping arm -> coefficient."""
        c = np.zeros(len(self.arms))
        for arm, value in coefficients.items():
            c[self.index(arm)] += value
        return c

    def contrast(self, coefficients: dict[str, float]) -> Contrast:
        """Estimate, standard error and df of ``sum_k c_k * mean_k``.

        Two-way: the unbiased combination of mean squares with Satterthwaite df, negative
        variance components truncated at zero (see ``_two_way_se_df``).  Seed-level: the
        smallest (seeds - 1) among the arms involved (conservative); infinite when only the
        binomial variance of a single seed is available.
        """
        c = self.weights(coefficients)
        estimate = float(c @ self.mean)
        var = float(c @ self.cov @ c)
        if self.design == TWO_WAY:
            se, df, truncated = self._two_way_se_df(c, var)
            return Contrast(estimate, se, df, truncated)
        used = [a for a, w in zip(self.arms, c) if w != 0]
        counts = [self.n_seeds[a] for a in used]
        df = float(min(counts) - 1) if counts and min(counts) > 1 else float("inf")
        if not np.isfinite(var):
            return Contrast(estimate, float("nan"), df)
        if var <= 0 and self.floor_cov is not None:
            var = float(c @ self.floor_cov @ c)
        return Contrast(estimate, float(np.sqrt(max(var, 0.0))), df)

    def pigeonhole_variance(self, coefficients: dict[str, float]) -> float | None:
        """Expected variance of the two-way (pigeonhole) bootstrap for a contrast, given the data.

        With multinomial seed and example counts the bootstrap variance of a mean is exactly
        ``[(S-1)/S q_seed + (I-1)/I q_ex + (S-1)(I-1)/(S I) q_res] / (S I)`` (q = c'MS c), which
        exceeds the unbiased ``(q_seed + q_ex - q_res) / (S I)`` by about ``2 Se / (S I)``: the
        pigeonhole bootstrap is conservative (Owen 2007).  None for seed-level cells.
        """
        if self.design != TWO_WAY or len(self.ms_terms) != 3:
            return None
        c = self.weights(coefficients)
        (ms_s, df_s, _), (ms_e, df_e, _), (ms_r, _, _) = self.ms_terms
        n_s, n_i = df_s + 1, df_e + 1
        q_s, q_e, q_r = (float(c @ m @ c) for m in (ms_s, ms_e, ms_r))
        return ((n_s - 1) / n_s * q_s + (n_i - 1) / n_i * q_e
                + (n_s - 1) * (n_i - 1) / (n_s * n_i) * q_r) * self.scale

    def _two_way_se_df(self, c: np.ndarray, var: float) -> tuple[float, float, bool]:
        """se, df and whether the seed component was truncated.

        With q_k = c'MS_k c / (S I) for k = seed, example, residual, the seed component is
        q_seed - q_res and the example component q_ex - q_res; a component estimated below
        zero is truncated at zero by clamping its mean square at the residual one,
        q'_seed = max(q_seed, q_res) and q'_ex = max(q_ex, q_res), so that

            var = q'_seed + q'_ex - q_res.

        df: Satterthwaite (1946), var^2 / (q'_seed^2 / (S - 1) + q'_ex^2 / (I - 1) +
        q_res^2 / ((S - 1)(I - 1))).  When the seed component is truncated that df is capped at
        2 (S - 1).  A seed component estimated below zero is one that is estimated poorly, not
        one known to be zero, and it is small by chance exactly when the interval needs its
        width: the earlier rule switched to the example df (I - 1, hundreds) there and covered
        about 80% of the time in that subset (issue 10's simulation; 84-95% in ours).  The
        uncapped Satterthwaite df at the boundary
        still covered only 90-92% there when items carry large method effects; keeping S - 1
        covered 97-98% but pushed overall coverage above 97%.  The cap 2 (S - 1) is the
        choice measured on the calibration suite (docs/stats.md): 95-96% in the truncated
        subset and 95-97% overall where items carry method effects.
                """
        if len(self.ms_terms) != 3:
            (ms, df, _), = self.ms_terms
            return float(np.sqrt(max(float(c @ ms @ c) * self.scale, 0.0))), float(df), False
        (ms_s, df_s, _), (ms_e, df_e, _), (ms_r, df_r, _) = self.ms_terms
        q_s, q_e, q_r = (float(c @ m @ c) * self.scale for m in (ms_s, ms_e, ms_r))
        if q_r <= 0:  # no residual variation at all (e.g. identical arms): nothing to clamp
            var = max(q_s + q_e - q_r, 0.0)
            return float(np.sqrt(var)), float(df_s), False
        seed, example = max(q_s, q_r), max(q_e, q_r)
        var = seed + example - q_r
        truncated = q_s <= q_r
        df = var * var / (seed * seed / df_s + example * example / df_e + q_r * q_r / df_r)
        if truncated:
            df = min(df, 2.0 * df_s)
        return float(np.sqrt(max(var, 0.0))), float(df), bool(truncated)


def two_way_moments(scores: np.ndarray, arms: tuple[str, ...]) -> CellMoments:
    """Moments of arm means for a balanced arms x seeds x examples array of 0/1 scores.

    Args:
        scores: shape (A, S, I), S >= 1 seeds, I >= 2 examples, same seeds/examples for every arm.
        arms: the A arm names.
    Returns:
        ``CellMoments`` with design ``two_way`` (see module docstring for the formula).  With a
        single seed the seed component cannot be estimated: the covariance is the example-level
        one and a note says the interval is too narrow.
    """
    y = np.asarray(scores, dtype=float)
    n_arms, n_seeds, n_ex = y.shape
    grand = y.mean(axis=(1, 2))
    seed_means = y.mean(axis=2)
    ex_means = y.mean(axis=1)
    r_ex = ex_means - grand[:, None]
    notes: list[str] = []
    if n_seeds == 1:
        ms_ex = r_ex @ r_ex.T / (n_ex - 1)
        cov = ms_ex / n_ex
        notes.append("one seed only: seed-to-seed variation cannot be estimated, so the intervals "
                     "reflect test-example sampling only and are too narrow")
        return CellMoments(arms, grand, cov, TWO_WAY, {a: 1 for a in arms}, n_ex, notes,
                           ((ms_ex, n_ex - 1.0, 1.0),), scale=1.0 / n_ex)
    r_seed = seed_means - grand[:, None]
    ms_seed = n_ex * (r_seed @ r_seed.T) / (n_seeds - 1)
    ms_ex = n_seeds * (r_ex @ r_ex.T) / (n_ex - 1)
    resid = (y - seed_means[:, :, None] - ex_means[:, None, :] + grand[:, None, None])
    resid = resid.reshape(n_arms, -1)
    df_res = (n_seeds - 1.0) * (n_ex - 1.0)
    ms_res = resid @ resid.T / df_res
    cells = n_seeds * n_ex
    cov = (ms_seed + ms_ex - ms_res) / cells
    terms = ((ms_seed, n_seeds - 1.0, 1.0), (ms_ex, n_ex - 1.0, 1.0), (ms_res, df_res, -1.0))
    return CellMoments(arms, grand, cov, TWO_WAY, {a: n_seeds for a in arms}, n_ex, notes,
                       terms, scale=1.0 / cells)


def seed_level_moments(acc: dict[str, pd.Series], n: dict[str, float | None],
                       binomial_fallback: bool = True) -> CellMoments:
    """Moments of arm means from per-seed accuracies (series indexed by seed).

    Args:
        acc: arm -> accuracies indexed by seed.
        n: arm -> examples per seed (None when unknown); used only for single-seed arms, whose
            variance falls back to the binomial p(1-p)/n.
        binomial_fallback: False for the test-set estimand: the binomial variance is that of
            sampling test items, which a test-set interval leaves out, so a single-seed arm's
            variance is unknown (NaN) instead.
    Returns:
        ``CellMoments`` with design ``seed_level`` (formula in the module docstring).
    """
    arms = tuple(acc)
    mean = np.array([float(acc[a].mean()) for a in arms])
    cov = np.zeros((len(arms), len(arms)))
    floor = np.zeros_like(cov)
    notes: list[str] = []
    for i, x in enumerate(arms):
        sx = acc[x]
        if len(sx) >= 2:
            cov[i, i] = float(sx.var(ddof=1)) / len(sx)
        elif not binomial_fallback:
            cov[i, i] = float("nan")
            notes.append(f"arm '{x}' has one seed: the seed-to-seed variation a test-set "
                         "interval is made of cannot be estimated")
        elif n.get(x):
            p = float(sx.iloc[0])
            cov[i, i] = p * (1 - p) / float(n[x])
            notes.append(f"arm '{x}' has one seed: its variance is the binomial one over test "
                         "examples and misses seed-to-seed variation")
        else:
            cov[i, i] = float("nan")
            notes.append(f"arm '{x}' has one seed and no example count: its uncertainty is unknown")
        floor[i, i] = cov[i, i]
        for j in range(i):
            y = acc[arms[j]]
            shared = sx.index.intersection(y.index)
            if len(shared) >= 2:
                s_xy = float(np.cov(sx.loc[shared], y.loc[shared], ddof=1)[0, 1])
                cov[i, j] = cov[j, i] = len(shared) * s_xy / (len(sx) * len(y))
    counts = {a: int(len(acc[a])) for a in arms}
    known_n = [v for v in n.values() if v]
    return CellMoments(arms, mean, cov, SEED_LEVEL, counts,
                       int(max(known_n)) if known_n else None, notes, floor_cov=floor,
                       seed_values=dict(acc))
