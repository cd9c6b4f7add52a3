"""Plugins for the arm-level sandbox and audit tests (test_arms_*.py); no tests live here.

This module is imported inside the sandbox worker, so it imports nothing the sandbox hides
(``transfer.data``, ``transfer.arms``, ``transfer.store``) at module level.
"""
from __future__ import annotations

import gc
import os

import numpy as np
from pydantic import Field

from malicious import LabelThief
from methods.base import MethodBase, MethodParams


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
                    readable = bool(os.listdir(path))  # a hidden directory is an empty tmpfs
                else:
                    with open(path, "rb") as handle:
                        readable = bool(handle.read(1))  # a hidden file reads as /dev/null
            except OSError:
                readable = False
            code += readable << index
        return np.full(len(data.test_ids), code / 16)


def readable_paths(probs: np.ndarray, paths: list[str]) -> list[str]:
    """Decode :class:`ProbePaths` predictions into the list of paths it could read."""
    code = int(round(float(probs[0]) * 16))
    return [path for index, path in enumerate(paths) if code >> index & 1]


class GcSplitThief(LabelThief):
    """Walks every object the garbage collector tracks for the test ``Split`` and its labels."""

    name = "malicious_gc_split"
    description = "Malicious: finds the task's test Split through gc and returns its labels"

    def steal(self, data, trainer) -> dict[str, int]:
        for obj in gc.get_objects():
            if (type(obj).__name__ == "Split" and getattr(obj, "name", None) == "test"
                    and tuple(obj.ids) == tuple(data.test_ids)):
                return {example.id: int(example.label) for example in obj.examples}
        return {}
