"""An evaluation generator that is *not* the estimator's model, for calibrating the statistics.

``stats/simulate.py`` adds seed, example and arm effects on the probability scale, which is the
additive two-way model the estimator assumes.  This generator is a latent-threshold (probit)
model of weak-to-strong training instead, with the features that break additive models:

* **floor and ceiling items**: a fraction of test items is wrong (``p_floor``) or right
  (``p_ceiling``) for every arm and seed;
* **correlated weak-label errors**: each seed's weak model makes its own per-item errors
  ``w_si ~ N(0, weak_error_sd^2)``; the weak arm carries them fully and the two students trained
  on that seed's labels copy a share (``absorb_baseline``, ``absorb_method``) of the same errors;
* **heavy-tailed seed effects**: each (arm, seed) training run gets Student-t noise with
  ``train_df`` degrees of freedom (sd ``train_sd``), plus a Gaussian weak-label quality
  ``u_s ~ N(0, seed_sd^2)`` shared by the weak arm and both students of seed s;
* **per-item method effects**: on a fraction ``item_swap`` of the items the method sees a fresh
  difficulty (it solves different items), so the method's gain varies a lot from item to item;
* **agreement**: a share ``agreement`` of the outcome noise is common to the two students of a
  (seed, item).

For normal items, arm a on seed s and item i is correct iff

    mu_a + g_a u_s + t_as - D_i^(a) + lambda_a w_si + e_asi > 0,      e_asi ~ N(0, 1)

with g = 1 for the weak arm and the students (0 for the ceiling), lambda = 1 for the weak arm,
``absorb_*`` for the students and 0 for the ceiling, and D_i^(a) ~ N(0, item_sd^2).

The truth is exact, not simulated: with X ~ chi2_nu the t noise is Gaussian given X, so

    P(correct) = p_ceiling + (1 - p_floor - p_ceiling) E_X[ Phi(mu_a / sqrt(item_sd^2 + lambda_a^2
                 weak_error_sd^2 + 1 + g_a seed_sd^2 + train_sd^2 (nu - 2) / X)) ]

(generalised Gauss-Laguerre quadrature over X), and the arm means mu are solved so that each arm
has the requested population accuracy and the method the requested gain.  For a fixed test set
(the estimand of a seed-level analysis, which is conditional on the items) the same integral is
taken item by item with D_i^(a) fixed (``conditional_accuracy``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import optimize, special

_STUDENTS = ("baseline", "method")


def _chi2_rule(nu: float, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(X)], X ~ chi2_nu: generalised Gauss-Laguerre in x = X / 2."""
    k = nu / 2.0
    x, w = special.roots_genlaguerre(n, k - 1.0)
    return 2.0 * x, w / special.gamma(k)


@dataclass(frozen=True)
class World:
    """One (rung, dataset) population: the generator's parameters (see module docstring).

    Attributes:
        accuracy: population accuracy of the weak, ceiling and baseline arms.
        gain: true population gain of the method over the baseline (accuracy fraction).
        n_items: test items.
        other fields: noise parameters, as in the module docstring.
    """

    accuracy: dict[str, float] = field(default_factory=lambda: {
        "weak": 0.53, "baseline": 0.58, "ceiling": 0.72})
    gain: float = 0.0
    n_items: int = 1000
    p_floor: float = 0.15
    p_ceiling: float = 0.10
    item_sd: float = 1.0
    seed_sd: float = 0.08
    train_sd: float = 0.04
    train_df: float = 3.0
    weak_error_sd: float = 0.6
    absorb_baseline: float = 0.6
    absorb_method: float = 0.45
    agreement: float = 0.7
    item_swap: float = 0.3

    def with_(self, **changes) -> World:
        """A copy with some fields changed."""
        return replace(self, **changes)

    # ---- exact truth -------------------------------------------------------------------------
    def _spread(self, arm: str) -> tuple[float, float]:
        """(variance of the Gaussian part excluding item difficulty, g * 0): per arm."""
        lam = {"weak": 1.0, "ceiling": 0.0, "baseline": self.absorb_baseline,
               "method": self.absorb_method}[arm]
        g = 0.0 if arm == "ceiling" else 1.0
        return lam * lam * self.weak_error_sd ** 2 + 1.0 + g * self.seed_sd ** 2, lam

    def _normal_prob(self, margin: np.ndarray, gaussian_var: float) -> np.ndarray:
        """E_X Phi(margin / sqrt(gaussian_var + t-noise variance | X)) for an array of margins."""
        x, w = _chi2_rule(self.train_df)
        t_var = self.train_sd ** 2 * (self.train_df - 2.0) / x
        scale = np.sqrt(gaussian_var + t_var)
        return special.ndtr(np.asarray(margin, float)[..., None] / scale) @ w

    def population_accuracy(self, arm: str, mu: float) -> float:
        """Exact population accuracy of ``arm`` with latent mean ``mu`` (items and seeds random)."""
        var, _ = self._spread(arm)
        p = float(self._normal_prob(np.array(mu), var + self.item_sd ** 2))
        return self.p_ceiling + (1.0 - self.p_floor - self.p_ceiling) * p

    def latent_means(self) -> dict[str, float]:
        """mu per arm so that the population accuracies (and the method's gain) are as asked."""
        out = {}
        targets = dict(self.accuracy)
        targets["method"] = self.accuracy["baseline"] + self.gain
        lo, hi = self.p_ceiling, 1.0 - self.p_floor
        for arm, target in targets.items():
            if not lo < target < hi:
                raise ValueError(f"accuracy {target} of {arm} outside ({lo}, {hi})")
            out[arm] = optimize.brentq(
                lambda m, a=arm, t=target: self.population_accuracy(a, m) - t,
                -30.0, 30.0, xtol=1e-12)
        return out

    def conditional_accuracy(self, arm: str, mu: float, item_type: np.ndarray,
                             difficulty: np.ndarray) -> np.ndarray:
        """Exact accuracy of ``arm`` on a fixed test set, averaged over seeds (last axis = items).

        Args:
            item_type: 0 normal, 1 floor (always wrong), 2 ceiling (always right), (..., I).
            difficulty: the arm's item difficulties D_i^(a), same shape.
        Returns:
            Array of shape ``item_type.shape[:-1]``.
        """
        var, _ = self._spread(arm)
        p = self._normal_prob(mu - difficulty, var)
        p = np.where(item_type == 1, 0.0, np.where(item_type == 2, 1.0, p))
        return p.mean(axis=-1)


@dataclass
class Draw:
    """Simulated scores of several experiments of one (rung, dataset) cell.

    Attributes:
        scores: bool (E, 4, S, I), arms in ``ARMS`` order.
        item_type: (E, I) 0 normal, 1 floor, 2 ceiling.
        difficulty: (E, 2, I) item difficulties seen by the baseline (and weak, ceiling) and by
            the method.
        mu: latent means per arm.
    """

    scores: np.ndarray
    item_type: np.ndarray
    difficulty: np.ndarray
    mu: dict[str, float]


ARMS = ("weak", "ceiling", "baseline", "method")


def draw_items(world: World, rng: np.random.Generator, n_experiments: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Item types (E, I) and difficulties (E, 2, I): [baseline-like, method]."""
    e, i = n_experiments, world.n_items
    u = rng.random((e, i))
    item_type = np.where(u < world.p_floor, 1, np.where(u < world.p_floor + world.p_ceiling, 2, 0))
    base = rng.normal(0.0, world.item_sd, size=(e, i))
    fresh = rng.normal(0.0, world.item_sd, size=(e, i))
    method = np.where(rng.random((e, i)) < world.item_swap, fresh, base)
    return item_type, np.stack([base, method], axis=1)


def draw_scores(world: World, rng: np.random.Generator, n_seeds: int,
                items: tuple[np.ndarray, np.ndarray]) -> Draw:
    """Scores of every arm on ``n_seeds`` seeds for the experiments' items (see module
    docstring)."""
    item_type, difficulty = items
    e, i = item_type.shape
    s = n_seeds
    mu = world.latent_means()
    u = rng.normal(0.0, world.seed_sd, size=(e, 1, s, 1))
    t = rng.standard_t(world.train_df, size=(e, 4, s, 1)) * (
        world.train_sd * np.sqrt((world.train_df - 2.0) / world.train_df))
    w = rng.normal(0.0, world.weak_error_sd, size=(e, 1, s, i))
    lam = np.array([1.0, 0.0, world.absorb_baseline, world.absorb_method])[None, :, None, None]
    g = np.array([1.0, 0.0, 1.0, 1.0])[None, :, None, None]
    means = np.array([mu[a] for a in ARMS])[None, :, None, None]
    d = difficulty[:, [0, 0, 0, 1], None, :]
    own = rng.standard_normal((e, 4, s, i))
    common = rng.standard_normal((e, 1, s, i))
    noise = own.copy()
    a = np.sqrt(world.agreement)
    noise[:, 2:] = a * common + np.sqrt(1.0 - world.agreement) * own[:, 2:]
    latent = means + g * u + t - d + lam * w + noise
    scores = latent > 0
    kind = item_type[:, None, None, :]
    scores = np.where(kind == 1, False, np.where(kind == 2, True, scores))
    return Draw(scores, item_type, difficulty, mu)


def conditional_gain(world: World, draw: Draw) -> np.ndarray:
    """Per experiment, the method's true gain on that experiment's fixed test set."""
    base = world.conditional_accuracy("baseline", draw.mu["baseline"], draw.item_type,
                                      draw.difficulty[:, 0])
    meth = world.conditional_accuracy("method", draw.mu["method"], draw.item_type,
                                      draw.difficulty[:, 1])
    return meth - base


def to_examples_table(scores: np.ndarray, arm_names: dict[str, str], seeds: dict[str, list[int]],
                      rung: str, dataset: str, strong_params: int) -> pd.DataFrame:
    """Per-example results table of one experiment's (4, S, I) scores.

    Args:
        scores: (4, S, I) in ``ARMS`` order, seed axis = positions in the union of seeds.
        arm_names: generator arm -> table arm name (e.g. baseline -> vanilla).
        seeds: generator arm -> the seed positions it ran.
        rung, dataset, strong_params: the cell's keys and model size.
    """
    n_items = scores.shape[2]
    blocks = [(k, pos) for k, arm in enumerate(ARMS) for pos in seeds[arm]]
    arm_of = np.array([arm_names.get(ARMS[k], ARMS[k]) for k, _ in blocks], dtype=object)
    seed_of = np.array([pos for _, pos in blocks], dtype=np.int64)
    correct = np.stack([scores[k, pos] for k, pos in blocks]).astype(np.int8).ravel()
    return pd.DataFrame({
        "rung": rung, "dataset": dataset, "seed": np.repeat(seed_of, n_items),
        "arm": np.repeat(arm_of, n_items), "example_id": np.tile(np.arange(n_items), len(blocks)),
        "correct": correct, "weak_model": "weak", "strong_model": f"strong-{rung}",
        "weak_params": 10 ** 8, "strong_params": strong_params})


def to_aggregate_table(scores: np.ndarray, arm_names: dict[str, str], seeds: dict[str, list[int]],
                       rung: str, dataset: str, strong_params: int) -> pd.DataFrame:
    """Aggregate (per-seed accuracy) results table of one experiment's (4, S, I) scores."""
    acc = scores.mean(axis=2)
    rows = [{"rung": rung, "dataset": dataset, "seed": pos, "arm": arm_names.get(arm, arm),
             "accuracy": float(acc[k, pos]), "n": float(scores.shape[2]), "weak_model": "weak",
             "strong_model": f"strong-{rung}", "weak_params": 10 ** 8,
             "strong_params": strong_params}
            for k, arm in enumerate(ARMS) for pos in seeds[arm]]
    return pd.DataFrame(rows)
