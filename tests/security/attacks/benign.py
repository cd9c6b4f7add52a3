"""A well-behaved plugin: the suite's warm-up and control (predicts the weak teacher's test
probabilities, no training)."""
from __future__ import annotations

import numpy as np

from methods.base import MethodBase, NoParams


class WeakEcho(MethodBase):
    name = "attack_control_weak_echo"
    description = "Control: the weak teacher's test probabilities (tests/security)"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.asarray(data.weak_test_probs)
