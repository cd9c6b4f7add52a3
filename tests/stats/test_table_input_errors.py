"""Bad input to ``analyze`` and the sandbox importer: one line naming the file and the field, exit
code 2, never a traceback, and no output written (the fuzz review's cases)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from stats.aar import load_aar_cache
from stats.analyze import analyze_table
from stats.errors import StatsInputError
from stats.table import check_table, load_table

ACCURACY = {"weak": 0.60, "ceiling": 0.90, "vanilla": 0.70, "aux_conf": 0.75}


def _aggregate(n_seeds: int = 3) -> pd.DataFrame:
    """A clean aggregate table: two rungs, one dataset, every arm on every seed."""
    rows = [{"rung": rung, "dataset": "d", "seed": seed, "arm": arm,
             "accuracy": acc + 0.01 * seed + (0.02 if rung == "r2" else 0), "n": 200,
             "weak_model": "w", "strong_model": f"s{rung}", "weak_params": 10,
             "strong_params": params}
            for rung, params in (("r1", 100), ("r2", 200)) for seed in range(n_seeds)
            for arm, acc in ACCURACY.items()]
    return pd.DataFrame(rows)


def _analyze(runner_args: list[str]):
    from flows.cli import app

    return CliRunner().invoke(app, ["analyze", *runner_args])


def _refused(result, *expected: str) -> None:
    """Exit 2, one line, no traceback, and every ``expected`` piece in it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for piece in expected:
        assert piece in result.output, result.output


# --- the results table's schema check ---------------------------------------------------------

@pytest.mark.parametrize("column, value, expected", [
    ("strong_params", "abc", "strong_params: got 'abc', expected a positive finite parameter"),
    ("weak_params", "x", "weak_params: got 'x', expected a positive finite parameter"),
    ("strong_params", float("inf"), "strong_params: got inf"),
    ("strong_params", -5, "strong_params: got -5"),
    ("n", 1e308, "n: got 1e+308, expected a whole number of examples in 1..1,000,000,000"),
    ("seed", 10**30, "seed: got 1" + "0" * 30 + ", expected a whole-number seed in 0..2147483647"),
    ("seed", -1, "seed: got -1"),
    ("arm", " ", "arm: got ' ', expected a name (not blank)"),
    # helper-44: a newline broke summary.md's table, a trailing space made `weak ` a method.
    ("arm", "aux\nconf", "arm: got 'aux\\nconf', expected a name of printable characters on "
                         "one line, without surrounding spaces"),
    ("arm", "method ", "arm: got 'method ', expected a name of printable characters"),
    ("rung", "r\t1", "rung: got 'r\\t1', expected a name of printable characters"),
    # One rung, one pair of models: the rung order and the scale trend read one strong_params
    # per rung, which was the first row's whatever the others said.
    ("strong_params", 150,
     "strong_params: got 150.0, expected 100.0 as on the first row of rung 'r1'"),
    ("strong_model", "other",
     "strong_model: got 'other', expected 'sr1' as on the first row of rung 'r1'"),
])
def test_bad_cells_name_the_line_and_column(tmp_path, column, value, expected):
    table = _aggregate()
    table[column] = table[column].astype(object)
    table.loc[3, column] = value
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    with pytest.raises(StatsInputError) as err:
        load_table(path)
    assert str(err.value).startswith(f"{path}:5: ")
    assert expected in str(err.value)


@pytest.mark.parametrize("column, values, expected", [
    ("strong_params", [{"a": 1}] * 24, "strong_params: got {'a': 1}"),
    ("seed", pd.to_datetime([0] * 24), "seed: got Timestamp"),
    ("seed", [True, False] * 12, "seed: got True"),
    ("accuracy", [True] * 24, "accuracy: got True, expected a fraction"),
    ("rung", [[1, 2]] * 24, "rung: got [1, 2], expected a name"),
])
def test_cells_of_the_wrong_type_are_refused(column, values, expected):
    table = _aggregate()
    table[column] = pd.Series(list(values), dtype=object if column != "seed" else None)
    with pytest.raises(StatsInputError, match="^" + expected.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(")):
        check_table(table, None)


def test_a_true_false_correct_column_is_still_read_as_one_and_zero():
    table = _aggregate().drop(columns=["accuracy", "n"]).assign(example_id="e0", correct=True)
    assert set(check_table(table)["correct"]) == {1}


def test_a_repeated_column_name_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("rung,dataset,seed,arm,accuracy,n,seed\nr1,d,0,weak,0.6,200,9\n")
    with pytest.raises(StatsInputError, match=r"dup.csv:1: seed: column name repeated"):
        load_table(path)


def test_the_cli_refuses_bad_params_with_one_line(tmp_path):
    table = _aggregate().astype({"strong_params": object})
    table.loc[0, "strong_params"] = "abc"
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    _refused(_analyze([str(path), "--out", str(tmp_path / "o")]), "results.csv:2: strong_params")
    assert not (tmp_path / "o").exists()


# --- arguments ----------------------------------------------------------------------------------

def test_the_reference_arms_cannot_be_the_baseline():
    for arm in ("weak", "ceiling"):
        with pytest.raises(StatsInputError, match=f"baseline: '{arm}' is a reference arm"):
            analyze_table(_aggregate(), baseline=arm, n_boot=0)


def test_n_boot_has_an_upper_bound():
    with pytest.raises(StatsInputError, match=r"n_boot: got 1000000000000, expected 0 <= n_boot"):
        analyze_table(_aggregate(), n_boot=10**12)


def test_an_empty_out_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    _aggregate().to_csv(path, index=False)
    monkeypatch.chdir(tmp_path)
    _refused(_analyze([str(path), "--out", ""]), "--out: empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


# --- claims -------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    (b'{"aux_conf": {"pgr": "abc"}}', "claims.aux_conf.pgr: Input should be a valid number"),
    (b'{"aux_conf": {"pgr": true}}', "claims.aux_conf.pgr: Input should be a valid number"),
    (b'{"aux_conf": {"gain": 0.1, "bogus": 1}}', "claims.aux_conf.bogus: Extra inputs"),
    (b'{"aux_conf": {"pgr": 0.1, "gain": 0.1}}', "claims.aux_conf: Value error, expected exactly"),
    (b'{"nosuch": {"pgr": 0.5}}', "claims.nosuch: no method 'nosuch' in the results"),
    (b'{"aux_conf": {"other": {"pgr": 0.5}}}', "claims.aux_conf.other: no dataset 'other'"),
])
def test_claims_errors_name_the_claims_file(tmp_path, content, expected):
    table, claims = tmp_path / "results.csv", tmp_path / "claims.json"
    _aggregate().to_csv(table, index=False)
    claims.write_bytes(content)
    _refused(_analyze([str(table), "--out", str(tmp_path / "o"), "--claims", str(claims)]),
             str(claims), expected)
    assert not (tmp_path / "o").exists()


def test_a_fifo_as_claims_file_is_refused_without_blocking(tmp_path):
    table, claims = tmp_path / "results.csv", tmp_path / "claims.json"
    _aggregate().to_csv(table, index=False)
    os.mkfifo(claims)  # reading it would wait forever for a writer
    _refused(_analyze([str(table), "--out", str(tmp_path / "o"), "--claims", str(claims)]),
             str(claims), "not a regular file")


def test_a_good_claims_file_reaches_the_verdict(tmp_path):
    table, claims = tmp_path / "results.csv", tmp_path / "claims.json"
    _aggregate().to_csv(table, index=False)
    claims.write_text('{"aux_conf": {"d": {"gain": 0.05}}}')
    result = _analyze([str(table), "--out", str(tmp_path / "o"), "--claims", str(claims)])
    assert result.exit_code == 0, result.output
    verdict = json.loads((tmp_path / "o" / "verdict.json").read_text())
    assert verdict["methods"]["aux_conf"]["cells"][0]["claim"]["claimed"] == 0.05


# --- outputs as a set ---------------------------------------------------------------------------

def test_outputs_are_written_as_a_set_and_the_error_names_the_real_file(tmp_path):
    table = tmp_path / "results.csv"
    _aggregate().to_csv(table, index=False)
    out = tmp_path / "o"
    (out / "estimates.csv").mkdir(parents=True)
    result = _analyze([str(table), "--out", str(out)])
    _refused(result, f"{out / 'estimates.csv'}: exists and is not a file")
    assert sorted(p.name for p in out.iterdir()) == ["estimates.csv"]  # no verdict, no temp file


# --- the sandbox importer -----------------------------------------------------------------------

def _sandbox(root: Path, change=None) -> Path:
    """A small sandbox cache_results/: weak, ceiling, vanilla_w2s and critic on 3 seeds;
    ``change(record)`` edits chat_vanilla_w2s seed 0."""
    ideas = (("weak_artifacts", "weak_acc", 0.6), ("train_ceiling", "strong_acc", 0.9),
             ("vanilla_w2s", "transfer_acc", 0.7), ("critic", "transfer_acc", 0.75))
    for idea, key, base in ideas:
        eval_key = {"weak_artifacts": "weak", "train_ceiling": "ceiling"}.get(idea, "strong")
        for seed in range(3):
            acc = round(base + 0.01 * seed, 3)
            record = {key: acc, "seed": seed, "config": {"seed": seed}, "idea_name": idea,
                      "weak_model": "Qwen/Qwen1.5-0.5B-Chat", "strong_model": "Qwen/Qwen3-4B-Base",
                      "detailed_eval": {eval_key: {"final_eval": {
                          "accuracy": acc, "correct": round(acc * 1000), "total": 1000}}}}
            if change and (idea, seed) == ("vanilla_w2s", 0):
                change(record)
            folder = root / "cache_results" / f"chat_{idea}" / "k1"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"seed_{seed}.json").write_text(json.dumps(record))
    return root


def _final(record: dict) -> dict:
    return record["detailed_eval"]["strong"]["final_eval"]


def _set(*keys, value):
    def change(record):
        node = record
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return change


def _only_step11(value):
    def change(record):
        record.pop("transfer_acc")
        record.pop("detailed_eval")
        record["step11_sft_training"] = {"transfer_acc": value}
    return change


FE = ("detailed_eval", "strong", "final_eval")


@pytest.mark.parametrize("change, field", [
    (_set(*FE, value=[1]), "detailed_eval.strong.final_eval"),
    (_set(*FE, value="x"), "detailed_eval.strong.final_eval"),
    (_set(*FE, "correct", value="5"), "detailed_eval.strong.final_eval.correct"),
    (_set(*FE, "correct", value=float("nan")), "detailed_eval.strong.final_eval.correct"),
    (_set(*FE, "correct", value=1001), "detailed_eval.strong.final_eval: Value error, correct"),
    (_set(*FE, "total", value="abc"), "detailed_eval.strong.final_eval.total"),
    (_set(*FE, "total", value=float("inf")), "detailed_eval.strong.final_eval.total"),
    (_set(*FE, "total", value=-5), "detailed_eval.strong.final_eval.total"),
    (_set("step1_data_loading", "test_samples", value="abc"), "step1_data_loading.test_samples"),
    (_only_step11("abc"), "step11_sft_training.transfer_acc"),
    (_only_step11([1]), "step11_sft_training.transfer_acc"),
    (_set("transfer_acc", value=True), "transfer_acc"),
    (_set("transfer_acc", value=1.5), "transfer_acc"),
    (_set("seed", value=[1]), "seed"),
    (_set("seed", value={"a": 1}), "seed"),
    (_set("config", value={"seed": [2]}), "config.seed"),
    (_set("weak_model", value=123), "weak_model"),
    (_set("strong_model", value=["a"]), "strong_model"),
    (_set("strong_model", value="Qwen-1" + "0" * 400 + "B"), "strong_model"),
    (_set("fixed_weak_baseline", value=float("nan")), "fixed_weak_baseline"),
])
def test_a_record_field_of_the_wrong_type_or_range_names_the_file_and_field(tmp_path, change,
                                                                            field):
    root = _sandbox(tmp_path, change)
    record = root / "cache_results" / "chat_vanilla_w2s" / "k1" / "seed_0.json"
    with pytest.raises(StatsInputError) as err:
        load_aar_cache(root)
    assert str(err.value).startswith(f"{record}: {field}")
    assert len(str(err.value).splitlines()) == 1


def test_a_seed_file_name_out_of_range_is_refused(tmp_path):
    root = _sandbox(tmp_path)
    record = root / "cache_results" / "chat_critic" / "k1" / "seed_0.json"
    huge = record.with_name("seed_" + "9" * 30 + ".json")
    record.rename(huge)
    with pytest.raises(StatsInputError, match=f"^{huge}: seed 9+ in the file name"):
        load_aar_cache(root)


def test_a_deeply_nested_record_is_skipped_as_unreadable(tmp_path):
    root = _sandbox(tmp_path)
    (root / "cache_results" / "chat_critic" / "k1" / "seed_0.json").write_text(
        "[" * 100_000 + "]" * 100_000)
    imported = load_aar_cache(root)
    assert any("seed_0.json: unreadable JSON (nested too deeply)" in n for n in imported.notes)


def test_the_cli_refuses_a_bad_record_with_one_line(tmp_path):
    root = _sandbox(tmp_path, _set(*FE, "total", value=-5))
    _refused(_analyze([str(root), "--out", str(tmp_path / "o")]), "seed_0.json: ",
             "detailed_eval.strong.final_eval.total")


def test_a_rung_may_leave_its_models_empty_on_some_rows(tmp_path):
    table = _aggregate().astype({"strong_params": object, "strong_model": object})
    table.loc[5, ["strong_params", "strong_model"]] = None
    path = tmp_path / "ok.csv"
    table.to_csv(path, index=False)
    assert load_table(path).shape[0] == len(table)


def test_a_method_and_baseline_sharing_no_seed_are_said_to_be_compared_unpaired():
    table = _aggregate(6)
    table = table[~((table["arm"] == "aux_conf") & (table["seed"] < 3))
                  & ~((table["arm"] == "vanilla") & (table["seed"] >= 3))]
    verdict = analyze_table(table.reset_index(drop=True), baseline="vanilla", sesoi=0.01)
    notes = [n for c in verdict.methods["aux_conf"].cells for n in c.notes]
    expected = "aux_conf and vanilla share fewer than two seeds: compared unpaired"
    assert any(expected in n for n in notes), notes
    # One shared seed is not paired either (seed_level_moments pairs on two or more).
    one = _aggregate(6)
    one = one[~((one["arm"] == "aux_conf") & (one["seed"] < 2))
              & ~((one["arm"] == "vanilla") & (one["seed"] >= 3))]
    verdict = analyze_table(one.reset_index(drop=True), baseline="vanilla", sesoi=0.01)
    assert any(expected in n for c in verdict.methods["aux_conf"].cells for n in c.notes)
    # Same seeds everywhere: no such note.
    verdict = analyze_table(_aggregate(6), baseline="vanilla", sesoi=0.01)
    assert not [n for c in verdict.methods["aux_conf"].cells for n in c.notes
                if "seeds" in n and "pair" in n]
