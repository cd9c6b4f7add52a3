"""Hypothesis tests on a gain, multiplicity correction, and the verdict with plain reasons.

Tests on the gain g (method - baseline) with estimate g^, standard error se and df:

* superiority, H0: g <= 0:      p = 1 - T_df(g^ / se)
* harm, H0: g >= 0:             p = T_df(g^ / se)
* equivalence (TOST, Schuirmann 1987, J. Pharmacokinet. Biopharm. 15:657) with margin m:
  H0: |g| >= m,  p = max(1 - T_df((g^ + m) / se), T_df((g^ - m) / se))

Multiplicity: each family of p values is adjusted with the method passed explicitly (Holm 1979
for the confirmatory family, Benjamini-Hochberg 1995 for exploratory screens).

Decision rule (one coherent procedure with the displayed two-sided (1 - alpha) interval): each
direction is tested one-sided at level alpha / 2 after adjustment,

* superior   if p_superiority_adjusted < alpha / 2   (the interval lies above 0),
* harmful    if p_harm_adjusted < alpha / 2          (the interval lies below 0),
* equivalent if p_equivalence_adjusted < alpha / 2   (the interval lies inside +/- m),

so under a null gain a decisive wrong verdict (better or worse) happens at most alpha in total
(alpha / 2 each way), and a REAL or HARMFUL verdict never sits beside a (1 - alpha) interval
that crosses zero.  ``decision_level(alpha, m)`` is the per-comparison one-sided level a lone
effect must reach in a family of m (Holm's first step): alpha / (2 m); power and seeds-needed
statements use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from stats.errors import StatsInputError
from stats.estimates import Contrast
from w2s_common.names import HARMFUL, INCONCLUSIVE, REAL, VANISHED

SUPERIOR, EQUIVALENT, HARM, UNDECIDED = "superior", "equivalent", "harmful", "inconclusive"
CORRECTIONS = {"holm": "holm", "bonferroni": "bonferroni", "bh": "fdr_bh", "fdr_bh": "fdr_bh",
               "none": None}


@dataclass(frozen=True)
class GainTests:
    """Unadjusted one-sided p values of one gain."""

    p_superiority: float
    p_harm: float
    p_equivalence: float


def gain_tests(contrast: Contrast, sesoi: float) -> GainTests:
    """Superiority, harm and TOST equivalence p values (formulas in the module docstring).

    Args:
        contrast: the gain's estimate, se and df.
        sesoi: equivalence margin m > 0 (accuracy fraction).
    Returns:
        ``GainTests``; all p values are 1.0 (nothing shown) when the se is unknown.
    """
    g, se, df = contrast.estimate, contrast.se, contrast.df
    if not (np.isfinite(g) and np.isfinite(se)):
        return GainTests(1.0, 1.0, 1.0)
    if se == 0:
        return GainTests(float(g <= 0), float(g >= 0), float(abs(g) >= sesoi))
    p_sup = float(sps.t.sf(g / se, df))
    p_harm = float(sps.t.cdf(g / se, df))
    p_eq = max(float(sps.t.sf((g + sesoi) / se, df)), float(sps.t.cdf((g - sesoi) / se, df)))
    return GainTests(p_sup, p_harm, p_eq)


def adjust(p_values: list[float], correction: str) -> list[float]:
    """Adjust a family of p values.

    Args:
        p_values: the family (may be empty).
        correction: ``holm``, ``bonferroni``, ``bh`` (Benjamini-Hochberg) or ``none``.
    Returns:
        Adjusted p values in the same order.
    Raises:
        StatsInputError: unknown correction name.
    """
    if correction not in CORRECTIONS:
        raise StatsInputError(f"unknown correction {correction!r} (expected one of "
                              f"{', '.join(sorted(CORRECTIONS))})", field="correction")
    if not p_values:
        return []
    method = CORRECTIONS[correction]
    if method is None:
        return [float(p) for p in p_values]
    if method == "holm":
        return [float(p) for p in holm(np.asarray(p_values, float))]
    return [float(p) for p in multipletests(np.asarray(p_values, float), method=method)[1]]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p values: sorted ascending, p_(k) * (m - k + 1), running
    maximum, capped at 1.

    The same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")`` (a test
    checks it), computed here because that function calls ``gc.collect()`` on every Holm call,
    which costs 0.1-0.3 s in a process holding many objects (a flow, a calibration run).
    """
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def decision_level(alpha: float, family_size: int = 1) -> float:
    """One-sided level a single comparison must reach: alpha / 2 per direction, divided by the
    family size (the first Holm step; also Benjamini-Hochberg's smallest rank)."""
    return alpha / 2.0 / max(int(family_size), 1)


def classify(p_sup: float, p_harm: float, p_eq: float, alpha: float) -> str:
    """One cell's outcome from adjusted one-sided p values, each direction at level alpha / 2.

    Returns superior, harmful, equivalent or inconclusive (module docstring).
    """
    level = alpha / 2.0
    if p_sup < level:
        return SUPERIOR
    if p_harm < level:
        return HARM
    if p_eq < level:
        return EQUIVALENT
    return UNDECIDED


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def cell_reason(dataset: str, outcome: str, estimate: float, ci: tuple[float, float],
                p_sup_adj: float, p_eq_adj: float, p_harm_adj: float, sesoi: float,
                mde80: float, seeds: int | None, examples: int | None, n_seeds: int,
                p_harm_raw: float | None = None, alpha: float = 0.05) -> str:
    """One plain-language sentence for one dataset at the production rung.

    Never reads p > alpha as "no effect": an undecided cell says what the interval still allows
    and what data would settle it.  Adjusted p values are compared with alpha / 2 (one direction).
    """
    half = alpha / 2.0
    if any(x is None or not np.isfinite(x) for x in ci):
        return (f"{dataset}: gain {_pts(estimate)} points, with no {100 * (1 - alpha):.0f}% "
                "interval: its uncertainty cannot be estimated from these runs (see the cell's "
                "notes), so nothing is decided.")
    head = (f"{dataset}: gain {_pts(estimate)} points ({100 * (1 - alpha):.0f}% CI "
            f"{_pts(ci[0])} to {_pts(ci[1])})")
    if outcome == SUPERIOR:
        tail = f"better than the baseline (adjusted one-sided p = {p_sup_adj:.3g} < {half:g})"
        if estimate < sesoi:
            tail += (f", but the estimated gain is below the smallest gain of interest "
                     f"({100 * sesoi:.2f} points)")
        return f"{head}: {tail}."
    if outcome == HARM:
        return (f"{head}: worse than the baseline (adjusted one-sided p = {p_harm_adj:.3g} < "
                f"{half:g}).")
    if outcome == EQUIVALENT:
        return (f"{head}: within +/-{100 * sesoi:.2f} points of the baseline (equivalence "
                f"adjusted p = {p_eq_adj:.3g} < {half:g}) and not shown better, so the gain has "
                "vanished.")
    need = []
    if seeds is not None:
        need.append(f"about {seeds} seeds")
    if examples is not None:
        need.append(f"about {examples} test examples per seed at {n_seeds} seeds")
    # The gain the plan cares about, not the MDE just named (a new user read it as the MDE).
    size = f"a gain of the SESOI, {100 * sesoi:.2f} points"
    need_text = (" or ".join(need) + f" would give 80% power for {size}") if need else (
        f"more seeds alone cannot reach 80% power for {size}")
    if p_harm_raw is not None and p_harm_raw < half:
        return (f"{head}: points to a loss (unadjusted one-sided p = {p_harm_raw:.3g}) that is not "
                f"confirmed after correcting for multiple comparisons (adjusted p = "
                f"{p_harm_adj:.3g}, needs < {half:g}); with {n_seeds} seeds the smallest effect "
                f"detectable with 80% power is {100 * mde80:.2f} points; {need_text}.")
    return (f"{head}: not shown better (adjusted p = {p_sup_adj:.3g}, needs < {half:g}), and the "
            f"data cannot rule out a gain or loss of {100 * sesoi:.2f} points either (equivalence "
            f"adjusted p = {p_eq_adj:.3g}); with {n_seeds} seeds the smallest gain detectable "
            f"with 80% power is {100 * mde80:.2f} points; {need_text}.")


def decision_interval(estimate: float | None, se: float | None, df: float | None,
                      p_sup: float | None, p_sup_adj: float | None, p_harm: float | None,
                      p_harm_adj: float | None, alpha: float,
                      level: float | None = None) -> tuple[float, float]:
    """The gain's interval at the levels its multiplicity-adjusted tests were decided at.

    With a correction the two-sided (1 - alpha) interval and the decisions part ways: a cell
    whose interval excludes 0 may be undecided (its adjusted p is larger), which a reader takes
    for a contradiction (new-user review 2026-12-06: em_posterior's [-1.78, -0.02] beside
    INCONCLUSIVE). This interval is the one the decisions read: each end is the one-sided bound
    at the level ``a = (alpha / 2) p / p_adjusted`` of its direction (``p``: the unadjusted
    one-sided p value, ``1 - T_df(g / se)`` for superiority; Holm's, Bonferroni's and BH's
    adjusted p scale it by the step's factor), so that

        lower > 0  <=>  p_superiority_adjusted < alpha / 2   (REAL's cell test)
        upper < 0  <=>  p_harm_adjusted < alpha / 2          (HARMFUL's)

    exactly (at a tie in floating point the end is set just beside 0 on the decision's side,
    since ``t.ppf`` and ``t.sf`` are not bit-consistent: helper-47). Without a correction (or in
    a family of one) it is the (1 - alpha) interval. It contains the (1 - alpha) interval, so a
    cell's own coverage is at least 1 - alpha; it carries no simultaneous guarantee over the
    family (Holm's is data-dependent, and the interval lies inside Bonferroni's). It does not
    show the equivalence (VANISHED) test, which is read off its own adjusted TOST p.

    Args:
        estimate, se, df: the gain, its standard error and df (None: infinite, normal).
        p_sup, p_sup_adj, p_harm, p_harm_adj: the one-sided p values, unadjusted and adjusted.
        alpha: the two-sided level (each direction at alpha / 2).
        level: the one-sided level of both ends, when the decisions used one level that the
            p values do not carry (a sequential design's look: the adjusted p is capped at 1,
            and an end at a capped p would be the fixed-sample one); the repeated confidence
            interval ``estimate -/+ T_df^-1(1 - level) se``.

    Returns:
        (lower, upper); NaN ends where a p value or the standard error is missing.
    """
    def number(value: float | None, missing: float = float("nan")) -> float:
        return missing if value is None else float(value)

    estimate, se, df = number(estimate), number(se), number(df, float("inf"))
    p_sup, p_sup_adj, p_harm, p_harm_adj = map(number, (p_sup, p_sup_adj, p_harm, p_harm_adj))

    def bound(p: float, p_adj: float) -> float:
        if not (np.isfinite(p) and np.isfinite(p_adj) and np.isfinite(se) and se > 0
                and not np.isnan(df)):
            return float("nan")
        end = level if level is not None else alpha / 2.0 * (p / p_adj if p_adj > 0 else 1.0)
        end = min(max(end, 1e-300), alpha / 2.0)
        return float(sps.t.ppf(1.0 - end, df) * se) if np.isfinite(df) else float(
            sps.norm.ppf(1.0 - end) * se)

    lower = estimate - bound(p_sup, p_sup_adj)
    upper = estimate + bound(p_harm, p_harm_adj)
    if np.isfinite(lower) and (lower > 0) != (p_sup_adj < alpha / 2.0):
        lower = float(np.nextafter(0.0, 1.0)) if p_sup_adj < alpha / 2.0 else 0.0
    if np.isfinite(upper) and (upper < 0) != (p_harm_adj < alpha / 2.0):
        upper = float(np.nextafter(0.0, -1.0)) if p_harm_adj < alpha / 2.0 else 0.0
    return lower, upper


def decision_rule_sentence(alpha: float, correction: str) -> str:
    """The sentence every report carries: how the verdicts are read off the interval."""
    level = 100 * (1 - alpha)
    bound = {"holm": f"at most {alpha:g} in total over the family (Holm)",
             "bonferroni": f"at most {alpha:g} in total over the family (Bonferroni)",
             "bh": f"controlled as a false discovery rate of {alpha:g} (BH)",
             "fdr_bh": f"controlled as a false discovery rate of {alpha:g} (BH)",
             "none": f"at most {alpha:g} per comparison (no correction)"}.get(
                 correction, f"at most {alpha:g}")
    return (f"Each direction is tested one-sided at alpha/2 = {alpha / 2:g} on {correction}-"
            f"adjusted p values: REAL needs the gain's decision interval above 0, HARMFUL below "
            f"0, VANISHED the adjusted equivalence test (TOST; without a correction, the "
            f"{level:.0f}% interval inside +/- the SESOI); a wrong decisive verdict under no "
            f"effect has probability {bound}. The decision interval is the gain's interval at "
            f"the levels the adjusted tests used; for a lone comparison it is the two-sided "
            f"{level:.0f}% interval, which the tables also show, and with several a "
            f"{level:.0f}% interval may exclude 0 in a cell the correction leaves undecided.")


# The production family's "correction" when a campaign's sequential design decided it.
SEQUENTIAL_CORRECTION = "sequential"


def sequential_rule_sentence(alpha: float, max_looks: int) -> str:
    """The rule sentence of a verdict decided at its sequential design's looks."""
    return (f"Each method was decided as the campaign's sequential design decided it: at the "
            f"look it stopped at (of {max_looks} planned), each direction one-sided at the "
            f"O'Brien-Fleming (Lan-DeMets) level of that look, alpha/2 = {alpha / 2:g} spent "
            f"over the looks and split (Bonferroni) over the methods x datasets; REAL needs "
            f"the gain's decision interval above 0, HARMFUL below 0, VANISHED the equivalence "
            f"test (TOST) at that level. The decision interval is the repeated confidence "
            f"interval at that level, which accounts for the looks; a wrong decisive verdict "
            f"under no effect has probability at most {alpha:g} in total over the family and "
            f"the looks. The {100 * (1 - alpha):.0f}% interval beside it is the fixed-sample "
            f"one and does not account for the looks (a method stopped early on a modest gain "
            f"overstates it).")


def method_verdict(outcomes: dict[str, str], estimates: dict[str, float],
                   sesoi: float) -> tuple[str, bool, str]:
    """Combine the per-dataset outcomes at the production rung into one verdict.

    Rules: HARMFUL if any dataset is harmful; else REAL if any is superior; else VANISHED if every
    dataset is equivalent; else INCONCLUSIVE.  Promote only a REAL method whose estimated gain
    reaches the SESOI on some superior dataset.

    Args:
        outcomes: dataset -> outcome from ``classify``.
        estimates: dataset -> gain estimate.
        sesoi: smallest effect size of interest.
    Returns:
        (verdict, promote, one-line summary).
    """
    if not outcomes:
        return (INCONCLUSIVE, False,
                "no dataset at the production rung has this method and the baseline")
    values = list(outcomes.values())
    superior = [d for d, o in outcomes.items() if o == SUPERIOR]
    if HARM in values:
        bad = ", ".join(d for d, o in outcomes.items() if o == HARM)
        return HARMFUL, False, f"HARMFUL: worse than the baseline on {bad}."
    if superior:
        big = [d for d in superior if estimates[d] >= sesoi]
        others = [d for d in outcomes if d not in superior]
        text = f"REAL: better than the baseline on {', '.join(superior)}"
        text += f" (not shown on {', '.join(others)})" if others else ""
        if not big:
            text += f"; real but below the SESOI of {100 * sesoi:.2f} points, so not promoted"
        return REAL, bool(big), text + "."
    if all(o == EQUIVALENT for o in values):
        return VANISHED, False, (f"VANISHED: within +/-{100 * sesoi:.2f} points of the baseline "
                                 "on every dataset.")
    return INCONCLUSIVE, False, ("INCONCLUSIVE: the data neither show a gain nor rule out one "
                                 f"of {100 * sesoi:.2f} points; see the seeds needed below.")
