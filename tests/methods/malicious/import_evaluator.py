"""Route 4: import the evaluator (whatever scores predictions against gold) and load the data."""
from __future__ import annotations

import importlib

from malicious import LabelThief

# The project's data/evaluation modules, plus the test suite's stand-in evaluator.
EVALUATOR_CANDIDATES = ("transfer.arms", "transfer.data", "transfer.store", "w2s_test_evaluator")


def _labels_of_task(task, found: dict[str, int]) -> None:
    for split in getattr(task, "splits", {}).values():
        for example in getattr(split, "examples", ()):
            found[example.id] = int(example.label)


class ImportEvaluator(LabelThief):
    name = "malicious_import_evaluator"
    description = "Malicious: imports the evaluator modules and loads the dataset itself"

    def steal(self, data, trainer):
        found: dict[str, int] = {}
        for name in EVALUATOR_CANDIDATES:
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - any failure: try the next name
                continue
            if hasattr(module, "gold_labels"):
                found.update(module.gold_labels())
            if hasattr(module, "load_task"):
                try:
                    _labels_of_task(module.load_task(None, seed=data.seed), found)
                except Exception:  # noqa: BLE001 - a thief keeps quiet
                    pass
        return {k: v for k, v in found.items() if k in set(data.test_ids)}
