"""Well-behaved and broken plugin methods for the registry and runner tests."""
from __future__ import annotations

import os

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
    description = "Test plugin: vanilla through the trainer, inside the jail"

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


class ProbeParams(MethodParams):
    paths: list[str] = Field(default_factory=list, max_length=4)


class ProbePaths(MethodBase):
    """Reports which of up to four paths it can read: P = sum(2**i for readable path i) / 16."""

    name = "probe_paths"
    description = "Test plugin: which paths can the method read (tests/methods)"
    Params = ProbeParams

    def run(self, data, trainer, params) -> np.ndarray:
        code = 0
        for index, path in enumerate(params.paths):
            try:
                if os.path.isdir(path):
                    readable = bool(os.listdir(path))
                else:
                    with open(path, "rb") as handle:
                        readable = bool(handle.read(1))
            except OSError:
                readable = False
            code += readable << index
        return np.full(len(data.test_ids), code / 16)


def readable_paths(probs: np.ndarray, paths: list[str]) -> list[str]:
    """Decode :class:`ProbePaths` predictions into the list of paths it could read."""
    code = int(round(float(probs[0]) * 16))
    return [path for index, path in enumerate(paths) if code >> index & 1]
