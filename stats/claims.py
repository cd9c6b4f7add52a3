"""Does a replication at the discovery rung fall short of the number claimed where a method was
found?

Claims made on a reused test set are selected (the best of many tries), so they are biased upwards;
the replication is the honest number.  One-sided tests, H0: the true value reaches the claim,
at level alpha / 2 in ``analyze_table`` (the claim lies above the two-sided (1 - alpha) interval).

* PGR claim P (a = method - weak, d = ceiling - weak, d > 0): the Fieller pivot
  T = (a - P d) / sqrt(v_aa - 2 P v_ad + P^2 v_dd) ~ t_df, p = T_df(T)  (Fieller 1954).
* Gain claim G: p = T_df((g^ - G) / se).

Claims are given as ``{method: {"pgr": x}}`` or ``{method: {"gain": x}}`` (every dataset), or per
dataset ``{method: {dataset: {"pgr": x}}}``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats as sps

from stats.errors import StatsInputError

CLAIM_KINDS = ("pgr", "gain")


def claim_for(claims: Mapping | None, method: str, dataset: str) -> tuple[str, float] | None:
    """The (kind, value) claimed for ``method`` on ``dataset``, or None.

    Raises:
        StatsInputError: a claim that is not a number or names no known kind.
    """
    if not claims or method not in claims:
        return None
    entry = claims[method]
    if not isinstance(entry, Mapping):
        raise StatsInputError(f"expected a mapping like {{'pgr': 0.4}}, got {entry!r}",
                              field=f"claims.{method}")
    if dataset in entry and isinstance(entry[dataset], Mapping):
        entry, where = entry[dataset], f"claims.{method}.{dataset}"
    else:
        where = f"claims.{method}"
    found = [k for k in CLAIM_KINDS if k in entry]
    if not found:
        if any(isinstance(v, Mapping) for v in entry.values()):
            return None  # per-dataset claims, none for this dataset
        raise StatsInputError(f"expected one of {', '.join(CLAIM_KINDS)}", field=where)
    kind = found[0]
    try:
        value = float(entry[kind])
    except (TypeError, ValueError):
        raise StatsInputError(f"expected a number, got {entry[kind]!r}",
                              field=f"{where}.{kind}") from None
    if not np.isfinite(value):
        raise StatsInputError("expected a finite number", field=f"{where}.{kind}")
    return kind, value


def pgr_claim_p(a: float, d: float, v_aa: float, v_dd: float, v_ad: float, df: float,
                claimed: float) -> float:
    """One-sided p value that the true PGR is below ``claimed`` (Fieller pivot, module
    docstring)."""
    var = v_aa - 2 * claimed * v_ad + claimed ** 2 * v_dd
    if not np.isfinite(var) or var <= 0:
        return float("nan")
    return float(sps.t.cdf((a - claimed * d) / np.sqrt(var), df))


def gain_claim_p(gain: float, se: float, df: float, claimed: float) -> float:
    """One-sided p value that the true gain is below ``claimed``."""
    if not np.isfinite(se) or se <= 0:
        return float("nan")
    return float(sps.t.cdf((gain - claimed) / se, df))


def claim_sentence(method: str, dataset: str, kind: str, claimed: float, replicated: float | None,
                   p: float, alpha: float) -> str:
    """Plain words for the claim check; a shortfall mentions selection on a reused test set.

    ``alpha`` is the one-sided level of the shortfall test."""
    rep = "undefined" if replicated is None else f"{replicated:.3f}"
    if np.isfinite(p) and p < alpha:
        return (f"{dataset}: the claimed {kind.upper()} of {claimed:.3f} is not reproduced at the "
                f"discovery rung (replication {rep}, one-sided p = {p:.3g}); claims picked on a "
                "reused test set are inflated by selection.")
    return (f"{dataset}: the replication ({kind.upper()} {rep}) is consistent with the claimed "
            f"{claimed:.3f} (one-sided p = {p:.3g}).")
