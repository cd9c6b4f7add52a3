"""How a method's gain changes with scale: transfer ratio and slope against log10(parameters).

* Transfer ratio at rung r: gain_r / gain_discovery, Fieller interval (``stats.pgr``); rungs are
  treated as independent samples (different models and weak labels), so the covariance is zero.
* Trend: weighted least squares of the gain on x = log10(strong-model parameters) with weights
  1/se_r^2 (inverse-variance meta-regression, e.g. Borenstein et al. 2009, ch. 20), with dataset
  intercepts when there are several datasets.  The slope is a linear combination sum_k a_k g_k
  of the cell gains, so its variance is sum_k a_k^2 se_k^2 = [(X'WX)^-1]_11, scaled by
  max(1, residual scale) (over-dispersion allowed, never under-dispersion).
  The reference distribution is a t, not a normal: the se_k are estimates with few df each (a
  cell with 5 seeds has about 4), so the slope's se is uncertain too.  Its df is the
  Welch-Satterthwaite df of that linear combination of estimated variances,
  (sum_k a_k^2 se_k^2)^2 / sum_k (a_k^2 se_k^2)^2 / df_k, or the residual df (cells - parameters)
  when the residual scale is used.  "Shrinks with scale" is the one-sided test of H0: slope >= 0
  at alpha / 2, i.e. the two-sided (1 - alpha) interval lies below zero (the z test with one
  residual df said "shrinks" in up to 9.7% of flat-gain ladders at alpha = 0.05).
* With at least 3 datasets, statsmodels MixedLM with a random dataset intercept as a cross-check.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from stats.pgr import RatioEstimate, ratio_estimate


def transfer_ratio(gain: float, se: float, gain_discovery: float, se_discovery: float,
                   df: float, alpha: float = 0.05, *, df_discovery: float | None = None,
                   min_gain: float = 0.0) -> RatioEstimate:
    """Gain at a rung over gain at the discovery rung, with a Fieller interval.

    Undefined (None) unless the discovery gain is clearly above ``min_gain`` (one-sided test at
    alpha / 2 with the discovery gain's own df ``df_discovery``).
    """
    return ratio_estimate(gain, gain_discovery, se * se, se_discovery ** 2, 0.0, df, alpha,
                          df_gap=df_discovery, min_gap=min_gain,
                          gap_name="gain at the discovery rung", ratio_name="the transfer ratio")


def wls_trend(points: pd.DataFrame, alpha: float = 0.05) -> dict | None:
    """Slope of gain per decade of strong-model parameters (WLS, t reference; module docstring).

    Args:
        points: columns gain, se, df, strong_params, dataset (one row per cell); a missing df
            column is read as infinite df (known variances).
        alpha: for the two-sided (1 - alpha) interval of the slope; the one-sided p for decline
            is compared with alpha / 2 by the caller.
    Returns:
        {"slope_per_decade", "ci_low", "ci_high", "p_decline", "se", "df", "n_rungs", "n_cells",
        "dispersion", "method": "wls"} or None when fewer than two distinct parameter counts
        have a finite se.
    """
    pts = points.dropna(subset=["gain", "se", "strong_params"])
    pts = pts[(pts["se"] > 0) & (pts["strong_params"] > 0)]
    if pts["strong_params"].nunique() < 2:
        return None
    x = np.log10(pts["strong_params"].to_numpy(float))
    datasets = sorted(pts["dataset"].unique())
    design = [x]
    for ds in datasets:
        design.append((pts["dataset"].to_numpy() == ds).astype(float))
    xmat = np.column_stack(design)
    # drop dataset intercepts that cannot be told apart from the slope (single-row datasets)
    if np.linalg.matrix_rank(xmat) < xmat.shape[1]:
        xmat = np.column_stack([x, np.ones_like(x)])
    var = pts["se"].to_numpy(float) ** 2
    cell_df = (pts["df"].to_numpy(float) if "df" in pts.columns
               else np.full(len(pts), np.inf))
    cell_df = np.where(np.isfinite(cell_df) & (cell_df > 0), cell_df, np.inf)
    w = 1.0 / var
    y = pts["gain"].to_numpy(float)
    xtwx = xmat.T @ (xmat * w[:, None])
    beta = np.linalg.solve(xtwx, xmat.T @ (w * y))
    resid = y - xmat @ beta
    dof = len(y) - xmat.shape[1]
    scale = float(resid @ (w * resid) / dof) if dof > 0 else 1.0
    inv = np.linalg.inv(xtwx)
    slope = float(beta[0])
    parts = (inv @ (xmat * w[:, None]).T)[0] ** 2 * var  # a_k^2 se_k^2, summing to inv[0, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        df = float(parts.sum() ** 2 / np.sum(parts ** 2 / cell_df))
    if scale > 1.0 and dof > 0:
        df = float(dof)
    se = float(np.sqrt(inv[0, 0] * max(1.0, scale)))
    df = df if np.isfinite(df) else 1e6
    q = float(sps.t.ppf(1 - alpha / 2, df))
    return {"slope_per_decade": slope, "ci_low": slope - q * se, "ci_high": slope + q * se,
            "p_decline": float(sps.t.cdf(slope / se, df)), "se": se, "df": df,
            "n_rungs": int(pts["strong_params"].nunique()), "n_cells": int(len(pts)),
            "dispersion": scale, "method": "wls"}


def mixed_trend(points: pd.DataFrame) -> dict | None:
    """MixedLM gain ~ log10(params) with a random dataset intercept (needs >= 3 datasets).

    Returns:
        {"slope_per_decade", "se", "p_decline", "method": "mixedlm"}, or None when there are
        fewer than 3 datasets, fewer than 2 parameter counts, or the fit fails.
    """
    import statsmodels.formula.api as smf

    pts = points.dropna(subset=["gain", "strong_params"])
    if pts["dataset"].nunique() < 3 or pts["strong_params"].nunique() < 2:
        return None
    data = pd.DataFrame({"gain": pts["gain"].to_numpy(float),
                         "x": np.log10(pts["strong_params"].to_numpy(float)),
                         "dataset": pts["dataset"].astype(str).to_numpy()})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("gain ~ x", data, groups=data["dataset"]).fit(reml=True)
        slope, se = float(fit.params["x"]), float(fit.bse["x"])
    except (ValueError, np.linalg.LinAlgError, KeyError):
        return None
    if not np.isfinite(se) or se <= 0:
        return None
    return {"slope_per_decade": slope, "se": se, "p_decline": float(sps.norm.cdf(slope / se)),
            "method": "mixedlm"}
