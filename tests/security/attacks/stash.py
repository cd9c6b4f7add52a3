"""Route class: plugin code run in the trusted process at import time.

Before the jail, ``resolve_method`` imported a plugin's module in the process that already held
the task: this module's body walks the garbage collector at import and stashes every gold label
it can reach; ``run()`` (sandboxed or not) then returns them. With the jail, the module is
imported only inside it (describe and run), where nothing holds a label.
"""
from __future__ import annotations

import gc
import inspect

import numpy as np

from methods.base import MethodBase, NoParams

STASH: dict[str, int] = {}

for _obj in gc.get_objects():
    try:
        _splits = inspect.getattr_static(_obj, "splits", None)
        if isinstance(_splits, dict):
            for _split in _splits.values():
                for _example in getattr(_split, "examples", ()):
                    STASH[_example.id] = int(_example.label)
    except Exception:  # noqa: BLE001 - an object that bites: skip it
        continue


class ImportTimeStash(MethodBase):
    name = "attack_import_time_stash"
    description = "Attack: stashes gold labels while its module is imported"
    Params = NoParams

    def run(self, data, trainer, params):
        return np.array([float(STASH[i]) if i in STASH else 0.5 for i in data.test_ids])
