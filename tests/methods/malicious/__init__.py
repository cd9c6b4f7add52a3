"""Deliberately malicious W2S methods: each tries one route to the gold labels.

Each returns the gold labels it found (0/1 per test id) and 0.5 where it found none, so a test
can tell from the predictions alone whether the route worked. Run them only through the tests.
"""
from __future__ import annotations

import numpy as np

from methods.base import MethodBase, NoParams


def predictions_from(found: dict[str, int], test_ids) -> np.ndarray:
    """Gold label where found, 0.5 elsewhere."""
    return np.array([float(found[i]) if i in found else 0.5 for i in test_ids])


class LabelThief(MethodBase):
    """Shared shape of the malicious methods: ``steal(data, trainer) -> {test_id: label}``."""

    Params = NoParams

    def steal(self, data, trainer) -> dict[str, int]:
        raise NotImplementedError

    def run(self, data, trainer, params) -> np.ndarray:
        try:
            found = self.steal(data, trainer)
        except Exception:  # noqa: BLE001 - a thief that trips keeps quiet
            found = {}
        return predictions_from(found, data.test_ids)
