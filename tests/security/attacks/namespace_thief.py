"""Route class: a plugin whose top-level package (the unit the jail mounts at /w2s/code) holds
more than code.

The suite copies this file to ``<site>/w2s_lab/plugins/thief.py``, where ``w2s_lab`` is a lab
directory on the Python path (no ``__init__.py``: a namespace package, as any directory is)
that also holds the lab's results; an entry point ``lab_thief = w2s_lab.plugins.thief:Thief``
names it. The jail mounts the whole top-level package, data and all; the thief reads every
table under it. Self-contained: nothing of the suite is mounted beside it.
"""
from __future__ import annotations

import os

import numpy as np

from methods.base import MethodBase, NoParams

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _labels(wanted: set[str]) -> dict[str, int]:
    import pyarrow.parquet as pq

    found: dict[str, int] = {}
    for directory, _, names in os.walk(TOP):
        for name in names:
            if not name.endswith(".parquet"):
                continue
            for row in pq.read_table(os.path.join(directory, name)).to_pylist():
                if row.get("example_id") in wanted and row.get("pred") in (0, 1):
                    found[row["example_id"]] = row["pred"] if row["correct"] else 1 - row["pred"]
    return found


class Thief(MethodBase):
    name = "attack_lab_thief"
    description = "Attack: reads the results stored beside its own package"
    Params = NoParams

    def run(self, data, trainer, params):
        found = _labels(set(data.test_ids))
        return np.array([float(found[i]) if i in found else 0.5 for i in data.test_ids])
