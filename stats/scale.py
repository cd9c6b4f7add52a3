"""How a method's gain changes with scale: transfer ratio and slope against log10(parameters).

* Transfer ratio at rung r: gain_r / gain_discovery, Fieller interval (``stats.pgr``); rungs are
  treated as independent samples (different models and weak labels), so the covariance is zero.
* Trend: weighted least squares of the gain on x = log10(strong-model parameters) with weights
  1/se_r^2 (inverse-variance meta-regression, e.g. Borenstein et al. 2009, ch. 20), with dataset
  intercepts when there are several datasets.  The per-rung variances are taken as known, so the
  coefficient covariance is (X'WX)^-1 scaled by max(1, residual scale) (over-dispersion allowed,
  never under-dispersion).  One-sided test for decline, H0: slope >= 0, p = Phi(slope / se).
* With at least 3 datasets, statsmodels MixedLM with a random dataset intercept as a cross-check.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from stats.pgr import RatioEstimate, ratio_estimate


def transfer_ratio(gain: float, se: float, gain_discovery: float, se_discovery: float,
                   df: float, alpha: float = 0.05) -> RatioEstimate:
    """Gain at a rung over gain at the discovery rung, with a Fieller interval.

    Undefined (None) unless the discovery gain is clearly above zero (one-sided, level alpha).
    """
    return ratio_estimate(gain, gain_discovery, se * se, se_discovery ** 2, 0.0, df, alpha)


def wls_trend(points: pd.DataFrame, alpha: float = 0.05) -> dict | None:
    """Slope of gain per decade of strong-model parameters (WLS; formula in module docstring).

    Args:
        points: columns gain, se, strong_params, dataset (one row per cell).
        alpha: for the two-sided (1 - alpha) interval of the slope.
    Returns:
        {"slope_per_decade", "ci_low", "ci_high", "p_decline", "se", "n_rungs", "n_cells",
        "method": "wls"} or None when fewer than two distinct parameter counts have a finite se.
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
    X = np.column_stack(design)
    # drop dataset intercepts that cannot be told apart from the slope (single-row datasets)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        X = np.column_stack([x, np.ones_like(x)])
    w = 1.0 / pts["se"].to_numpy(float) ** 2
    y = pts["gain"].to_numpy(float)
    xtwx = X.T @ (X * w[:, None])
    beta = np.linalg.solve(xtwx, X.T @ (w * y))
    resid = y - X @ beta
    dof = len(y) - X.shape[1]
    scale = float(resid @ (w * resid) / dof) if dof > 0 else 1.0
    cov = np.linalg.inv(xtwx) * max(1.0, scale)
    slope, se = float(beta[0]), float(np.sqrt(cov[0, 0]))
    z = sps.norm.ppf(1 - alpha / 2)
    return {"slope_per_decade": slope, "ci_low": slope - z * se, "ci_high": slope + z * se,
            "p_decline": float(sps.norm.cdf(slope / se)), "se": se,
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
