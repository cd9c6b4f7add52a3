"""Assemble the results table (the contract between transfer/ and stats/) from stored runs."""
from __future__ import annotations

import pandas as pd

RESULT_COLUMNS = ["rung", "dataset", "seed", "arm", "example_id", "prob", "pred", "correct",
                  "weak_model", "strong_model", "weak_params", "strong_params"]


def results_table(records, ladder) -> pd.DataFrame:
    """One row per (rung, dataset, seed, arm, example_id) of the test split, with rung metadata.

    Args:
        records: ``transfer.store.RunRecord`` objects (weak, ceiling and student runs).
        ladder: the ``transfer.ladder.Ladder`` the runs belong to (for model names and sizes).
    """
    from transfer.ladder import model_params

    frames = []
    for record in records:
        spec = record.spec
        rung = ladder.rung(spec.rung)
        frame = record.predictions()
        frame.insert(0, "arm", spec.label)
        frame.insert(0, "seed", spec.seed)
        frame.insert(0, "dataset", spec.dataset)
        frame.insert(0, "rung", spec.rung)
        frame["weak_model"] = rung.weak.name
        frame["strong_model"] = rung.strong.name
        frame["weak_params"] = model_params(rung.weak)
        frame["strong_params"] = model_params(rung.strong)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    table = pd.concat(frames, ignore_index=True)[RESULT_COLUMNS]
    return table.astype({"weak_params": "Int64", "strong_params": "Int64"})
