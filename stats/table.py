"""Load and check results tables: the per-example form and the aggregate (per-seed accuracy) form.

The contract is in docs/architecture.md ("Results table"). Every schema problem raises
``StatsInputError`` naming the file, the first bad line, the field and what was expected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stats.errors import StatsInputError
from w2s_common.names import KEY_COLUMNS, MAX_SEED, META_COLUMNS
from w2s_common.names import REFERENCE_ARMS as RESERVED_ARMS

EXAMPLE_COLUMNS = KEY_COLUMNS + ("example_id", "correct")
AGGREGATE_COLUMNS = KEY_COLUMNS + ("accuracy", "n")

EXAMPLES = "examples"
AGGREGATE = "aggregate"

# An upper bound on a test set's size that no real evaluation reaches: a larger n is a typo, and
# 1e308 overflowed the seed-level estimates.
MAX_EXAMPLES = 10**9
PARAMS_COLUMNS = ("weak_params", "strong_params")
LABEL_COLUMNS = ("rung", "dataset", "arm")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a results table from Parquet (``.parquet``/``.pq``) or CSV (anything else).

    Args:
        path: the file.
    Returns:
        The raw DataFrame (not yet checked; see ``check_table``).
    Raises:
        StatsInputError: the file is missing, empty or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise StatsInputError("no such file (expected a results table, .parquet or .csv)",
                              path=path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        _check_unique_header(pd.read_csv(path, header=None, nrows=1, dtype=str), path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:  # pyarrow errors subclass these
        if isinstance(err, StatsInputError):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StatsInputError(f"cannot read the table: {first}", path=path) from None


def _check_unique_header(first_row: pd.DataFrame, path: Path) -> None:
    """pandas renames a repeated CSV column (``seed``, ``seed.1``), so the header is read raw."""
    names = first_row.iloc[0].tolist() if len(first_row) else []
    _refuse_duplicate_names(pd.Index(names), str(path))


def _refuse_duplicate_names(columns: pd.Index, path: str | None) -> None:
    repeated = columns[columns.duplicated()]
    if len(repeated):
        raise StatsInputError("column name repeated in the header (expected each column once)",
                              path=path, line=1, field=str(repeated[0]))


def table_kind(df: pd.DataFrame) -> str:
    """Say which form a table is in: ``"examples"`` (has example_id) or ``"aggregate"``."""
    if "example_id" in df.columns:
        return EXAMPLES
    if "accuracy" in df.columns:
        return AGGREGATE
    return EXAMPLES


def _show(value) -> str:
    """repr of a cell value without numpy type noise."""
    if isinstance(value, np.ndarray):  # a list cell of a Parquet file
        value = value.tolist()
    return repr(value.item() if isinstance(value, np.generic) else value)


def _line_of(df: pd.DataFrame, mask: np.ndarray) -> int:
    """CSV line number (header is line 1) of the first row where ``mask`` holds."""
    return int(np.flatnonzero(mask)[0]) + 2


def _require_columns(df: pd.DataFrame, needed: tuple[str, ...], path: str | None,
                     form: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise StatsInputError(
            f"missing column(s) {', '.join(missing)} (a {form} results table needs "
            f"{', '.join(needed)})", path=path, line=1, field=missing[0])


def _check_not_null(df: pd.DataFrame, columns: tuple[str, ...], path: str | None) -> None:
    for col in columns:
        bad = df[col].isna().to_numpy()
        if bad.any():
            raise StatsInputError("empty value (expected a value in every row)", path=path,
                                  line=_line_of(df, bad), field=col)


def _numbers(column: pd.Series) -> pd.Series:
    """The column as floats, NaN where a value is not a number: true/false and dates are not
    numbers here, although pandas would count them as 1/0 and nanoseconds."""
    if column.dtype.kind in "bMm":
        return pd.Series(np.nan, index=column.index)
    if column.dtype == object:
        column = column.where(~column.map(lambda v: isinstance(v, bool)), None)
    return pd.to_numeric(column, errors="coerce").astype(float)


def _refuse_first(df: pd.DataFrame, col: str, bad: np.ndarray, path: str | None,
                  what: str) -> None:
    if bad.any():
        first_bad = df[col].iloc[int(np.flatnonzero(bad)[0])]
        raise StatsInputError(f"got {_show(first_bad)}, expected {what}",
                              path=path, line=_line_of(df, bad), field=col)


def _check_integer(df: pd.DataFrame, col: str, path: str | None, low: float | None = None,
                   high: float | None = None, what: str = "an integer") -> pd.Series:
    values = _numbers(df[col])
    bad = values.isna() | (values % 1 != 0)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    _refuse_first(df, col, bad.to_numpy(), path, what)
    return values.astype(np.int64)


def _check_labels(df: pd.DataFrame, path: str | None) -> pd.DataFrame:
    """rung, dataset and arm are names: text (or whole numbers), never blank. Returns them as
    text."""
    labels = pd.DataFrame(index=df.index)
    for col in LABEL_COLUMNS:
        column = df[col]
        if column.dtype.kind in "bMmfc" or (
                column.dtype == object
                and pd.api.types.infer_dtype(column) not in ("string", "integer", "mixed-integer")):
            bad = ~column.map(lambda v: isinstance(v, (str, int, np.integer))
                              and not isinstance(v, bool)).to_numpy()
            _refuse_first(df, col, bad, path, "a name (text)")
        labels[col] = column.astype(str)
        blank = [v for v in pd.unique(labels[col]) if not v.strip()]
        if blank:
            _refuse_first(df, col, labels[col].isin(blank).to_numpy(), path,
                          "a name (not blank)")
        # A name is printed in tables and headings: a newline broke summary.md's table and a
        # trailing space made `weak ` a method (review 2026-12-05, helper-44).
        odd = [v for v in pd.unique(labels[col]) if not v.isprintable() or v != v.strip()]
        if odd:
            _refuse_first(df, col, labels[col].isin(odd).to_numpy(), path,
                          "a name of printable characters on one line, without surrounding "
                          "spaces")
    return labels


def _check_params(df: pd.DataFrame, path: str | None) -> dict[str, pd.Series]:
    """weak_params / strong_params, where given: a positive finite parameter count."""
    checked = {}
    for col in PARAMS_COLUMNS:
        if col not in df.columns:
            continue
        values = _numbers(df[col])
        bad = (df[col].notna() & ~(np.isfinite(values) & (values > 0))).to_numpy()
        _refuse_first(df, col, bad, path, "a positive finite parameter count (or empty)")
        checked[col] = values.astype(object).where(values.notna(), None)
    return checked


def _check_one_pair_per_rung(out: pd.DataFrame, path: str | None) -> None:
    """A rung is one (weak, strong) pair of models: its rows may leave a model column empty but
    not disagree on it (``rung_metadata`` reads one value per rung; the rung order and the scale
    trend rest on strong_params)."""
    for col in META_COLUMNS:
        present = out[col].notna().to_numpy()
        if not present.any():
            continue
        values = out[col][present]
        key = values.astype(float) if col in PARAMS_COLUMNS else values.astype(str)
        first = key.groupby(out["rung"][present], sort=False).transform("first")
        bad = np.zeros(len(out), dtype=bool)
        bad[present] = (key != first).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rung = out["rung"].iloc[row]
            earlier = out[col][present & (out["rung"] == rung).to_numpy()].iloc[0]
            raise StatsInputError(f"got {_show(out[col].iloc[row])}, expected {_show(earlier)} "
                                  f"as on the first row of rung {rung!r} (a rung is one pair of "
                                  "models)", path=path, line=_line_of(out, bad), field=col)


def check_table(df: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Validate a results table and return a clean copy with canonical dtypes.

    Per-example form: rung, dataset, seed, arm, example_id, correct (0/1) [+ prob, pred, models].
    Aggregate form: rung, dataset, seed, arm, accuracy in [0, 1], n >= 1 (n may be empty when
    the source did not keep it) [+ models].  Both forms need a ``weak``, a ``ceiling`` and at least
    one other arm somewhere, and no duplicated keys.

    Args:
        df: the raw table.
        path: shown in error messages.
    Returns:
        A copy with str keys, int seed, int correct (per-example) or float accuracy/n (aggregate),
        and every metadata column present (filled with None when absent).
    Raises:
        StatsInputError: on the first problem, with line and field.
    """
    where = str(path) if path is not None else None
    if len(df) == 0:
        raise StatsInputError("the table has no rows", path=where)
    kind = table_kind(df)
    needed = EXAMPLE_COLUMNS if kind == EXAMPLES else AGGREGATE_COLUMNS
    _refuse_duplicate_names(df.columns, where)
    _require_columns(df, needed, where, "per-example" if kind == EXAMPLES else "aggregate")
    df = df.reset_index(drop=True)
    _check_not_null(df, tuple(c for c in needed if c != "n"), where)
    out = _check_labels(df, where)
    out["seed"] = _check_integer(df, "seed", where, 0, MAX_SEED,
                                 f"a whole-number seed in 0..{MAX_SEED}")
    if kind == EXAMPLES:
        out["example_id"] = df["example_id"].astype(str)
        if df["correct"].dtype == bool:  # true/false is a fine spelling of correct/wrong
            df = df.assign(correct=df["correct"].astype(np.int64))
        out["correct"] = _check_integer(df, "correct", where, 0, 1, "0 or 1")
        for col in ("prob", "pred"):
            if col in df.columns:
                out[col] = df[col]
        keys = list(KEY_COLUMNS) + ["example_id"]
    else:
        acc = _numbers(df["accuracy"])
        _refuse_first(df, "accuracy", (acc.isna() | (acc < 0) | (acc > 1)).to_numpy(), where,
                      "a fraction in [0, 1]")
        out["accuracy"] = acc
        n = _numbers(df["n"])
        bad = df["n"].notna() & (n.isna() | (n < 1) | (n > MAX_EXAMPLES) | (n % 1 != 0))
        _refuse_first(df, "n", bad.to_numpy(), where,
                      f"a whole number of examples in 1..{MAX_EXAMPLES:,} (or empty)")
        out["n"] = n
        keys = list(KEY_COLUMNS)
    params = _check_params(df, where)
    for col in META_COLUMNS:
        out[col] = df[col].where(df[col].notna(), None) if col in df.columns else None
        if col in params:
            out[col] = params[col]
    _check_one_pair_per_rung(out, where)
    dup = out.duplicated(keys).to_numpy()
    if dup.any():
        raise StatsInputError(f"duplicate row for ({', '.join(keys)}) (expected one row per key)",
                              path=where, line=_line_of(out, dup), field=keys[-1])
    arms = {str(a) for a in pd.unique(out["arm"])}
    for arm in RESERVED_ARMS:
        if arm not in arms:
            raise StatsInputError(f"no '{arm}' arm (the table needs weak, ceiling and method arms)",
                                  path=where, field="arm")
    if not arms - set(RESERVED_ARMS):
        raise StatsInputError("no method arm besides weak and ceiling", path=where, field="arm")
    out.attrs["kind"] = kind
    return out


def load_table(path: str | Path) -> pd.DataFrame:
    """Read and check a results table file (see ``read_table`` and ``check_table``)."""
    return check_table(read_table(path), path)


def to_aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Collapse a checked per-example table to the aggregate form (accuracy and n per seed).

    Args:
        df: output of ``check_table``; an aggregate table is returned unchanged.
    Returns:
        One row per (rung, dataset, seed, arm) with accuracy, n and the metadata columns.
    """
    if df.attrs.get("kind", table_kind(df)) == AGGREGATE:
        return df
    grouped = df.groupby(list(KEY_COLUMNS), sort=False)
    out = grouped["correct"].agg(accuracy="mean", n="size").reset_index()
    out["n"] = out["n"].astype(float)
    meta = grouped[list(META_COLUMNS)].first().reset_index(drop=True)
    for col in META_COLUMNS:
        out[col] = meta[col].to_numpy()
    out.attrs["kind"] = AGGREGATE
    return out


def rung_metadata(df: pd.DataFrame) -> dict[str, dict]:
    """Per rung: weak_model, strong_model, weak_params, strong_params (first non-null value)."""
    meta: dict[str, dict] = {}
    for rung, rows in df.groupby("rung", sort=False):
        entry = {}
        for col in META_COLUMNS:
            values = rows[col].dropna()
            value = values.iloc[0] if len(values) else None
            if col.endswith("_params") and value is not None:
                value = int(float(value))
            entry[col] = value
        meta[str(rung)] = entry
    return meta
