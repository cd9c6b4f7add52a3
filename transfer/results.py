"""Assemble the results table (the contract between transfer/ and stats/) from stored runs."""
from __future__ import annotations

import pandas as pd

from w2s_common import names

RESULT_COLUMNS = list(names.RESULT_COLUMNS)
# What each row's run says about itself (the same value on every row of a run): its hash in the
# store, how its method's code was isolated, the accuracy and count its metrics.json stored, and
# the fingerprints of the code that made it. results.parquet keeps them so that the gate can
# re-derive the promotion guards and check the code fingerprints from the file alone.
RUN_COLUMNS = ["run_hash", "run_kind", "run_isolation", "run_accuracy", "run_n",
               "method_fingerprint", "trainer_fingerprint"]


def run_facts(record) -> dict:
    """The :data:`RUN_COLUMNS` values of one stored run."""
    spec, metrics = record.spec, record.metrics
    isolation = "unjailed" if spec.unjailed else str(metrics.get("isolation", "builtin"))
    return {"run_hash": spec.run_hash(), "run_kind": spec.arm, "run_isolation": isolation,
            "run_accuracy": metrics.get("accuracy"), "run_n": metrics.get("n"),
            "method_fingerprint": spec.method_fingerprint,
            "trainer_fingerprint": spec.trainer_fingerprint}


def results_table(records, ladder) -> pd.DataFrame:
    """One row per (rung, dataset, seed, arm, example_id) of the test split, with rung metadata
    and the facts of the run it comes from (:data:`RUN_COLUMNS`).

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
        for key, value in run_facts(record).items():
            frame[key] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS + RUN_COLUMNS)
    table = pd.concat(frames, ignore_index=True)[RESULT_COLUMNS + RUN_COLUMNS]
    for column in ("run_accuracy", "run_n"):  # a stored non-number stays visible as NaN
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    return table.astype({"weak_params": "Int64", "strong_params": "Int64"})


def analysis_table(results: pd.DataFrame) -> pd.DataFrame:
    """The results table as the statistics read it (:data:`RESULT_COLUMNS`; run facts dropped)."""
    return results[[c for c in RESULT_COLUMNS if c in results.columns]]
