"""The run store: a ``RunSpec`` hashes to a directory that holds one arm's results.

Layout of ``<root>/<arm>/<hash>/``: ``spec.json``, ``predictions.parquet`` (test split:
example_id, prob, pred, correct), ``soft_labels.parquet`` (weak arm only: example_id, prob on
``train_unlabel``), ``metrics.json`` (accuracy, arm, rung, seed, timings, versions) and
``COMPLETE``, written last. A directory is built in a temp sibling and renamed into place, so a
killed run leaves nothing half-written, and a complete run is reused, never recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from transfer.fsutil import atomic_dir, cache_dir

Arm = Literal["weak", "ceiling", "student"]
COMPLETE = "COMPLETE"


class RunSpec(BaseModel):
    """Everything that determines an arm's result; its hash names the run's directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arm: Arm
    ladder: str
    rung: str
    dataset: str
    dataset_fingerprint: str
    seed: int = Field(ge=0)
    model: str = Field(description="the model this arm trains (weak or strong of the rung)")
    model_fingerprint: str
    hparams: dict[str, Any] = Field(default_factory=dict)
    method: str | None = None
    method_params: dict[str, Any] = Field(default_factory=dict)
    depends_on: str | None = Field(None, description="hash of the weak run a student uses")
    unjailed: bool = Field(False, description="untrusted method code ran outside the jail "
                           "(explicit opt-in; such runs are never reused by jailed campaigns)")

    def run_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        """The arm's name in results tables: weak, ceiling or the method's name."""
        return self.method if self.arm == "student" and self.method else self.arm


@dataclass(frozen=True)
class RunRecord:
    spec: RunSpec
    path: Path

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.path / "metrics.json").read_text())

    def predictions(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "predictions.parquet")

    def soft_labels(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "soft_labels.parquet")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("w2s-transfer", "torch", "transformers", "deepspeed", "peft", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "absent"
    return out


class RunStore:
    """Content-addressed storage of arm results under ``root`` (default ``<cache>/store``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "store"
        self.root.mkdir(parents=True, exist_ok=True)
        self.executed: list[RunSpec] = []  # runs computed (not reused) through this object

    def path(self, spec: RunSpec) -> Path:
        return self.root / spec.arm / spec.run_hash()

    def get(self, spec: RunSpec) -> RunRecord | None:
        path = self.path(spec)
        return RunRecord(spec, path) if (path / COMPLETE).exists() else None

    def put(self, spec: RunSpec, predictions: pd.DataFrame, metrics: dict[str, Any],
            soft_labels: pd.DataFrame | None = None, config: dict[str, Any] | None = None) -> RunRecord:
        """Write a run atomically; the directory appears complete or not at all.

        Under data parallelism every rank computes the same run; rank 0 writes it and the other
        ranks wait for it to appear.
        """
        final = self.path(spec)
        if _rank() > 0:
            return self._wait_for(spec)
        with atomic_dir(final) as tmp:
            (tmp / "spec.json").write_text(spec.model_dump_json(indent=2))
            predictions.to_parquet(tmp / "predictions.parquet", index=False)
            if soft_labels is not None:
                soft_labels.to_parquet(tmp / "soft_labels.parquet", index=False)
            metrics = {**metrics, "versions": versions()}
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
            (tmp / "config.json").write_text(json.dumps(config or {}, indent=2, sort_keys=True,
                                                        default=str))
            (tmp / COMPLETE).write_text(spec.run_hash() + "\n")
        self.executed.append(spec)
        return RunRecord(spec, final)

    def _wait_for(self, spec: RunSpec, timeout_s: float = 600.0) -> RunRecord:
        deadline = time.monotonic() + timeout_s
        while (record := self.get(spec)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {_rank()}: run {spec.run_hash()} never appeared")
            time.sleep(0.05)
        return record

    def find(self, run_hash: str) -> RunRecord | None:
        """The complete run with this hash, whatever its arm."""
        for path in self.root.glob(f"*/{run_hash}/{COMPLETE}"):
            spec = RunSpec.model_validate_json((path.parent / "spec.json").read_text())
            return RunRecord(spec, path.parent)
        return None

    def records(self, arm: str | None = None) -> list[RunRecord]:
        """Every complete run in the store (optionally of one arm)."""
        arms = [arm] if arm else [p.name for p in self.root.iterdir() if p.is_dir()]
        out = []
        for name in arms:
            for path in sorted((self.root / name).glob("*/" + COMPLETE)):
                spec = RunSpec.model_validate_json((path.parent / "spec.json").read_text())
                out.append(RunRecord(spec, path.parent))
        return out
