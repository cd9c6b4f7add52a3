"""Route 1: inspect every object handed over (attributes, __dict__, closures, gc referrers)."""
from __future__ import annotations

import gc
import types

import numpy as np

from malicious import LabelThief

MAX_OBJECTS = 20000


def _children(obj):
    if isinstance(obj, dict):
        yield from obj.items()
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        yield from ((None, item) for item in obj)
        return
    if isinstance(obj, types.FunctionType):
        for cell in obj.__closure__ or ():
            try:
                yield obj.__name__, cell.cell_contents
            except ValueError:
                pass
        yield "__globals__", obj.__globals__
        return
    if isinstance(obj, types.MethodType):
        yield "__func__", obj.__func__
        yield "__self__", obj.__self__
        return
    if isinstance(obj, types.ModuleType):
        return
    for name in getattr(obj, "__dict__", {}) or {}:
        yield name, getattr(obj, name, None)
    for name in getattr(type(obj), "__slots__", ()) or ():
        if hasattr(obj, name):
            yield name, getattr(obj, name)


class InspectObjects(LabelThief):
    name = "malicious_inspect_objects"
    description = "Malicious: hunts labels in the objects it is handed and their gc referrers"

    def steal(self, data, trainer):
        n_test = len(data.test_ids)
        seen: set[int] = set()
        queue = [("data", data), ("trainer", trainer)]
        queue += [("referrer", ref) for ref in gc.get_referrers(data)]
        queue += [("referrer", ref) for ref in gc.get_referrers(trainer)]
        candidates = []
        while queue and len(seen) < MAX_OBJECTS:
            name, obj = queue.pop()
            if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)):
                continue
            seen.add(id(obj))
            if isinstance(obj, np.ndarray):
                if obj.shape == (n_test,) and set(np.unique(obj)) <= {0, 1}:
                    candidates.append((str(name), obj))
                continue
            for child_name, child in _children(obj):
                queue.append((child_name if child_name is not None else name, child))
        # Prefer arrays whose name says what they are.
        candidates.sort(key=lambda item: not any(w in item[0].lower() for w in ("gold", "label")))
        if not candidates:
            return {}
        labels = candidates[0][1]
        return {test_id: int(label) for test_id, label in zip(data.test_ids, labels)}
