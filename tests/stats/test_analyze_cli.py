"""analyze_table end to end, the writers, and the ``analyze`` command (exit codes, outputs)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stats.analyze import analyze_table
from stats.errors import StatsInputError
from stats.simulate import scores_to_table, simulate_scores
from stats.table import check_table, to_aggregate
from stats.verdict import write_outputs

RUNGS = {"small": 5 * 10**8, "mid": 2 * 10**9, "big": 8 * 10**9}


def _ladder(gains: dict[str, dict[str, float]], n_seeds: int = 6, n_examples: int = 300,
            datasets=("d0",), seed: int = 0) -> pd.DataFrame:
    """Per-example table; gains[rung][method] is the true gain over vanilla."""
    rng = np.random.default_rng(seed)
    parts = []
    for rung, params in RUNGS.items():
        for ds in datasets:
            shifts = {"weak": -0.10, "ceiling": 0.15, "vanilla": 0.0, **gains[rung]}
            y = simulate_scores(rng, 1, n_seeds, n_examples, shifts, arm_seed_sd=0.005,
                                example_gain_sd=0.02)[0]
            parts.append(scores_to_table(y, list(shifts), rung=rung, dataset=ds,
                                         strong_params=params))
    return pd.concat(parts, ignore_index=True)


def test_verdicts_on_known_effects_and_schema():
    gains = {r: {"good": 0.08, "flat": 0.0, "bad": -0.08} for r in RUNGS}
    verdict = analyze_table(_ladder(gains, n_seeds=8, n_examples=1500), n_boot=200,
                            sesoi=0.02).as_json_dict()
    assert verdict["schema_version"] == 1 and verdict["production_rung"] == "big"
    methods = verdict["methods"]
    assert methods["good"]["verdict"] == "REAL" and methods["good"]["promote"]
    assert methods["bad"]["verdict"] == "HARMFUL"
    assert methods["flat"]["verdict"] == "VANISHED"  # its interval lies inside +/- 2 points
    cell = methods["good"]["cells"][-1]
    for key in ("rung", "dataset", "weak_model", "strong_model", "strong_params", "n_seeds",
                "n_examples", "acc", "gain", "pgr", "pgr_baseline", "mde80"):
        assert key in cell
    assert set(cell["acc"]) == {"weak", "ceiling", "baseline", "method"}
    for key in ("estimate", "ci_low", "ci_high", "p_superiority", "p_equivalence", "p_adjusted"):
        assert cell["gain"][key] is not None
    assert cell["gain"]["ci_low"] < 0.08 < cell["gain"]["ci_high"]
    assert cell["pgr"]["defined"] and cell["pgr"]["ci_low"] < 0.72 < cell["pgr"]["ci_high"]
    assert methods["good"]["trend"] is not None
    assert not any("no effect" in r.lower() for m in methods.values() for r in m["reasons"])


def test_shrinking_gain_is_flagged_and_transfer_ratio_is_below_one():
    gains = {"small": {"m": 0.10}, "mid": {"m": 0.05}, "big": {"m": 0.0}}
    verdict = analyze_table(_ladder(gains, n_seeds=8, n_examples=1000,
                                    datasets=("a", "b", "c")), n_boot=0).as_json_dict()
    trend = verdict["methods"]["m"]["trend"]
    assert trend["slope_per_decade"] < 0 and trend["shrinks_with_scale"]
    assert trend["mixedlm"] is not None and trend["mixedlm"]["slope_per_decade"] < 0
    big = [c for c in verdict["methods"]["m"]["cells"] if c["rung"] == "big"]
    assert all(c["transfer_ratio"]["estimate"] < 0.5 for c in big)
    assert any("supports the verdict" in r for r in verdict["methods"]["m"]["reasons"])


def test_missing_arm_and_unequal_seeds_degrade_honestly():
    df = _ladder({r: {"m": 0.03} for r in RUNGS})
    df = df[~((df["rung"] == "big") & (df["arm"] == "m") & (df["seed"] == 0))]
    df = df[~((df["rung"] == "mid") & (df["arm"] == "ceiling"))]
    verdict = analyze_table(df, n_boot=50).as_json_dict()
    cells = {c["rung"]: c for c in verdict["methods"]["m"]["cells"]}
    # A method that ran fewer seeds is paired with the other arms on its own seeds: the
    # two-way design survives, on 5 seeds instead of 6.
    assert cells["big"]["design"] == "two_way" and cells["big"]["n_seeds"] == 5
    assert cells["small"]["n_seeds"] == 6
    assert cells["big"]["gain"]["ci_low"] is not None
    assert not cells["mid"]["pgr"]["defined"] and cells["mid"]["pgr"]["estimate"] is None
    reasons = " ".join(verdict["methods"]["m"]["reasons"])
    assert "missing" in reasons


def test_examples_that_differ_between_arms_fall_back_to_the_seed_level():
    df = _ladder({r: {"m": 0.03} for r in RUNGS})
    drop = ((df["rung"] == "big") & (df["arm"] == "m")
            & (df["example_id"] == df["example_id"].iloc[0]))
    verdict = analyze_table(df[~drop], n_boot=50).as_json_dict()
    cells = {c["rung"]: c for c in verdict["methods"]["m"]["cells"]}
    assert cells["big"]["design"] == "seed_level"
    assert "seed level" in " ".join(verdict["methods"]["m"]["reasons"])


def test_aggregate_form_gives_same_point_estimates():
    df = check_table(_ladder({r: {"m": 0.03} for r in RUNGS}))
    per_example = analyze_table(df, n_boot=0).as_json_dict()
    aggregate = analyze_table(to_aggregate(df), n_boot=0).as_json_dict()
    a = per_example["methods"]["m"]["cells"][-1]
    b = aggregate["methods"]["m"]["cells"][-1]
    assert a["gain"]["estimate"] == pytest.approx(b["gain"]["estimate"])
    assert a["pgr"]["estimate"] == pytest.approx(b["pgr"]["estimate"])


def test_claims_shortfall_is_reported():
    df = _ladder({r: {"m": 0.0} for r in RUNGS}, n_seeds=8, n_examples=1000)
    verdict = analyze_table(df, n_boot=0, claims={"m": {"pgr": 0.9}}).as_json_dict()
    small = verdict["methods"]["m"]["cells"][0]
    assert small["claim"]["falls_short"] and small["claim"]["claimed"] == 0.9
    assert any("not reproduced" in r for r in verdict["methods"]["m"]["reasons"])
    with pytest.raises(StatsInputError, match="claims.m.pgr"):
        analyze_table(df, n_boot=0, claims={"m": {"pgr": "lots"}}).as_json_dict()


def test_bad_arguments_raise_one_line_errors():
    df = _ladder({r: {"m": 0.0} for r in RUNGS}, n_seeds=2, n_examples=20)
    with pytest.raises(StatsInputError, match="baseline arm 'nope'"):
        analyze_table(df, baseline="nope").as_json_dict()
    with pytest.raises(StatsInputError, match="sesoi"):
        analyze_table(df, sesoi=5)
    with pytest.raises(StatsInputError, match="unknown correction"):
        analyze_table(df, correction="sidak-ish")


def test_writer_outputs_are_consistent(tmp_path):
    verdict = analyze_table(_ladder({r: {"m": 0.03} for r in RUNGS}, n_seeds=3, n_examples=50),
                            n_boot=20)
    paths = write_outputs(verdict, tmp_path / "out")
    loaded = json.loads(paths["verdict"].read_text())
    assert loaded == verdict.as_json_dict()
    assert loaded["methods"]["m"]["verdict"] == verdict.methods["m"].verdict
    table = pd.read_csv(paths["estimates"])
    assert len(table) == len(RUNGS) and set(table["method"]) == {"m"}
    assert "## m:" in paths["summary"].read_text()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_cli_on_sandbox_and_on_bad_input(sandbox_dir, tmp_path):
    from flows.cli import app

    runner = CliRunner()
    out = tmp_path / "verdict"
    result = runner.invoke(app, ["analyze", str(sandbox_dir), "--out", str(out), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["baseline"] == "vanilla_w2s"
    assert set(verdict["methods"]) == {"critic", "train_only_on_confident_labels", "ue_zeroshot"}
    assert (out / "summary.md").is_file() and (out / "estimates.csv").is_file()
    # the data-quality hold reaches the file, the summary and the promotion gate
    assert "ue_zeroshot: HOLD" in result.output
    assert verdict["methods"]["ue_zeroshot"]["hold"]["verdict_as_filed"] == "REAL"
    assert "Sensitivity of the verdict" in (out / "summary.md").read_text()
    # analyze's verdicts rest on imported results, bound to no run: the gate refuses them
    gate = runner.invoke(app, ["gate", str(out / "verdict.json"), "--method", "ue_zeroshot"])
    assert gate.exit_code == 2 and "no binding block" in gate.output
    assert "from `analyze` (imported results)" in gate.output
    bad = tmp_path / "bad.csv"
    bad.write_text("rung,dataset\nx,y\n")
    result = runner.invoke(app, ["analyze", str(bad), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2
    assert "missing column" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "not a sandbox" in result.output


def test_a_single_seed_never_gives_a_decisive_verdict():
    df = _ladder({r: {"m": 0.05} for r in RUNGS}, n_seeds=1, n_examples=2000)
    verdict = analyze_table(df, n_boot=0).as_json_dict()["methods"]["m"]
    assert verdict["verdict"] == "INCONCLUSIVE" and verdict["promote"] is False
    assert "needs at least 2 seeds" in verdict["reasons"][0]


def test_cli_estimand_reaches_the_verdict_and_a_bad_one_writes_nothing(tmp_path):
    from flows.cli import app

    table = tmp_path / "results.parquet"
    _ladder({r: {"m": 0.02} for r in RUNGS}, n_seeds=4, n_examples=200).to_parquet(table)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(table), "--out", str(out), "--n-boot", "0",
                                 "--estimand", "test_set"])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["estimand"] == "test_set"
    assert {c["design"] for c in verdict["methods"]["m"]["cells"]} == {"seed_level"}
    assert "intervals are for the gain on these test items." in (out / "summary.md").read_text()
    bad = runner.invoke(app, ["analyze", str(table), "--out", str(tmp_path / "o2"),
                              "--estimand", "items"])
    assert bad.exit_code == 2 and "--estimand" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists()
    # An option is named as the user typed it (helper-44: "sesoi:" for --sesoi).
    for option, value in (("--sesoi", "2"), ("--baseline", "nope"), ("--alpha", "0.7")):
        bad = runner.invoke(app, ["analyze", str(table), "--out", str(tmp_path / "o3"),
                                  option, value])
        assert bad.exit_code == 2 and bad.output.startswith(f"error: {option}: "), bad.output
    assert not (tmp_path / "o3").exists()


def test_control_arms_of_a_validate_run_are_left_out_never_promoted(tmp_path):
    """A validate run's results.parquet analysed here showed its spike-in control as a
    candidate, "REAL (promote)": control arms are the plan's, and left out with a note."""
    from flows.cli import app

    spike = "control:synthetic_spike_in:plus8pp"
    table = tmp_path / "results.parquet"
    _ladder({r: {"m": 0.0, spike: 0.08} for r in RUNGS}, n_seeds=6,
            n_examples=1500).to_parquet(table)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(table), "--out", str(out), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert list(verdict["methods"]) == ["m"] and spike not in result.output
    assert f"control arms left out: {spike}" in (out / "summary.md").read_text()


def test_a_validate_runs_table_is_said_to_be_analysed_as_a_fixed_sample(tmp_path):
    """A campaign of several looks decides each method at its stopping look's level; analyze
    of its results.parquet (run columns present) is a fixed-sample analysis and says so."""
    from flows.cli import app

    plain = _ladder({r: {"m": 0.0} for r in RUNGS}, n_seeds=3, n_examples=300)
    plain.to_parquet(tmp_path / "plain.parquet")
    plain.assign(run_hash="h", run_kind="computed").to_parquet(tmp_path / "results.parquet")
    notes = {}
    for name in ("plain", "results"):
        out = tmp_path / f"out-{name}"
        result = CliRunner().invoke(app, ["analyze", str(tmp_path / f"{name}.parquet"), "--out",
                                          str(out), "--n-boot", "0"])
        assert result.exit_code == 0, result.output
        notes[name] = json.loads((out / "verdict.json").read_text())["notes"]
    said = "a validate run's results analysed as a fixed sample"
    assert any(said in n for n in notes["results"]) and not any(said in n for n in notes["plain"])
