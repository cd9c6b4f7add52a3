"""Ratios of contrasts: performance-gap recovered (PGR) and transfer ratios.

PGR = (acc_student - acc_weak) / (acc_ceiling - acc_weak) = a / d.  It is only reported when the
gap d is clearly positive: the lower end of the gap's own two-sided (1 - alpha) t interval (the
gap contrast's df, not the ratio's) must exceed a minimum gap, the SESOI in ``analyze_table``
(one-sided test of H0: d <= min_gap at level alpha / 2).  A gap the data cannot tell from one
the size of the smallest effect of interest makes the ratio meaningless, and requiring only
d > 0 at level alpha let a true gap of zero through in 4-5% of experiments.  Otherwise PGR is
undefined, never a number.  Interval: Fieller (1954, J. R. Stat. Soc. B 16:175), the set of R with

    (a - R d)^2 <= t^2 (v_aa - 2 R v_ad + R^2 v_dd),

which is a bounded interval only when d^2 > t^2 v_dd; otherwise it is unbounded and flagged.
Cross-check: the delta method, se(R) = sqrt(v_aa - 2 R v_ad + R^2 v_dd) / |d|.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio a/d with Fieller and delta intervals.

    Attributes:
        defined: False when the denominator is not clearly above zero (then all numbers are None).
        estimate, ci_low, ci_high: Fieller interval (None ends when unbounded).
        bounded: False when the Fieller set is not a finite interval.
        delta_low, delta_high: delta-method interval (cross-check).
        p_gap: one-sided p value for denominator > 0.
        reason: why it is undefined or unbounded ("" otherwise).
    """

    defined: bool
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    bounded: bool
    delta_low: float | None
    delta_high: float | None
    p_gap: float
    reason: str = ""

    def as_dict(self) -> dict:
        """The verdict.json form (``defined``, ``estimate``, ``ci_low``, ``ci_high`` + extras)."""
        return {"defined": self.defined, "estimate": self.estimate, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "bounded": self.bounded, "delta_ci_low": self.delta_low,
                "delta_ci_high": self.delta_high, "p_gap": self.p_gap, "note": self.reason}


class RatioParts(NamedTuple):
    """Inputs of a ratio of two contrasts: estimates, (co)variances and dfs."""

    a: float
    d: float
    v_aa: float
    v_dd: float
    v_ad: float
    df: float
    df_gap: float


def ratio_inputs(moments, numerator: dict[str, float],
                 denominator: dict[str, float]) -> RatioParts:
    """(a, d, v_aa, v_dd, v_ad, df, df_gap) for a ratio of two contrasts of a cell's arm means.

    df is the Satterthwaite df of the Fieller pivot a - R d at R = a/d (the contrast whose
    t statistic the interval inverts), falling back to the smaller of the two contrasts' df;
    df_gap is the denominator contrast's own df (used by the gap test).
    """
    num, den = moments.contrast(numerator), moments.contrast(denominator)
    v_ad = float(moments.weights(numerator) @ moments.cov @ moments.weights(denominator))
    df = min(num.df, den.df)
    if den.estimate != 0 and np.isfinite(den.estimate):
        ratio = num.estimate / den.estimate
        pivot = {k: v for k, v in numerator.items()}
        for arm, w in denominator.items():
            pivot[arm] = pivot.get(arm, 0.0) - ratio * w
        df = moments.contrast(pivot).df
    return RatioParts(num.estimate, den.estimate, num.se ** 2, den.se ** 2, v_ad, df, den.df)


def gap_p_value(d: float, v_dd: float, df: float, min_gap: float = 0.0) -> float:
    """One-sided p value of H0: gap <= min_gap against gap > min_gap,
    ``1 - T_df((d - min_gap) / sqrt(v_dd))``."""
    if not (np.isfinite(d) and np.isfinite(v_dd)) or v_dd <= 0:
        return 0.0 if np.isfinite(d) and d > min_gap and v_dd == 0 else 1.0
    return float(sps.t.sf((d - min_gap) / np.sqrt(v_dd), df))


def fieller_interval(a: float, d: float, v_aa: float, v_dd: float, v_ad: float,
                     df: float, level: float = 0.95) -> tuple[float | None, float | None, bool]:
    """Fieller confidence set for a/d (formula in the module docstring).

    Args:
        a, d: numerator and denominator estimates.
        v_aa, v_dd, v_ad: their variances and covariance.
        df: degrees of freedom for the t quantile.
        level: confidence level.
    Returns:
        (low, high, bounded); low/high are None when the set is unbounded.
    """
    t2 = sps.t.ppf(0.5 + level / 2, df) ** 2
    qa = d * d - t2 * v_dd
    qb = a * d - t2 * v_ad
    qc = a * a - t2 * v_aa
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:
        return None, None, False
    root = np.sqrt(disc)
    return float((qb - root) / qa), float((qb + root) / qa), True


def ratio_estimate(a: float, d: float, v_aa: float, v_dd: float, v_ad: float, df: float,
                   alpha: float = 0.05, *, df_gap: float | None = None,
                   min_gap: float = 0.0, gap_name: str = "gap (ceiling - weak)",
                   ratio_name: str = "PGR") -> RatioEstimate:
    """Gap test, then the ratio a/d with Fieller and delta-method (1 - alpha) intervals.

    Args:
        a, d, v_aa, v_dd, v_ad: as in ``fieller_interval``.
        df: degrees of freedom of the Fieller pivot.
        alpha: 1 - confidence of the intervals; the gap test is one-sided at alpha / 2.
        df_gap: the denominator's own df for the gap test (default ``df``).
        min_gap: the gap must clearly exceed this (accuracy fraction, default 0).
        gap_name, ratio_name: words for the reason when it is undefined.
    Returns:
        ``RatioEstimate``; undefined when the gap is not clearly above ``min_gap``.
    """
    gap_df = df if df_gap is None else df_gap
    p_gap = gap_p_value(d, v_dd, gap_df, min_gap)
    if not np.isfinite(a) or not np.isfinite(d) or p_gap >= alpha / 2:
        floor = f"{min_gap:+.4f}" if min_gap else "zero"
        why = (f"{gap_name} = {d:+.4f} is not clearly above {floor} (one-sided "
               f"p = {p_gap:.3g}, needs < {alpha / 2:g}), so {ratio_name} is undefined")
        return RatioEstimate(False, None, None, None, False, None, None, p_gap, why)
    ratio = a / d
    low, high, bounded = fieller_interval(a, d, v_aa, v_dd, v_ad, df, 1 - alpha)
    q = sps.t.ppf(1 - alpha / 2, df)
    se = np.sqrt(max(v_aa - 2 * ratio * v_ad + ratio * ratio * v_dd, 0.0)) / abs(d)
    reason = "" if bounded else ("the Fieller interval is unbounded: the gap is not estimated "
                                 "precisely enough to bound the ratio")
    return RatioEstimate(True, float(ratio), low, high, bounded, float(ratio - q * se),
                         float(ratio + q * se), p_gap, reason)
