"""Well-behaved and broken plugin methods for the registry and runner tests."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from methods.base import MethodBase, MethodParams
from transfer.sealed import MethodUnsupported


class ScaledWeakParams(MethodParams):
    scale: float = Field(1.0, ge=0.0, le=1.0)


class ScaledWeak(MethodBase):
    """Predicts scale * weak test probability (no training)."""

    name = "scaled_weak"
    description = "Test plugin: scaled weak test probabilities (tests/methods)"
    Params = ScaledWeakParams

    def run(self, data, trainer, params):
        return params.scale * np.asarray(data.weak_test_probs)


class TrainsStudent(MethodBase):
    name = "trains_student"
    description = "Test plugin: vanilla through the trainer, inside the sandbox worker"

    def run(self, data, trainer, params):
        return trainer.fit(np.asarray(data.weak_probs)).predict_test()


class Unsupported(MethodBase):
    name = "unsupported"
    description = "Test plugin: always unsupported"

    def run(self, data, trainer, params):
        raise MethodUnsupported("needs label tokens")


class Crashes(MethodBase):
    name = "crashes"
    description = "Test plugin: raises"

    def run(self, data, trainer, params):
        raise ZeroDivisionError("plugin bug")


class WrongLength(MethodBase):
    name = "wrong_length"
    description = "Test plugin: returns too few predictions"

    def run(self, data, trainer, params):
        return np.full(3, 0.5)


class NotAMethod:
    name = "not_a_method"


scaled_weak = ScaledWeak()
