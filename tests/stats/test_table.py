"""Results-table loading and schema checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats.errors import StatsInputError
from stats.simulate import scores_to_table, simulate_scores
from stats.table import check_table, load_table, to_aggregate


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shifts = {"weak": -0.1, "ceiling": 0.15, "vanilla": 0.0, "m": 0.02}
    return scores_to_table(simulate_scores(rng, 1, 3, 20, shifts)[0], list(shifts),
                           strong_params=10**9)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_csv_and_parquet(tmp_path, suffix):
    df = _table()
    path = tmp_path / f"results{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    loaded = load_table(path)
    assert loaded.attrs["kind"] == "examples"
    assert len(loaded) == len(df)
    assert loaded["correct"].sum() == df["correct"].sum()


def test_aggregate_form_matches_per_example_means():
    df = check_table(_table())
    agg = to_aggregate(df)
    expected = df.groupby(["rung", "dataset", "seed", "arm"])["correct"].mean()
    got = agg.set_index(["rung", "dataset", "seed", "arm"])["accuracy"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert set(agg["n"]) == {20.0}


def test_missing_column_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.csv"
    _table().drop(columns=["seed"]).to_csv(path, index=False)
    with pytest.raises(StatsInputError) as err:
        load_table(path)
    assert str(err.value).startswith(f"{path}:1: seed: missing column")


def test_bad_value_reports_csv_line(tmp_path):
    df = _table()
    df["correct"] = df["correct"].astype(object)
    df.loc[7, "correct"] = 3
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(StatsInputError, match=r":9: correct: got .*expected 0 or 1"):
        load_table(path)


def test_duplicate_rows_and_missing_arms_are_rejected():
    df = _table()
    with pytest.raises(StatsInputError, match="duplicate row"):
        check_table(pd.concat([df, df.iloc[[0]]]))
    with pytest.raises(StatsInputError, match="no 'ceiling' arm"):
        check_table(df[df["arm"] != "ceiling"])


def test_aggregate_accuracy_out_of_range():
    agg = to_aggregate(check_table(_table())).copy()
    agg.loc[2, "accuracy"] = 1.5
    with pytest.raises(StatsInputError, match=r"accuracy: got 1.5, expected a fraction"):
        check_table(pd.DataFrame(agg))


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(StatsInputError, match="no such file"):
        load_table(tmp_path / "nope.csv")
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(StatsInputError, match="cannot read"):
        load_table(bad)
