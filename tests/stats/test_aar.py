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
    values = [json.loads(f.read_text())[field]
              for f in root.glob(f"{dataset}_{idea}/*/seed_*.json")]
    return float(np.mean(values))


def test_sandbox_pgr_of_means_reproduces_fixed_baselines(sandbox_dir):
    imported = load_aar_cache(sandbox_dir)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=200).as_json_dict()
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
    assert any(i.kind == "idea_field" for i in imported.quality.issues)


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
    assert sorted(rows["seed"]) == [42, 45, 46]
    assert rows.loc[rows["seed"] == 42, "accuracy"].iloc[0] == pytest.approx(
        _final_eval_accuracy(vanilla[0]))
    assert any("no accuracy" in n for n in imported.notes)
    assert any("unreadable JSON" in n for n in imported.notes)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0).as_json_dict()
    chat = next(c for c in verdict["methods"]["train_only_on_confident_labels"]["cells"]
                if c["dataset"] == "chat")
    # the confident runs pair with the three surviving baseline seeds only
    assert chat["n_seeds_baseline"] == 3 and chat["design"] == "seed_level"
    assert chat["gain"]["estimate"] == pytest.approx(
        _raw_means(root, "chat", "train_only_on_confident_labels", "transfer_acc")
        - rows["accuracy"].mean())
    assert verdict["methods"]["train_only_on_confident_labels"]["verdict"] == "INCONCLUSIVE"


def _final_eval_accuracy(path: Path) -> float:
    final = json.loads(path.read_text())["detailed_eval"]["strong"]["final_eval"]
    return final.get("accuracy", final["correct"] / final["total"])


def test_math_ue_zeroshot_is_held_and_the_records_are_named(sandbox_dir):
    imported = load_aar_cache(sandbox_dir)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0,
                            notes=imported.notes, data_quality=imported.quality).as_json_dict()
    held = verdict["methods"]["ue_zeroshot"]
    assert held["verdict"] == "HOLD" and held["promote"] is False
    hold = held["hold"]
    assert hold["verdict_as_filed"] == "REAL" and hold["promote_as_filed"] is True
    math_records = [r for r in hold["records"] if r.startswith("math_ue_zeroshot/")]
    assert sorted(Path(r).name for r in math_records) == [
        "seed_42.json", "seed_43.json", "seed_44.json", "seed_45.json", "seed_46.json"]
    kinds = {(Path(i["record"]).name, i["kind"]) for i in hold["issues"]
             if i["dataset"] == "math"}
    assert ("seed_44.json", "seed_field") in kinds
    assert ("seed_45.json", "trained_on_other_seed") in kinds  # seed field 45, config says 43
    assert ("seed_42.json", "idea_field") in kinds
    by_pairing = {s["pairing"]: s["verdict"] for s in hold["sensitivity"]}
    assert by_pairing["file names (as filed)"] == "REAL"
    assert by_pairing["records' seed fields = records' stored weak/ceiling runs"] == "INCONCLUSIVE"
    assert "unpaired (no seed pairing)" in by_pairing
    assert held["reasons"][0].startswith("HOLD (data quality)")
    assert any("seed_44.json" in r for r in held["reasons"])
    # methods whose records agree with their paths are not held
    for method in ("critic", "train_only_on_confident_labels"):
        assert verdict["methods"][method]["verdict"] != "HOLD"
        assert "hold" not in verdict["methods"][method]
    # rounded accuracies are named but do not hold anything by themselves
    rounded = [i for i in imported.quality.issues if i.kind == "rounded"]
    assert rounded and all(i.arm == "ue_zeroshot" for i in rounded)
    assert any("850/1315" in i.message for i in rounded)


def _derive_code_testbed(sandbox_dir: Path, root: Path, source: str = "math") -> None:
    """A code-like testbed derived from the released records: the ``source`` directories copied
    to ``code_*``, so every record's numbers are real ones."""
    shutil.copytree(sandbox_dir, root,
                    ignore=shutil.ignore_patterns("soft_labels", "cache_results"))
    for idea_dir in list(root.glob(f"{source}_*")):
        shutil.copytree(idea_dir, root / idea_dir.name.replace(f"{source}_", "code_", 1))


def _rewrite(paths, change) -> None:
    for path in paths:
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))


def test_code_like_records_whose_seeds_contradict_their_paths_put_the_method_on_hold(
        sandbox_dir, tmp_path):
    root = tmp_path / "cache_results"
    _derive_code_testbed(sandbox_dir, root)
    confident = sorted(root.glob("code_train_only_on_confident_labels/*/seed_*.json"))

    def say_seed_42(record):
        record["seed"] = 42
        record["config"]["seed"] = 42

    _rewrite(confident[1:], say_seed_42)
    imported = load_aar_cache(root)
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0,
                            data_quality=imported.quality).as_json_dict()
    entry = verdict["methods"]["train_only_on_confident_labels"]
    assert entry["verdict"] == "HOLD" and not entry["promote"]
    assert sorted(Path(r).name for r in entry["hold"]["records"]) == [
        "seed_43.json", "seed_44.json", "seed_45.json", "seed_46.json"]
    assert all(r.startswith("code_") for r in entry["hold"]["records"])
    pairings = {s["pairing"] for s in entry["hold"]["sensitivity"]}
    assert "records' seed fields" in pairings  # their weak/ceiling runs still say 43-46


def test_a_clean_derived_testbed_is_not_held(sandbox_dir, tmp_path):
    root = tmp_path / "cache_results"
    _derive_code_testbed(sandbox_dir, root, source="chat")
    shutil.rmtree(next(root.glob("code_ue_zeroshot")))
    imported = load_aar_cache(root)
    assert not [i for i in imported.quality.issues if i.dataset == "code"]
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0,
                            data_quality=imported.quality).as_json_dict()
    for method in ("critic", "train_only_on_confident_labels"):
        assert verdict["methods"][method]["verdict"] != "HOLD"


def test_stored_baselines_that_differ_from_the_runs_are_reported(sandbox_dir, tmp_path):
    root = tmp_path / "cache_results"
    _derive_code_testbed(sandbox_dir, root)
    critic = sorted(root.glob("code_critic/*/seed_*.json"))
    _rewrite(critic, lambda r: r.update(fixed_strong_baseline=0.6950))
    imported = load_aar_cache(root)
    ceiling_mean = imported.table.query("dataset == 'code' and arm == 'ceiling'")["accuracy"].mean()
    assert abs(ceiling_mean - 0.6950) > 1e-3
    notes = [n for n in imported.quality.notes if n.startswith("code:")]
    assert len(notes) == 1
    assert "5 record(s) store fixed_strong_baseline 0.6950" in notes[0]
    assert f"average {ceiling_mean:.4f}" in notes[0]
    verdict = analyze_table(imported.table, baseline="vanilla_w2s", n_boot=0,
                            data_quality=imported.quality).as_json_dict()
    assert notes[0] in verdict["notes"]
    assert verdict["methods"]["critic"]["verdict"] != "HOLD"  # reported, not a pairing problem
    assert any("stores fixed_strong_baseline" in r for r in verdict["methods"]["critic"]["reasons"])
    # the released math records' stored baselines equal the runs' means: nothing to say
    assert not [n for n in imported.quality.notes if n.startswith("math:")]


def test_not_a_sandbox_directory(tmp_path):
    with pytest.raises(StatsInputError, match="not a sandbox cache_results"):
        load_aar_cache(tmp_path)


def test_parse_params():
    assert parse_params("Qwen/Qwen3-4B-Base") == 4_000_000_000
    assert parse_params("Qwen/Qwen1.5-0.5B-Chat") == 500_000_000
    assert parse_params(None) is None and parse_params("gpt2") is None
