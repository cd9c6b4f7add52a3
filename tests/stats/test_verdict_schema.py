"""The checked-in docs/verdict.schema.json is the verdict model's schema, and a verdict
round-trips through its JSON unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stats.analyze import analyze_table
from stats.simulate import scores_to_table, simulate_scores
from stats.verdict_model import Verdict, verdict_schema

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "verdict.schema.json"


def test_checked_in_schema_is_the_models():
    assert json.loads(SCHEMA.read_text()) == verdict_schema(), (
        "docs/verdict.schema.json is stale: regenerate it with "
        "python -c 'import json; from stats.verdict_model import verdict_schema; "
        "print(json.dumps(verdict_schema(), indent=2))' > docs/verdict.schema.json")


def _verdict() -> Verdict:
    import numpy as np

    shifts = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0, "m": 0.03}
    y = simulate_scores(np.random.default_rng(0), 1, 3, 200, shifts)[0]
    return analyze_table(scores_to_table(y, list(shifts), strong_params=10 ** 9), n_boot=20)


def test_json_round_trip_and_private_keys_stay_out():
    verdict = _verdict()
    text = verdict.to_json()
    assert not any(f'"{k}"' in text for k in ("_contrast", "_tests", "_pgr_parts", "_components"))
    again = Verdict.model_validate(json.loads(text))
    assert again.to_json() == text


def test_unknown_keys_and_coercions_are_refused():
    data = _verdict().as_json_dict()
    data["methods"]["m"]["cells"][0]["gain"]["forged"] = 1.0
    with pytest.raises(ValidationError, match="forged"):
        Verdict.model_validate(data)
    data = _verdict().as_json_dict()
    data["methods"]["m"]["promote"] = "true"
    with pytest.raises(ValidationError):
        Verdict.model_validate(data)
