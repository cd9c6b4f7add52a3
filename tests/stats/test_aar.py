"""The sandbox importer on the released results, and on damaged copies of them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stats.aar import load_aar_cache, parse_params
from stats.analyze import analyze_table
from stats.errors import StatsInputError


def _raw_means(root: Path, dataset: str, idea: str, field: str) -> float:
    """Mean of one field over the top-level records of an idea, read straight from the JSON."""
    values = [json.loads(f.read_text())[field] for f in root.glob(f"{dataset}_{idea}/*/seed_*.json")]
    return float(np.mean(values))


def test_sandbox_pgr_of_means_reproduces_fixed_baselines(sandbox_dir):
    imported = load_aar_cache(sandbox_dir)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=200)
    for dataset in ("chat", "math"):
        weak = _raw_means(sandbox_dir, dataset, "weak_artifacts", "weak_acc")
        ceiling = _raw_means(sandbox_dir, dataset, "train_ceiling", "strong_acc")
        assert weak == pytest.approx(imported.fixed_baselines[dataset]["weak"])
        for method in ("vanilla_w2s", "train_only_on_confident_labels", "critic"):
            student = _raw_means(sandbox_dir, dataset, method, "transfer_acc")
            expected = (student - weak) / (ceiling - weak)
            if method == "vanilla_w2s":
                cell = verdict["methods"]["critic"]["cells"][0 if dataset == "chat" else 1]
                got = cell["pgr_baseline"]["estimate"]
            else:
                cells = verdict["methods"][method]["cells"]
                got = next(c for c in cells if c["dataset"] == dataset)["pgr"]["estimate"]
            assert got == pytest.approx(expected, abs=1e-9)
            assert got == pytest.approx(imported.reported_pgr[(dataset, method)], abs=1e-6)
    chat = next(c for c in verdict["methods"]["critic"]["cells"] if c["dataset"] == "chat")
    assert chat["pgr_baseline"]["estimate"] == pytest.approx(0.20, abs=0.01)


def test_nested_copy_is_ignored_and_reported(sandbox_dir):
    imported = load_aar_cache(sandbox_dir)
    counts = imported.table.groupby(["dataset", "arm"]).size()
    assert counts[("chat", "weak")] == 16 and counts[("chat", "vanilla_w2s")] == 5
    assert any("nested copy" in n for n in imported.notes)
    assert any("record says idea" in n for n in imported.notes)


def test_null_and_missing_fields_are_used_for_what_they_have(sandbox_dir, tmp_path):
    root = tmp_path / "cache_results"
    shutil.copytree(sandbox_dir, root, ignore=shutil.ignore_patterns("soft_labels"))
    vanilla = sorted(root.glob("chat_vanilla_w2s/*/seed_*.json"))
    first = json.loads(vanilla[0].read_text())
    first["transfer_acc"] = None  # accuracy still in detailed_eval
    vanilla[0].write_text(json.dumps(first))
    second = json.loads(vanilla[1].read_text())
    for key in ("transfer_acc", "detailed_eval", "step11_sft_training"):
        second.pop(key, None)  # nothing left: skipped and reported
    vanilla[1].write_text(json.dumps(second))
    vanilla[2].write_text("{not json")
    imported = load_aar_cache(root)
    rows = imported.table.query("dataset == 'chat' and arm == 'vanilla_w2s'")
    assert len(rows) == 3
    assert any("no accuracy" in n for n in imported.notes)
    assert any("unreadable JSON" in n for n in imported.notes)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0)
    assert verdict["methods"]["train_only_on_confident_labels"]["verdict"] in (
        "REAL", "VANISHED", "HARMFUL", "INCONCLUSIVE")


def test_not_a_sandbox_directory(tmp_path):
    with pytest.raises(StatsInputError, match="not a sandbox cache_results"):
        load_aar_cache(tmp_path)


def test_parse_params():
    assert parse_params("Qwen/Qwen3-4B-Base") == 4_000_000_000
    assert parse_params("Qwen/Qwen1.5-0.5B-Chat") == 500_000_000
    assert parse_params(None) is None and parse_params("gpt2") is None
