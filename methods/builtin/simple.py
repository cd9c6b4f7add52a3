"""``confident``: train on confident weak labels only (a sandbox baseline). The reference
baseline ``vanilla`` is part of the pipeline: ``methods/reference.py``."""
from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from methods.base import MethodBase, MethodParams
from methods.registry import register_method
from transfer.sealed import StudentData, StudentTrainer
from w2s_common.errors import InputError


class ConfidentParams(MethodParams):
    low: float = Field(0.25, ge=0.0, le=1.0, description="lower edge of the dropped band")
    high: float = Field(0.75, ge=0.0, le=1.0, description="upper edge of the dropped band")

    @model_validator(mode="after")
    def _band_is_ordered(self) -> ConfidentParams:
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low={self.low}, high={self.high}")
        return self


def confident_weights(weak_probs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Weights 0 for weak P(label 1) inside the closed band [low, high], 1 outside it."""
    p = np.asarray(weak_probs, dtype=np.float64)
    return np.where((p >= low) & (p <= high), 0.0, 1.0)


@register_method
class Confident(MethodBase):
    """Train only on confident weak labels (automated W2S research sandbox baseline).

    ``L = mean_i w_i CE(f(x_i), p_w(x_i))`` with ``w_i = 0`` if ``low <= p_w(x_i) <= high``
    else 1: examples whose weak probability lies in the band are dropped.
    """

    name = "confident"
    description = ("Cross-entropy only on weak labels with P outside [low, high] (automated W2S "
                   "research sandbox baseline)")
    Params = ConfidentParams

    def run(self, data: StudentData, trainer: StudentTrainer, params: ConfidentParams
            ) -> np.ndarray:
        weights = confident_weights(data.weak_probs, params.low, params.high)
        if not weights.any():
            raise InputError(f"every weak label lies in [{params.low}, {params.high}]; nothing "
                             "is left to train on (widen the band)", field="method confident")
        return trainer.fit(np.array(data.weak_probs), weights=weights).predict_test()
