"""Route: walk every object the garbage collector tracks for the task's test split."""
from __future__ import annotations

import gc
import sys

from malicious import LabelThief


def _splits_on_the_stack():
    """Splits held by the callers' locals (as ``x.splits`` or ``x.task.splits``), innermost
    caller first."""
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            for holder in (value, getattr(value, "task", None)):
                splits = getattr(holder, "splits", None)
                if isinstance(splits, dict):
                    yield from splits.values()
        frame = frame.f_back


class GcSplitThief(LabelThief):
    """Walks every object the garbage collector tracks for the test ``Split`` and its labels.

    Where several objects match (another task with the same ids still alive in the process), it
    takes the one its callers hold, so that it reads the labels the current run is scored on.
    """

    name = "malicious_gc_split"
    description = "Malicious: finds the task's test Split through gc and returns its labels"

    def steal(self, data, trainer) -> dict[str, int]:
        candidates = [obj for obj in gc.get_objects()
                      if type(obj).__name__ == "Split" and getattr(obj, "name", None) == "test"
                      and tuple(obj.ids) == tuple(data.test_ids)]
        if not candidates:
            return {}
        matching = {id(obj) for obj in candidates}
        split = next((obj for obj in _splits_on_the_stack() if id(obj) in matching),
                     candidates[0])
        return {example.id: int(example.label) for example in split.examples}
