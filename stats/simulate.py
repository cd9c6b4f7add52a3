"""Simulated evaluation results with known truth, for the simulation tests and the benchmark.

Model for arm a, seed s, example i (probabilities stay inside [0, 1], so the truth is exact):

    p_asi = base_i + shift_a + u_s + v_as + 1[a is a method] * b_i
    y_asi = 1[U_asi < p_asi]

base_i ~ U(0.35, 0.75) (example difficulty), u_s ~ N(0, seed_sd) shared by all arms of a seed
(same weak labels), v_as ~ N(0, arm_seed_sd) (training noise), b_i ~ N(0, example_gain_sd)
(the method helps some examples more than others, mean zero), and U_asi shared by all arms of a
(seed, example) with probability ``shared`` (paired predictions), else independent.
The true gain of a method over the baseline is exactly shift_method - shift_baseline, and the true
PGR is (shift_method - shift_weak) / (shift_ceiling - shift_weak).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_SHIFTS = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0}


def simulate_scores(rng: np.random.Generator, n_experiments: int, n_seeds: int, n_examples: int,
                    shifts: dict[str, float], seed_sd: float = 0.02, arm_seed_sd: float = 0.01,
                    example_gain_sd: float = 0.05, shared: float = 0.5,
                    methods: tuple[str, ...] | None = None) -> np.ndarray:
    """0/1 scores, shape (n_experiments, A, n_seeds, n_examples), arms in ``shifts`` order.

    Args:
        rng: random generator.
        n_experiments, n_seeds, n_examples: sizes.
        shifts: arm -> accuracy shift (see module docstring).
        seed_sd, arm_seed_sd, example_gain_sd, shared: noise parameters.
        methods: arms that get the per-example gain term (default: all but weak/ceiling/vanilla).
    """
    arms = list(shifts)
    if methods is None:
        methods = tuple(a for a in arms if a not in DEFAULT_SHIFTS)
    e, s, i = n_experiments, n_seeds, n_examples
    base = rng.uniform(0.35, 0.75, size=(e, 1, 1, i))
    u = rng.normal(0, seed_sd, size=(e, 1, s, 1))
    v = rng.normal(0, arm_seed_sd, size=(e, len(arms), s, 1))
    b = rng.normal(0, example_gain_sd, size=(e, 1, 1, i))
    is_method = np.array([a in methods for a in arms], float)[None, :, None, None]
    shift = np.array([shifts[a] for a in arms])[None, :, None, None]
    p = np.clip(base + shift + u + v + is_method * b, 0.0, 1.0)
    common = rng.random((e, 1, s, i))
    own = rng.random((e, len(arms), s, i))
    draw = np.where(rng.random((e, 1, s, i)) < shared, common, own)
    return (draw < p).astype(np.int8)


def scores_to_table(scores: np.ndarray, arms: list[str], rung: str = "r0", dataset: str = "d0",
                    strong_params: int | None = None,
                    seeds: list[int] | None = None) -> pd.DataFrame:
    """A per-example results table from one experiment's (A, S, I) scores."""
    n_arms, n_seeds, n_ex = scores.shape
    seeds = list(range(n_seeds)) if seeds is None else seeds
    arm_idx, seed_idx, ex_idx = np.meshgrid(np.arange(n_arms), np.arange(n_seeds),
                                            np.arange(n_ex), indexing="ij")
    correct = scores.reshape(-1).astype(int)
    return pd.DataFrame({
        "rung": rung, "dataset": dataset, "seed": np.asarray(seeds)[seed_idx.ravel()],
        "arm": np.asarray(arms)[arm_idx.ravel()], "example_id": [f"e{k}" for k in ex_idx.ravel()],
        "prob": correct.astype(float), "pred": correct, "correct": correct,
        "weak_model": "weak", "strong_model": f"strong-{rung}", "weak_params": 10**8,
        "strong_params": strong_params})
