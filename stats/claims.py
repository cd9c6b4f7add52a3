"""Does a replication at the discovery rung fall short of the number claimed where a method was
found?

Claims made on a reused test set are selected (the best of many tries), so they are biased upwards;
the replication is the honest number.  One-sided tests, H0: the true value reaches the claim,
at level alpha / 2 in ``analyze_table`` (the claim lies above the two-sided (1 - alpha) interval).

* PGR claim P (a = method - weak, d = ceiling - weak, d > 0): the Fieller pivot
  T = (a - P d) / sqrt(v_aa - 2 P v_ad + P^2 v_dd) ~ t_df, p = T_df(T)  (Fieller 1954).
* Gain claim G: p = T_df((g^ - G) / se).

Claims are given as ``{method: {"pgr": x}}`` or ``{method: {"gain": x}}`` (every dataset), or per
dataset ``{method: {dataset: {"pgr": x}}}``.  A claims file (``load_claims``) is checked whole
before the analysis: its shape, its numbers, and that every method and dataset it names is in
the results (``check_claim_targets``), each error naming the file.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from scipy import stats as sps

from stats.errors import StatsInputError
from stats.table import RESERVED_ARMS
from w2s_common.errors import TOO_LONG_NUMBER
from w2s_common.validation import validation_input_error

CLAIM_KINDS = ("pgr", "gain")
FILE_SHAPE = '{method: {"pgr": x}}, {method: {"gain": x}} or {method: {dataset: {"pgr": x}}}'

# strict: true is not the number 1, and "0.4" is not a number
ClaimedNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Claim(BaseModel):
    """One claimed number: exactly one of pgr and gain."""

    model_config = ConfigDict(extra="forbid")
    pgr: ClaimedNumber | None = None
    gain: ClaimedNumber | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Claim:
        if (self.pgr is None) == (self.gain is None):
            raise ValueError(f"expected exactly one of {', '.join(CLAIM_KINDS)}")
        return self


# Tags no dataset is named, so that they can be dropped from an error's location.
_ONE, _PER_DATASET = "<claim>", "<per-dataset claims>"


def _entry_kind(entry: Any) -> str:
    is_claim = not isinstance(entry, Mapping) or not entry or any(k in entry for k in CLAIM_KINDS)
    return _ONE if is_claim else _PER_DATASET


_CLAIMS_FILE = TypeAdapter(dict[str, Annotated[
    Annotated[_Claim, Tag(_ONE)] | Annotated[dict[str, _Claim], Tag(_PER_DATASET)],
    Discriminator(_entry_kind)]])


def load_claims(path: str | Path) -> dict[str, Any]:
    """Read and check a claims file (JSON, module docstring).

    Raises:
        StatsInputError: not UTF-8, not JSON, or not of the shape above; the message names the
            file and the field.
    """
    if not Path(path).is_file():  # missing, or a FIFO or device that would block the read
        raise StatsInputError("claims file not found or not a regular file", path=path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise StatsInputError(f"cannot read the claims file ({err.strerror or err})",
                              path=path) from None
    except UnicodeDecodeError as err:
        raise StatsInputError(f"not UTF-8 text (byte {err.start}); expected a JSON file",
                              path=path) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise StatsInputError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    except ValueError:  # an integer past Python's conversion limit
        raise StatsInputError(TOO_LONG_NUMBER, path=path) from None
    except RecursionError:
        raise StatsInputError(f"JSON nested too deeply; expected {FILE_SHAPE}",
                              path=path) from None
    return check_claims(raw, path)


def check_claims(raw: Any, path: str | Path | None = None) -> dict[str, Any]:
    """``raw`` as claims, checked whole (shape and numbers); ``path`` is named in errors."""
    if not isinstance(raw, Mapping):
        raise StatsInputError(f"expected a JSON object {FILE_SHAPE}", path=path, line=1)
    try:
        _CLAIMS_FILE.validate_python(dict(raw))
    except ValidationError as err:
        raise validation_input_error(err, path=path, prefix=("claims",),
                                     drop=(_ONE, _PER_DATASET)) from None
    return dict(raw)


def check_claim_targets(claims: Mapping[str, Any], table: pd.DataFrame, baseline: str,
                        path: str | Path | None = None) -> None:
    """Every method and dataset a claim names is in the results (a claim that matches nothing
    would be ignored without a word).

    Raises:
        StatsInputError: naming the claim and what the results hold.
    """
    methods = sorted({str(a) for a in pd.unique(table["arm"])} - set(RESERVED_ARMS) - {baseline})
    datasets = sorted({str(d) for d in pd.unique(table["dataset"])})
    for method, entry in claims.items():
        if method not in methods:
            raise StatsInputError(f"no method {method!r} in the results; expected one of "
                                  f"{', '.join(methods)}", path=path, field=f"claims.{method}")
        for dataset in entry:
            if dataset not in CLAIM_KINDS and dataset not in datasets:
                raise StatsInputError(f"no dataset {dataset!r} in the results; expected one of "
                                      f"{', '.join(datasets)}", path=path,
                                      field=f"claims.{method}.{dataset}")


def claim_for(claims: Mapping | None, method: str, dataset: str) -> tuple[str, float] | None:
    """The (kind, value) claimed for ``method`` on ``dataset``, or None.

    Raises:
        StatsInputError: a claim that is not a number or names no known kind.
    """
    if not claims or method not in claims:
        return None
    entry = claims[method]
    if not isinstance(entry, Mapping):
        raise StatsInputError(f"expected a mapping like {{'pgr': 0.4}}, got {entry!r}",
                              field=f"claims.{method}")
    if dataset in entry and isinstance(entry[dataset], Mapping):
        entry, where = entry[dataset], f"claims.{method}.{dataset}"
    else:
        where = f"claims.{method}"
    found = [k for k in CLAIM_KINDS if k in entry]
    if not found:
        if any(isinstance(v, Mapping) for v in entry.values()):
            return None  # per-dataset claims, none for this dataset
        raise StatsInputError(f"expected one of {', '.join(CLAIM_KINDS)}", field=where)
    kind = found[0]
    try:
        value = float(entry[kind])
    except (TypeError, ValueError):
        raise StatsInputError(f"expected a number, got {entry[kind]!r}",
                              field=f"{where}.{kind}") from None
    if not np.isfinite(value):
        raise StatsInputError("expected a finite number", field=f"{where}.{kind}")
    return kind, value


def pgr_claim_p(a: float, d: float, v_aa: float, v_dd: float, v_ad: float, df: float,
                claimed: float) -> float:
    """One-sided p value that the true PGR is below ``claimed`` (Fieller pivot, module
    docstring)."""
    var = v_aa - 2 * claimed * v_ad + claimed ** 2 * v_dd
    if not np.isfinite(var) or var <= 0:
        return float("nan")
    return float(sps.t.cdf((a - claimed * d) / np.sqrt(var), df))


def gain_claim_p(gain: float, se: float, df: float, claimed: float) -> float:
    """One-sided p value that the true gain is below ``claimed``."""
    if not np.isfinite(se) or se <= 0:
        return float("nan")
    return float(sps.t.cdf((gain - claimed) / se, df))


def claim_sentence(method: str, dataset: str, kind: str, claimed: float, replicated: float | None,
                   p: float, alpha: float) -> str:
    """Plain words for the claim check; a shortfall mentions selection on a reused test set.

    ``alpha`` is the one-sided level of the shortfall test."""
    rep = "undefined" if replicated is None else f"{replicated:.3f}"
    if np.isfinite(p) and p < alpha:
        return (f"{dataset}: the claimed {kind.upper()} of {claimed:.3f} is not reproduced at the "
                f"discovery rung (replication {rep}, one-sided p = {p:.3g}); claims picked on a "
                "reused test set are inflated by selection.")
    return (f"{dataset}: the replication ({kind.upper()} {rep}) is consistent with the claimed "
            f"{claimed:.3f} (one-sided p = {p:.3g}).")
