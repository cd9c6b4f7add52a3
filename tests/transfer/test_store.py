"""Run store: specs hash stably, writes are atomic, complete runs are reused."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from transfer.store import RunSpec, RunStore


def _spec(**changes):
    base = dict(arm="weak", ladder="tiny", rung="r0", dataset="synthetic", dataset_fingerprint="f",
                seed=0, model="tiny-48x2", model_fingerprint="m", hparams={"lr": 0.01})
    return RunSpec(**{**base, **changes})


def _predictions():
    return pd.DataFrame({"example_id": ["a", "b"], "prob": [0.9, 0.2], "pred": [1, 0],
                         "correct": [1, 1]})


def test_hash_is_stable_and_sensitive_to_every_field():
    assert _spec().run_hash() == _spec().run_hash()
    variants = [_spec(seed=1), _spec(arm="ceiling"), _spec(hparams={"lr": 0.02}),
                _spec(dataset_fingerprint="g"), _spec(model_fingerprint="n")]
    hashes = {v.run_hash() for v in variants} | {_spec().run_hash()}
    assert len(hashes) == len(variants) + 1


def test_unknown_spec_fields_are_rejected():
    with pytest.raises(ValueError):
        _spec(colour="red")


def test_put_then_get_roundtrip(tmp_path):
    store = RunStore(tmp_path)
    spec = _spec()
    assert store.get(spec) is None
    store.put(spec, _predictions(), {"accuracy": 1.0},
              soft_labels=_predictions()[["example_id", "prob"]])
    record = store.get(spec)
    assert record is not None
    assert record.metrics["accuracy"] == 1.0
    assert "torch" in record.metrics["versions"]
    assert list(record.predictions().columns) == ["example_id", "prob", "pred", "correct"]
    assert len(record.soft_labels()) == 2
    assert [r.spec for r in store.records("weak")] == [spec]


def test_a_failed_write_leaves_no_directory(tmp_path):
    store = RunStore(tmp_path)
    bad = pd.DataFrame({"example_id": [object()]})  # parquet cannot write it
    with pytest.raises(pa.ArrowInvalid):
        store.put(_spec(), bad, {"accuracy": 0.0})
    assert store.get(_spec()) is None
    assert not store.path(_spec()).exists()
    # Serialised before anything is staged: not even the arm's directory is made.
    assert not (tmp_path / "weak").exists() or [p.name for p in (tmp_path / "weak").iterdir()] == []
