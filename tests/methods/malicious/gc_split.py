"""Route: walk every object the garbage collector tracks for the task's test split."""
from __future__ import annotations

import gc

from malicious import LabelThief


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
