"""The plugin bench/jail_overhead.py runs: it unpickles the trainer (as every plugin does) and
returns the weak teacher's test probabilities, so the run measures the jail, not training."""
from __future__ import annotations

import numpy as np

from methods.base import MethodBase


class WeakCopy(MethodBase):
    name = "jail_bench_weak_copy"
    description = "Bench plugin: the weak teacher's test probabilities (bench/jail_overhead.py)"

    def run(self, data, trainer, params) -> np.ndarray:
        return np.asarray(data.weak_test_probs)
