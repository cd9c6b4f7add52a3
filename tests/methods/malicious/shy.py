"""Route: read the labels in memory (as gc_split does), but only use them when they look real.

Permuted labels agree with the weak teacher at chance; real ones well above it. So the two
permuted runs of an audit see "fake" labels and answer honestly (the weak teacher's
probabilities): they agree with each other. Only a comparison with the real run catches it
(found by an independent attacker review, 2026-12-04).
"""
from __future__ import annotations

import numpy as np

from malicious import predictions_from
from malicious.gc_split import GcSplitThief


class ShyThief(GcSplitThief):
    name = "malicious_shy"
    description = "Malicious: uses the gold labels it finds only when they look real"

    def run(self, data, trainer, params) -> np.ndarray:
        weak = np.asarray(data.weak_test_probs, dtype=float)
        try:
            found = self.steal(data, trainer)
        except Exception:  # noqa: BLE001 - a thief that trips keeps quiet
            found = {}
        if len(found) == len(data.test_ids):
            labels = np.array([found[i] for i in data.test_ids])
            if np.mean((weak > 0.5) == (labels == 1)) > 0.6:
                return predictions_from(found, data.test_ids)
        return weak
