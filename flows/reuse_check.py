"""Recompute a secret sample of the runs a campaign reused, and compare (``reuse_check``).

A stored run carries a manifest written by the trusted side, so it cannot be changed after it is
written without the change being seen. But a manifest proves only who wrote a run, not that the
run is what its spec computes: whoever can write the store (a machine sharing it, a person, a
job of another campaign) could put a run there whose soft labels were rewritten, with a valid
manifest, and every campaign that reuses it would rest its verdict on it (attacker review
2026-12-05, finding F1, in CI). Runs the campaign computes are pinned as their workers report
them (``Campaign.pin``); reused ones are only as trustworthy as the store's writers.

So after its last look a campaign draws ``reuse_check.cells`` of its cells (rung, dataset,
seed) among those holding a run it did not compute itself, with ``secrets.SystemRandom`` (no
writer of the store can know which), reruns each such cell's group (weak, ceiling, baseline,
the methods and controls that ran there) into an empty throw-away store, and compares every
run with the stored copy its results used: test predictions and, for the weak arm, the soft
labels it taught with. A difference beyond the tolerance stops the campaign before any verdict
is written (one line, exit 2). CPU runs are bitwise reproducible here, so ``auto`` means
``1e-4`` (largest difference of a probability) on a worker without GPUs.

A writer who planted runs before the campaign in a fraction ``f`` of the cells it reuses is
caught with probability about ``1 - (1 - f) ** cells``. A writer with the campaign's uid racing
it while the check runs is not (docs/store.md, "What no file check stops").
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from w2s_common.errors import InputError

# Largest difference of one probability between a stored run and its recomputation, per device:
# CPU runs are bitwise reproducible (measured); GPU runs are not, and no GPU was available to
# measure their spread, so that default is a setting to replace with a measured one.
AUTO_TOLERANCE = {"cpu": 1e-4, "gpu": 0.1}
SCRATCH_PREFIX = "reuse-check-"
# metrics.json keys a recomputation may change: the run's duration, the package versions.
UNCOMPARED_METRICS = frozenset({"seconds", "versions"})


class ReuseCheck(BaseModel):
    """The plan's ``reuse_check`` section (not in the plan's hash: it changes no result)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    cells: int = Field(1, ge=0, le=64, description="Cells (rung, dataset, seed) holding a "
                       "reused run that are recomputed and compared after the last look "
                       "(0: none). Planted runs in a fraction f of the reused cells are caught "
                       "with probability about 1-(1-f)^cells.")
    tolerance: Annotated[float, Field(ge=0, lt=1)] | Literal["auto"] = Field(
        "auto", description="Largest difference of a probability between a stored run and its "
        "recomputation; auto: 1e-4 on a worker without GPUs (runs are bitwise reproducible "
        "there), 0.1 with GPUs (not measured: set your engine's measured spread).")

    def threshold(self, has_gpu: bool) -> float:
        """The tolerance in force for a recomputation made with or without GPUs."""
        if self.tolerance == "auto":
            return AUTO_TOLERANCE["gpu" if has_gpu else "cpu"]
        return float(self.tolerance)


@dataclass(frozen=True, order=True)
class Cell:
    """A campaign cell: a rung, a dataset (as in ``ArmGroup.data``) and a seed."""

    rung: str
    data: str
    seed: int


class ReuseCheckFailed(InputError):
    """A recomputed run differs from the stored copy the campaign used."""


def reused_cells(records: list[Any], computed_here: set[str],
                 data_of: dict[str, str | None]) -> dict[Cell, list[str]]:
    """Cells holding a run this campaign did not compute, each with the student labels that ran
    there (``data_of``: dataset fingerprint -> the group's ``data``; "" stands for None)."""
    cells: dict[Cell, list[str]] = {}
    reused: set[Cell] = set()
    for record in records:
        spec = record.spec
        data = data_of.get(spec.dataset_fingerprint)
        cell = Cell(spec.rung, "" if data is None else data, spec.seed)
        labels = cells.setdefault(cell, [])
        if spec.arm == "student":
            labels.append(spec.label)
        if spec.run_hash() not in computed_here:
            reused.add(cell)
    return {cell: sorted(labels) for cell, labels in cells.items() if cell in reused}


def draw_cells(cells: list[Cell], count: int, rng: Any = None) -> list[Cell]:
    """``count`` of ``cells`` (all when fewer), drawn with ``secrets.SystemRandom``."""
    rng = rng if rng is not None else secrets.SystemRandom()
    return sorted(rng.sample(sorted(cells), min(count, len(cells))))


def checked_here(campaign: Any) -> set[str]:
    """The runs ``campaign`` computed from nothing another process wrote: those it published
    itself, less those whose worker used shared cache entries it had not built
    (``Campaign.cache_fed_runs``). Every other run's cell may be drawn.

    None with the ``pool`` executor: its workers' outcomes, which say what they computed and
    whether they found cache entries, come back through the shared store
    (``STORE/.groups/``), where a writer of the store can rewrite them to say "computed here,
    nothing found" and hide planted runs from the check (attacker review 2026-12-05,
    helper-41 F1); every cell of a pool campaign may be drawn."""
    if not campaign.outcomes_private:
        return set()
    return campaign.computed_runs - campaign.cache_fed_runs


def summary(campaign: Any, records: list[Any]) -> dict[str, Any]:
    """What the reuse check of ``campaign`` did (its ``records()``: the runs the results use),
    as provenance.json and the verdict's binding record it (``flows.gate_binding.
    BoundReuseCheck``): the cells asked for, the runs reused from the store, the runs computed
    from shared cache entries, the runs of a pool campaign that only its workers say they
    computed, the cells holding any of them (the cells it may draw), the cells recomputed and
    runs compared, the largest difference and the tolerance."""
    checked = campaign.reuse_checked
    data_of = {fp: data for data, fp in campaign.dataset_fingerprints.items()}
    largest = max((c["largest_difference"] for c in checked), default=None)
    used = set(campaign.runs)
    computed, fed = campaign.computed_runs, campaign.cache_fed_runs
    return {"cells_asked": campaign.plan.reuse_check.cells,
            "runs_reused": len(used - computed),
            "runs_from_shared_cache": len(used & fed),
            # a pool's runs whose computation only its workers' outcomes vouch for
            "runs_unverified": 0 if campaign.outcomes_private else len(used & computed - fed),
            "cells_eligible": len(reused_cells(records, checked_here(campaign), data_of)),
            "cells_recomputed": len({(c["rung"], c["data"], c["seed"]) for c in checked}),
            "runs_compared": len(checked),
            "largest_difference": None if largest is None else float(largest),
            "tolerance": float(checked[0]["tolerance"]) if checked else None}


def scratch_store(store: Path) -> Path:
    """A new, empty throw-away store beside the runs (``STORE/.canary/reuse-check-<hex>``,
    which ``RunStore.sweep`` removes if a killed campaign leaves it), so every worker that
    mounts the store can write it; created here, under a name no one can guess, readable and
    writable by this user only (a worker of another user cannot use it: run workers as the
    campaign's user)."""
    canary = Path(store) / ".canary"
    canary.mkdir(exist_ok=True)
    if canary.is_symlink() or not canary.is_dir():
        raise InputError(f"{canary} is not a directory of the store", path=canary)
    path = canary / f"{SCRATCH_PREFIX}{secrets.token_hex(8)}"
    path.mkdir(mode=0o700)  # exclusive: a name that exists already is an error
    return path


def compare_runs(stored: Any, fresh: Any, tolerance: float) -> tuple[float, str | None]:
    """(largest probability difference, the first problem or None) between a stored run and
    its recomputation: the test predictions and, for a weak run, its soft labels."""
    largest = 0.0
    tables = [("test predictions", stored.predictions, fresh.predictions)]
    if stored.spec.arm == "weak":
        tables.append(("soft labels", stored.soft_labels, fresh.soft_labels))
    for what, read_stored, read_fresh in tables:
        a, b = read_stored(), read_fresh()
        if list(a["example_id"]) != list(b["example_id"]):
            return largest, f"its {what} are of other examples than the recomputation's"
        diff = np.abs(a["prob"].to_numpy(dtype="float64") - b["prob"].to_numpy(dtype="float64"))
        worst = float(diff.max()) if len(diff) else 0.0
        largest = max(largest, worst)
        if not worst <= tolerance:  # NaN included
            return largest, (f"its {what} differ from the recomputation's by up to {worst:.3g} "
                             f"({int((diff > tolerance).sum())} of {len(diff)} examples beyond "
                             f"{tolerance:g})")
    # What the results table and the guards read besides the predictions (review R3e): the
    # metrics but for the run's duration and the package versions, and the training config.
    kept = {k: v for k, v in stored.metrics.items() if k not in UNCOMPARED_METRICS}
    again = {k: v for k, v in fresh.metrics.items() if k not in UNCOMPARED_METRICS}
    for key in sorted(set(kept) | set(again)):
        if key not in kept or key not in again or not _close(kept[key], again[key], tolerance):
            return largest, (f"its metrics.json {key} is {kept.get(key)!r}, the "
                             f"recomputation's {again.get(key)!r}")
    if stored.read_bytes("config.json") != fresh.read_bytes("config.json"):
        return largest, "its config.json differs from the recomputation's"
    return largest, None



def _close(a: Any, b: Any, tolerance: float) -> bool:
    """Equal, numbers within ``tolerance`` (a run's accuracy moves with its probabilities)."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) \
            or not isinstance(b, int | float):
        return a == b
    return abs(float(a) - float(b)) <= tolerance


def check_reuse(campaign: Any, submit: Any) -> None:
    """Recompute ``reuse_check.cells`` secretly drawn cells of ``campaign`` (a
    ``flows.campaign.Campaign`` after its last look) that hold a reused run, into a throw-away
    store, through ``submit`` (the campaign's executor), and compare every run with the copy
    the results used; each comparison is appended to ``campaign.reuse_checked``.

    Raises:
        ReuseCheckFailed: a stored run differs from its recomputation (no verdict is written),
            or the check's group reported a run the campaign did not use.
    """
    import shutil

    from transfer.store import RunStore

    check = campaign.plan.reuse_check
    data_of = {fp: data for data, fp in campaign.dataset_fingerprints.items()}
    cells = reused_cells(campaign.records(), checked_here(campaign), data_of)
    chosen = draw_cells(list(cells), check.cells)
    if not chosen:
        return
    entry_of = {info.label: entry for entry, info in campaign.methods.items()}
    baseline, control_labels = campaign.plan.baseline, set(campaign.plan.control_labels)
    scratch = scratch_store(campaign.store)
    groups = []
    for cell in chosen:
        labels = cells[cell]
        methods = [entry_of[x] for x in labels if x in entry_of and entry_of[x] != baseline]
        data = None if cell.data == "" else cell.data
        group = next(g for g in campaign.groups([cell.seed], methods,
                                                [x for x in labels if x in control_labels])
                     if g.rung == cell.rung and g.data == data)
        groups.append(group.model_copy(update={"rerun_into": str(scratch)}))
    used = set(campaign.runs)
    try:
        outcomes = submit(groups, campaign.out / "work", campaign.plan.compute.processes,
                          campaign.plan.compute.max_parallel_runs)
        store, fresh_store = RunStore(campaign.store), RunStore(scratch)
        for cell, group, outcome in zip(chosen, groups, outcomes, strict=True):
            campaign.check_outcome(group, outcome["runs"])  # the specs, as for any group
            tolerance = check.threshold(bool(outcome.get("gpu")))
            recomputed = set(outcome.get("recomputed", [])) - set(outcome.get("discarded", []))
            contents = outcome.get("contents") or {}
            for run_hash in outcome["runs"]:
                stored, fresh = store.find(run_hash), fresh_store.find(run_hash)
                spec = stored.spec if stored is not None else None
                where = (f"run {run_hash} ({spec.label}, rung {spec.rung}, seed {spec.seed})"
                         if spec is not None else f"run {run_hash}")
                if run_hash not in used or fresh is None or stored is None:
                    raise ReuseCheckFailed(f"reuse check: {where} was not both used by this "
                                           "campaign and recomputed by its check")
                # The copy compared must be the one the check's worker computed and published
                # (none was there before it, none replaced it), and the stored one the copy
                # the results use (review 2026-12-05, R3a).
                if run_hash not in recomputed or fresh.content_digest() != contents.get(run_hash):
                    raise ReuseCheckFailed(
                        f"reuse check: {where}: its recomputation was not the worker's own copy "
                        f"(another copy was in the check's store {scratch} before or after "
                        "it); the store has a writer other than this campaign",
                        path=fresh.path)
                if stored.content_digest() != campaign.pinned.get(run_hash):
                    raise ReuseCheckFailed(f"reuse check: {where} changed in the store during "
                                           "this campaign", path=stored.path)
                largest, problem = compare_runs(stored, fresh, tolerance)
                campaign.reuse_checked.append({
                    "run": run_hash, "arm": spec.arm, "label": spec.label, "rung": spec.rung,
                    "data": cell.data, "seed": spec.seed,
                    "reused": run_hash not in campaign.computed_runs,
                    "largest_difference": largest, "tolerance": tolerance})
                if problem is not None:
                    raise ReuseCheckFailed(
                        f"reuse check: the stored {where} is not what its spec computes: "
                        f"{problem}. Something other than this code wrote it into the store "
                        "(or training is not deterministic here: raise "
                        "reuse_check.tolerance); no verdict written", path=stored.path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
