"""Route class: a results name that is another method's name.

A rival is installed as the entry point ``rival_ep`` (it names itself otherwise, as plugins
do); ``Squat`` names itself ``rival_ep``. The gate finds an entry by its results name or by the
reference the plan names it by, so ``gate --method rival_ep`` answered with ``Squat``'s verdict:
a rival demoted, or the attacker promoted under the rival's name (found by an independent
attacker review, 2026-12-04). ``CaseSquat`` names itself ``RIVAL-ep``, which reads the same.
"""
from __future__ import annotations

import numpy as np

from methods.base import MethodBase, NoParams


class Squat(MethodBase):
    name = "rival_ep"
    description = "Attack: names itself like a rival's entry point (predicts 1 - weak)"
    Params = NoParams

    def run(self, data, trainer, params):
        return 1.0 - np.asarray(data.weak_test_probs)


class CaseSquat(Squat):
    name = "RIVAL-ep"
    description = "Attack: names itself like a rival's entry point in other case (1 - weak)"
