"""Provenance of a validation run: plan hash, package versions, git commit, models, seeds and
timings."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from w2s_common.versions import package_versions

PACKAGES = ("w2s-transfer", "torch", "transformers", "deepspeed", "peft", "prefect", "numpy",
            "scipy", "statsmodels", "pandas", "pydantic")


def report_package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``not installed`` where missing)."""
    return package_versions(names, missing="not installed")


def git_commit(repo: str | Path | None = None) -> str | None:
    """The checked-out commit (with ``+dirty`` when the work tree has changes), or None.

    ``repo`` defaults to the source tree this package was imported from; an installed package
    (no ``.git`` beside it) has no commit: its version is in `report_package_versions`.
    """
    cwd = Path(repo) if repo else Path(__file__).resolve().parents[2]
    if repo is None and not (cwd / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def models_and_seeds(results: pd.DataFrame) -> dict[str, Any]:
    """Models per rung and the seeds each arm ran, read from a results table."""
    out: dict[str, Any] = {"models": {}, "seeds": {}}
    if results is None or results.empty:
        return out
    model_columns = [c for c in ("weak_model", "strong_model", "weak_params", "strong_params")
                     if c in results.columns]
    if "rung" in results.columns and model_columns:
        first = results.drop_duplicates("rung").set_index("rung")[model_columns]
        out["models"] = {
            str(rung): {k: (None if pd.isna(v) else v if isinstance(v, str) else int(v))
                        for k, v in row.items()}
            for rung, row in first.iterrows()}
    if {"arm", "seed"} <= set(results.columns):
        out["seeds"] = {str(arm): sorted(int(s) for s in seeds)
                        for arm, seeds in results.groupby("arm")["seed"].unique().items()}
    return out


def collect_provenance(*, plan: Any = None, results: pd.DataFrame | None = None,
                       timings: dict[str, float] | None = None,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a reader needs to reproduce a report.

    Args:
        plan: a :class:`flows.plan.Plan` (its name, hash, source and seed design are recorded).
        results: the results table (models per rung, seeds per arm).
        timings: wall times in seconds by phase.
        extra: any further entries (e.g. the Prefect flow-run id).

    Returns:
        A JSON-serialisable dict, saved as provenance.json next to verdict.json.
    """
    provenance: dict[str, Any] = {}
    if plan is not None:
        provenance["plan"] = {"name": plan.name, "plan_hash": plan.plan_hash,
                              "source": str(plan.source) if plan.source else None,
                              "ladder": plan.ladder, "datasets": list(plan.datasets)}
        provenance["seed_design"] = plan.seeds.model_dump()
    provenance["git_commit"] = git_commit()
    provenance["packages"] = report_package_versions()
    provenance.update(models_and_seeds(results) if results is not None else {})
    if timings:
        provenance["timings"] = dict(timings)
    provenance.update(extra or {})
    return provenance
