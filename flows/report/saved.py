"""Load a finished run's saved outputs (verdict.json, results.parquet, provenance.json)."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flows.report.verdict import load_verdict
from flows.userfiles import read_json_object, require_regular_file
from stats.verdict_model import Verdict
from w2s_common.errors import InputError
from w2s_common.names import KEY_COLUMNS as REQUIRED_RESULT_COLUMNS


@dataclass
class SavedSummary:
    """A narrative summary read back from summary.json."""

    text: str
    source: str
    model: str | None
    fallback_reason: str | None = None


@dataclass
class SavedRun:
    """What ``w2s-transfer report DIR`` re-renders from."""

    verdict: Verdict
    results: pd.DataFrame
    provenance: dict[str, Any]
    summary: SavedSummary | None


def load_results(path: str | Path, sha256: str | None = None) -> pd.DataFrame:
    """Read results.parquet and check it has the results-table key columns.

    Args:
        path: the file.
        sha256: the digest the verdict's binding names (``binding.results_sha256``), if any:
            a table with other bytes is not the one the verdict was derived from.

    Raises:
        InputError: missing, unreadable, not a results table, or not the verdict's.
    """
    path = Path(path)
    require_regular_file(path, "results table")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the results table ({err.strerror or err})",
                         path=path) from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        # The report would show one table's figures beside another's verdicts (helper-44).
        raise InputError(f"sha256 {digest[:16]}... is not the table the verdict was derived "
                         f"from ({sha256[:16]}..., binding.results_sha256)", path=path)
    try:
        table = pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise InputError(f"cannot read parquet ({type(err).__name__}: {err})",
                         path=path) from None
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"expected results-table columns {list(REQUIRED_RESULT_COLUMNS)}, "
                         f"missing {missing}", path=path)
    return table


def load_saved_run(out_dir: str | Path) -> SavedRun:
    """Read DIR/verdict.json, DIR/results.parquet and, when present, provenance.json and
    summary.json.

    Raises:
        InputError: one line naming the missing or invalid file.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise InputError("expected an output directory holding verdict.json and results.parquet",
                         path=out)
    verdict = load_verdict(out / "verdict.json")
    if not (out / "results.parquet").exists() and not verdict.binding:
        raise InputError("no results.parquet: `report` re-renders a validate run's output; "
                         "an `analyze` output's report is its summary.md", path=out)
    bound = (verdict.binding or {}).get("results_sha256")
    results = load_results(out / "results.parquet", bound if isinstance(bound, str) else None)
    provenance_path = out / "provenance.json"
    provenance = (read_json_object(provenance_path, "provenance")
                  if provenance_path.exists() else {})
    summary = None
    summary_path = out / "summary.json"
    if summary_path.exists():
        data = read_json_object(summary_path, "summary")
        if not isinstance(data.get("text"), str) \
                or data.get("source") not in ("claude", "template"):
            raise InputError('expected {"text": str, "source": "claude"|"template", '
                             '"model": str|null}', path=summary_path)
        reason = data.get("fallback_reason")
        summary = SavedSummary(data["text"], data["source"], data.get("model"),
                               reason if isinstance(reason, str) else None)
    return SavedRun(verdict, results, provenance, summary)
