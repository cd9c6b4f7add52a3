"""Group-sequential seeding: after each batch of seeds, decide (with a verdict) or continue.

Planned looks k = 1..K at information fractions t_k (default k/K, i.e. equal batches of seeds).
Alpha is spent with the Lan-DeMets (1983, Biometrika 70:659) O'Brien-Fleming-type function

    alpha(t) = 2 - 2 Phi( z_{1-alpha/2} / sqrt(t) )        (one-sided level alpha at t = 1)

or a Pocock-type alpha * ln(1 + (e - 1) t), or Bonferroni (alpha / K at every look).  Boundaries
c_k solve  P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = alpha(t_k) - alpha(t_{k-1})  under
H0 for the canonical joint distribution Z_k = W(t_k) / sqrt(t_k) (W a Brownian motion),
computed by recursive numerical integration on a grid (Armitage, McPherson & Rowe 1969;
Jennison & Turnbull 2000, ch. 19).

Each t statistic is mapped to the z scale, z = Phi^-1(T_df(t)), and compared with c_k for three
one-sided questions: gain > 0 (REAL), gain < 0 (HARMFUL), and both TOST halves |gain| < SESOI
(VANISHED).  As in ``analyze_table``, each direction is one-sided at alpha / 2 (the two-sided
(1 - alpha) procedure), and the family is the same one ``analyze_table`` corrects: every
candidate method x every dataset at the decision rung.  The design spends alpha / (2 m) per
direction on each of the m comparisons (Bonferroni, the first step of Holm), so
P(REAL | gain <= 0) <= alpha / (2 m) per comparison and P(VANISHED | |gain| >= SESOI) likewise.
At the last look the design always decides, with INCONCLUSIVE when none of the three holds.

Each look analyses only the method's and the baseline's arms on the method's own seeds (as
``analyze_table`` pairs them): another arm with fewer seeds (a method that stopped early) never
pushes the cell down to the seed-level design.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from stats.cells import POPULATION, build_cell, check_estimand
from stats.errors import StatsInputError
from stats.table import check_table, rung_metadata
from stats.tests_and_verdicts import (
    EQUIVALENT,
    HARM,
    HARMFUL,
    INCONCLUSIVE,
    REAL,
    SUPERIOR,
    UNDECIDED,
    VANISHED,
    method_verdict,
)

SPENDING = ("obrien_fleming", "pocock", "bonferroni")
_GRID = 801


def spent_alpha(t: np.ndarray, alpha: float, spending: str) -> np.ndarray:
    """Cumulative alpha spent by information fraction ``t`` (see module docstring)."""
    t = np.asarray(t, float)
    if spending == "obrien_fleming":
        return 2 - 2 * sps.norm.cdf(sps.norm.ppf(1 - alpha / 2) / np.sqrt(t))
    if spending == "pocock":
        return alpha * np.log(1 + (np.e - 1) * t)
    raise StatsInputError(f"unknown spending {spending!r} (expected {', '.join(SPENDING)})",
                          field="spending")


def boundaries(alpha: float, fractions: list[float] | np.ndarray,
               spending: str = "obrien_fleming") -> np.ndarray:
    """One-sided z boundaries c_1..c_K for the information fractions (module docstring).

    Args:
        alpha: one-sided overall level.
        fractions: increasing information fractions in (0, 1], the last one 1.
        spending: ``obrien_fleming``, ``pocock`` or ``bonferroni``.
    Returns:
        Array of K boundaries on the z scale (a fresh copy; results are cached, since the flows
        build a design per method and look).
    """
    return _boundaries(float(alpha), tuple(float(f) for f in fractions), spending).copy()


@functools.lru_cache(maxsize=256)
def _boundaries(alpha: float, fractions: tuple[float, ...], spending: str) -> np.ndarray:
    t = np.asarray(fractions, float)
    if spending == "bonferroni":
        return np.full(len(t), sps.norm.ppf(1 - alpha / len(t)))
    cum = spent_alpha(t, alpha, spending)
    increments = np.diff(np.concatenate([[0.0], cum]))
    bounds = np.empty(len(t))
    bounds[0] = sps.norm.isf(increments[0])
    # density of W(t_1) on the continuation region, then propagate look by look
    upper = bounds[0] * np.sqrt(t[0])
    grid = np.linspace(-10 * np.sqrt(t[-1]), upper, _GRID)
    dens = sps.norm.pdf(grid, scale=np.sqrt(t[0]))
    for k in range(1, len(t)):
        step = np.sqrt(t[k] - t[k - 1])

        def exit_prob(c: float, grid=grid, dens=dens, k=k, step=step) -> float:
            tail = sps.norm.sf((c * np.sqrt(t[k]) - grid) / step)
            return float(np.trapezoid(dens * tail, grid))

        target = increments[k]
        if exit_prob(0.0) < target:
            bounds[k] = 0.0
        else:
            bounds[k] = optimize.brentq(lambda c, target=target: exit_prob(c) - target, 0.0, 40.0,
                                       xtol=1e-10)
        upper = bounds[k] * np.sqrt(t[k])
        new_grid = np.linspace(-10 * np.sqrt(t[-1]), upper, _GRID)
        kernel = sps.norm.pdf((new_grid[:, None] - grid[None, :]) / step) / step
        dens = np.trapezoid(kernel * dens[None, :], grid, axis=1)
        grid = new_grid
    return bounds


def z_from_t(t_stat, df):
    """Map t statistics to the z scale by their p value: Phi^-1(T_df(t))."""
    return sps.norm.ppf(sps.t.cdf(t_stat, df))


def decide_arrays(estimate, se, df, sesoi: float, boundary: float, final: bool):
    """Vectorised decision at one look.

    Args:
        estimate, se, df: arrays (or scalars) of gain estimates, standard errors, dfs.
        sesoi: equivalence margin.
        boundary: this look's z boundary.
        final: whether this is the last planned look (undecided becomes INCONCLUSIVE).
    Returns:
        Array of outcomes: "superior", "harmful", "equivalent", "inconclusive" (final) or ""
        (continue).
    """
    estimate, se, df = (np.asarray(x, float) for x in (estimate, se, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        z_sup = z_from_t(estimate / se, df)
        z_low = z_from_t((estimate + sesoi) / se, df)
        z_high = z_from_t((sesoi - estimate) / se, df)
    out = np.full(np.broadcast(estimate, se).shape, UNDECIDED if final else "", dtype=object)
    out[np.minimum(z_low, z_high) >= boundary] = EQUIVALENT
    out[-z_sup >= boundary] = HARM
    out[z_sup >= boundary] = SUPERIOR
    return out


def look_level(alpha: float, family_size: int, look: int, max_looks: int,
               spending: str = "obrien_fleming") -> float:
    """The one-sided level a comparison is decided at when its design stopped at ``look``.

    ``alpha_k = 1 - Phi(c_k)``, with ``c_k`` the boundary at information fraction ``k / K`` of
    :func:`boundaries` for ``alpha / 2`` split (Bonferroni) over ``family_size`` comparisons:
    the level of :meth:`SequentialDesign.look`. Deciding a campaign's final verdict at its
    stopping look's level, rather than at the fixed-sample alpha / 2, keeps each direction's
    error at most alpha / (2 m) over all looks (Jennison & Turnbull 2000, ch. 9: the repeated
    confidence interval at that level is what the decision reads).

    Args:
        alpha: the two-sided level (each direction at alpha / 2 before the split).
        family_size: comparisons in the family (methods x datasets at the decision rung).
        look: the look the comparison was last analysed at, 1..max_looks.
        max_looks: the design's planned looks K (equal information fractions k / K).
        spending: as in :func:`boundaries`.

    Returns:
        alpha_k in (0, alpha / 2].
    """
    if not 1 <= int(look) <= int(max_looks):
        raise StatsInputError(f"look {look} outside 1..{max_looks}", field="look")
    fractions = np.arange(1, int(max_looks) + 1) / int(max_looks)
    bound = boundaries(alpha / 2 / max(int(family_size), 1), fractions, spending)[int(look) - 1]
    return float(sps.norm.sf(bound))


@dataclass(frozen=True)
class Decision:
    """What to do after a look.

    Attributes:
        decided: stop seeding (True) or run the next batch (False).
        verdict: REAL / VANISHED / HARMFUL / INCONCLUSIVE when decided, else None.
        look: this look's number (1-based) of ``max_looks``.
        boundary: z boundary used at this look (after the Bonferroni split over cells).
        cells: per dataset: estimate, se, df, n_seeds, z, outcome ("" = not yet decided).
        reason: one plain sentence.
    """

    decided: bool
    verdict: str | None
    look: int
    max_looks: int
    boundary: float
    cells: dict[str, dict] = field(default_factory=dict)
    reason: str = ""


class SequentialDesign:
    """A planned-looks design the seeding flow calls after each batch of seeds.

    Example::

        design = SequentialDesign(max_looks=4, alpha=0.05, sesoi=0.01, n_methods=3)
        for batch in batches:
            results = pd.concat([results, run(batch)])
            decision = design.look(results, method="aux_conf")
            if decision.decided:
                break
    """

    def __init__(self, max_looks: int, alpha: float = 0.05, sesoi: float = 0.01,
                 spending: str = "obrien_fleming", baseline: str = "vanilla",
                 fractions: list[float] | None = None, n_methods: int = 1,
                 estimand: str = POPULATION) -> None:
        """Args:
            max_looks: planned number of looks K >= 1 (equal batches of seeds by default).
            alpha: two-sided level, as in ``analyze_table``: each direction (REAL, HARMFUL, each
                TOST half) is one-sided at alpha / 2, split over the family.
            sesoi: equivalence margin in accuracy.
            spending: ``obrien_fleming`` (default), ``pocock`` or ``bonferroni``.
            baseline: baseline arm.
            fractions: information fractions of the looks (default k / K).
            n_methods: candidate methods in the campaign (decided ones included): the family
                is n_methods x datasets at the rung, as in ``analyze_table``.
            estimand: ``population`` or ``test_set``, as in ``analyze_table``.
        """
        if int(max_looks) != max_looks or max_looks < 1:
            raise StatsInputError(f"got {max_looks}, expected an integer >= 1", field="max_looks")
        if not 0 < alpha < 0.5:
            raise StatsInputError(f"got {alpha}, expected 0 < alpha < 0.5", field="alpha")
        if spending not in SPENDING:
            raise StatsInputError(f"unknown spending {spending!r} (expected "
                                  f"{', '.join(SPENDING)})", field="spending")
        if int(n_methods) != n_methods or n_methods < 1:
            raise StatsInputError(f"got {n_methods}, expected an integer >= 1", field="n_methods")
        fr = (np.arange(1, max_looks + 1) / max_looks if fractions is None
              else np.asarray(fractions, float))
        if (len(fr) != max_looks or np.any(np.diff(fr) <= 0) or fr[0] <= 0
                or abs(fr[-1] - 1) > 1e-9):
            raise StatsInputError("expected max_looks increasing fractions ending at 1",
                                  field="fractions")
        self.max_looks, self.alpha, self.sesoi = int(max_looks), alpha, sesoi
        self.spending, self.baseline, self.fractions = spending, baseline, fr
        self.n_methods = int(n_methods)
        self.estimand = check_estimand(estimand)
        self._cache: dict[int, np.ndarray] = {}
        self.looks_done = 0

    def boundaries(self, n_comparisons: int = 1) -> np.ndarray:
        """z boundaries for one direction at level alpha / 2 split (Bonferroni) over
        ``n_comparisons`` comparisons."""
        if n_comparisons not in self._cache:
            self._cache[n_comparisons] = boundaries(self.alpha / 2 / n_comparisons,
                                                    self.fractions, self.spending)
        return self._cache[n_comparisons]

    def decide(self, estimate: float, se: float, df: float, look: int,
               n_comparisons: int = 1) -> str:
        """Outcome of one comparison at ``look`` ("" = continue)."""
        bound = self.boundaries(n_comparisons)[look - 1]
        return str(decide_arrays(estimate, se, df, self.sesoi, bound, look == self.max_looks)[()])

    def look(self, results: pd.DataFrame, method: str, look: int | None = None,
             rung: str | None = None) -> Decision:
        """Analyse all seeds so far for ``method`` at the production (or given) rung.

        Args:
            results: results table (per-example or aggregate) with every seed so far.
            method: the method arm.
            look: look number (default: one more than the looks done so far).
            rung: rung to decide on (default: largest strong_params, else the last in the table).
        Returns:
            ``Decision``; alpha / 2 per direction is split over n_methods x datasets.
        """
        look = self.looks_done + 1 if look is None else int(look)
        if not 1 <= look <= self.max_looks:
            raise StatsInputError(f"look {look} outside 1..{self.max_looks}", field="look")
        df = results if results.attrs.get("kind") else check_table(results)
        meta = rung_metadata(df)
        if rung is None:
            sized = [r for r in meta if meta[r].get("strong_params")]
            rung = max(sized, key=lambda r: meta[r]["strong_params"]) if sized else list(meta)[-1]
        rows = df[df["rung"] == rung]
        datasets = sorted(rows["dataset"].unique())
        present = {str(a) for a in pd.unique(rows["arm"])}
        if method not in present or self.baseline not in present:
            raise StatsInputError(f"rung {rung!r} needs arms {method!r} and {self.baseline!r}",
                                  field="arm")
        family = self.n_methods * len(datasets)
        bound = float(self.boundaries(family)[look - 1])
        cells, outcomes, estimates = {}, {}, {}
        for ds in datasets:
            here = rows[rows["dataset"] == ds]
            seeds = set(here.loc[here["arm"] == method, "seed"])
            pair = here[here["arm"].isin([method, self.baseline]) & here["seed"].isin(seeds)]
            cell = build_cell(pair, df.attrs["kind"], rung, ds, self.estimand)
            c = cell.moments.contrast({method: 1.0, self.baseline: -1.0})
            outcome = self.decide(c.estimate, c.se, c.df, look, family)
            cells[ds] = {"estimate": c.estimate, "se": c.se, "df": c.df,
                         "n_seeds": cell.moments.n_seeds[method], "design": cell.moments.design,
                         "outcome": outcome,
                         "z": float(z_from_t(c.estimate / c.se, c.df)) if c.se > 0 else None}
            outcomes[ds], estimates[ds] = outcome, c.estimate
        self.looks_done = max(self.looks_done, look)
        final = look == self.max_looks
        if HARM in outcomes.values() or final or all(outcomes.values()):
            verdict, _, text = method_verdict({d: o or UNDECIDED for d, o in outcomes.items()},
                                              estimates, self.sesoi)
            if not final and verdict == INCONCLUSIVE:
                # some cells decided, others not: keep seeding
                return Decision(False, None, look, self.max_looks, bound, cells,
                                f"look {look}/{self.max_looks}: not all datasets decided; continue")
            return Decision(True, verdict, look, self.max_looks, bound, cells,
                            f"look {look}/{self.max_looks} (z boundary {bound:.2f}, family of "
                            f"{family}): {text}")
        return Decision(False, None, look, self.max_looks, bound, cells,
                        f"look {look}/{self.max_looks}: no boundary crossed (z boundary "
                        f"{bound:.2f}, family of {family}); run the next batch of seeds")


def simulate_design(design: SequentialDesign, seeds_per_look: int, effect: float, seed_sd: float,
                    n_sim: int, rng: np.random.Generator) -> dict:
    """Operating characteristics of ``design`` by simulation (vectorised over experiments).

    Per-seed gains are N(effect, seed_sd^2); look k analyses the first k * seeds_per_look seeds
    with a paired t statistic (df = n - 1), exactly as ``SequentialDesign.decide`` does, for one
    dataset (family n_methods x 1).  The tests exercise ``look()`` itself on results tables.

    Returns:
        {"p_real", "p_harmful", "p_vanished", "p_inconclusive", "mean_seeds", "max_seeds"}.
    """
    n_max = design.max_looks * seeds_per_look
    gains = rng.normal(effect, seed_sd, size=(n_sim, n_max))
    outcome = np.full(n_sim, "", dtype=object)
    used = np.full(n_sim, n_max)
    bounds = design.boundaries(design.n_methods)
    for k in range(1, design.max_looks + 1):
        n = k * seeds_per_look
        open_ = outcome == ""
        sample = gains[open_, :n]
        est, se = sample.mean(1), sample.std(1, ddof=1) / np.sqrt(n)
        now = decide_arrays(est, se, n - 1, design.sesoi, bounds[k - 1], k == design.max_looks)
        idx = np.flatnonzero(open_)
        outcome[idx] = now
        used[idx[now != ""]] = n
    return {"p_real": float(np.mean(outcome == SUPERIOR)),
            "p_harmful": float(np.mean(outcome == HARM)),
            "p_vanished": float(np.mean(outcome == EQUIVALENT)),
            "p_inconclusive": float(np.mean(outcome == UNDECIDED)),
            "mean_seeds": float(used.mean()), "max_seeds": n_max}


__all__ = ["simulate_design", "Decision", "SequentialDesign", "boundaries", "decide_arrays",
           "spent_alpha", "REAL", "VANISHED", "HARMFUL", "INCONCLUSIVE"]
