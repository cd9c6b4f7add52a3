"""The verdict from a results table and a plan: the one derivation the flow and the gate share.

``validate`` writes verdict.json with :func:`derive_verdict` over the runs it computed; ``gate
--plan`` calls the same function on results.parquet (and, given a store, on the stored runs it
names) and compares what it gets with the file. Whatever the statistics engine does, both sides
run it with the same settings (:func:`analysis_settings`), so the comparison stays right when
``stats`` changes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from stats.verdict_model import (
    ControlDetails,
    LabelAudit,
    MethodVerdict,
    PlanId,
    Sequential,
    Verdict,
)
from transfer.results import RUN_COLUMNS, analysis_table
from w2s_common import names
from w2s_common.errors import InputError

PREDICTION_COLUMNS = list(names.PREDICTION_COLUMNS)


class StatsView:
    """The plan as the statistics see it: the baseline by its name in the results (a plugin
    baseline is named by its reference in the plan and by its own name in the results); every
    other attribute is the plan's."""

    def __init__(self, plan, labels: dict[str, str] | None = None) -> None:
        self._plan = plan
        self.baseline = (labels or {}).get(plan.baseline, plan.baseline)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plan, name)


def analysis_settings(plan, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The arguments of ``stats.analyze_table`` a plan fixes (``labels``: plan entry name ->
    the method's name in the results)."""
    claims = ({(labels or {}).get(name, name): claim_entry(claim)
               for name, claim in plan.claims.items()} if plan.claims else None)
    return {"baseline": StatsView(plan, labels).baseline, "sesoi": plan.sesoi,
            "alpha": plan.alpha, "correction": plan.correction, "claims": claims,
            "estimand": plan.estimand}


def claim_entry(claim) -> dict[str, Any]:
    """A plan's claim in ``stats.claims``' form: ``{"pgr": x}`` for every dataset, or
    ``{dataset: {"pgr": x}}`` when the claim names the dataset it was made on (so it is not
    tested against the method's results on another)."""
    from flows.plan import SYNTHETIC
    from transfer.data.synthetic import results_name

    if claim.dataset is None:
        return {"pgr": claim.pgr}
    # The plan says `synthetic`; results say `synthetic-salted` where the task is salted.
    dataset = results_name() if claim.dataset == SYNTHETIC else claim.dataset
    return {dataset: {"pgr": claim.pgr}}


def candidates_table(plan, table: pd.DataFrame, labels: dict[str, str] | None = None
                     ) -> pd.DataFrame:
    """The results the candidates are analysed on: no control arm, and only the seeds some
    candidate ran (controls that outlast every candidate add weak, ceiling and baseline runs of
    later seeds). So the candidates' verdicts are exactly those of the same plan without
    controls."""
    return without_arms(table, set(plan.control_labels), StatsView(plan, labels).baseline)


def without_arms(table: pd.DataFrame, arms: set[str], baseline: str) -> pd.DataFrame:
    """``table`` without ``arms`` (controls) and with only the seeds some remaining candidate
    ran; unchanged when there is nothing to drop."""
    if not arms:
        return table
    table = table[~table["arm"].isin(arms)]
    candidate_seeds = set(table.loc[~table["arm"].isin({"weak", "ceiling", baseline}), "seed"])
    return table[table["seed"].isin(candidate_seeds)].reset_index(drop=True)


def control_alpha(plan) -> float:
    """The level a control is analysed at: the plan's alpha over the number of candidates, so
    that with Holm over its datasets its first step is the level a lone candidate's gain faces
    in the candidates' family (alpha / 2 per direction / (candidates x datasets))."""
    return plan.alpha / max(1, len(plan.method_names))


def derive_controls(plan, table: pd.DataFrame, runs: list[Any],
                    labels: dict[str, str] | None = None,
                    audits: dict[str, list[LabelAudit]] | None = None,
                    sequential: Sequential | None = None) -> dict[str, MethodVerdict]:
    """Each control analysed against the baseline on its own (outside the candidates' Holm
    family, at :func:`control_alpha`), with the guards, marked and never promoted.

    Returns:
        Control label -> its ``stats.MethodVerdict`` (a method's, plus ``control``:
        ``transfer.controls.ControlSpec.verdict_entry``, and ``alpha``).
    """
    from flows.guards import apply_promotion_guards, untrusted_baseline
    from stats import analyze_table

    settings = analysis_settings(plan, labels)
    settings.update(alpha=control_alpha(plan), claims=None)
    baseline = settings["baseline"]
    out: dict[str, MethodVerdict] = {}
    for entry in plan.controls:
        spec = entry.spec()
        own = table[table["arm"] == spec.label]
        if own.empty:
            continue
        rows = table[table["seed"].isin(set(own["seed"])) &
                     table["arm"].isin(["weak", "ceiling", baseline, spec.label])]
        verdict = analyze_table(rows.reset_index(drop=True), **settings, sequential=sequential)
        verdict.audits = audits
        apply_promotion_guards(verdict, runs, untrusted_baseline(plan))
        decided = verdict.methods[spec.label]
        decided.control = spec.marker
        decided.control_details = ControlDetails.model_validate(spec.verdict_entry())
        decided.alpha = settings["alpha"]
        decided.promote = False
        decided.reasons.append(
            f"a control ({spec.kind}) of the baseline {baseline}: it tests the pipeline, is "
            "outside the candidates' multiplicity family (tested at alpha "
            f"{settings['alpha']:g}, a lone candidate's level), and is never promoted")
        out[spec.label] = decided
    return out


def derive_verdict(plan, results: pd.DataFrame, runs: list[Any],
                   labels: dict[str, str] | None = None, *,
                   sequential: Sequential | None = None,
                   audits: Mapping[str, list[Any]] | None = None) -> Verdict:
    """``stats.analyze_table`` over the results with the plan's settings, then the promotion
    guards over the runs (``flows.guards``), the jail mode and the plan's identity. The
    candidates are analysed without the controls (:func:`candidates_table`); each control on
    its own (:func:`derive_controls`, under ``controls``).

    Args:
        plan: a ``flows.plan.Plan``.
        results: the results table (``transfer.results.results_table``; run columns are ignored
            by the statistics).
        runs: the runs the table was built from: ``transfer.store.RunRecord`` objects, or
            :class:`TableRun` objects read back from the table.
        labels: plan entry name -> the method's name in the results (plugins name themselves).
        sequential: the campaign's sequential record (``replay_looks`` rebuilds it).
        audits: results name -> its label-leak audit cells (``stats.verdict_model.LabelAudit``
            or their JSON: ``Campaign.audits``, or the verdict file's for a re-derivation);
            ignored when the plan turned the audit off. Under ``audit: {mode: campaign}`` a
            method without one is not promoted (``flows.guards``).

    Returns:
        The ``stats.Verdict``, without the binding.
    """
    from flows.guards import apply_promotion_guards, untrusted_baseline
    from stats import analyze_table

    table = analysis_table(results)
    verdict = analyze_table(candidates_table(plan, table, labels),
                            **analysis_settings(plan, labels), sequential=sequential)
    checked = None
    if plan.audit.mode == "campaign":
        checked = {name: [LabelAudit.model_validate(a) for a in cells]
                   for name, cells in sorted((audits or {}).items())}
        verdict.audits = checked
    apply_promotion_guards(verdict, runs, untrusted_baseline(plan))
    if plan.controls:
        verdict.controls = derive_controls(plan, table, runs, labels, checked, sequential)
    verdict.jail = plan.jail.mode
    verdict.plan = PlanId(name=plan.name, plan_hash=plan.plan_hash)
    return verdict


def sequential_record(plan, looks: list[dict[str, Any]],
                      seeds_used: dict[str, list[int]]) -> Sequential:
    """The campaign's sequential record: its looks, the seeds each method ran, the budget and
    the looks its design planned (the final analysis decides each method at the level of the
    look it stopped at: ``stats.analyze_table``)."""
    from flows.campaign import seed_batches

    planned = len(seed_batches(plan.seeds.initial, plan.seeds.batch, plan.seeds.max))
    return Sequential.model_validate({"looks": looks, "seeds_used": seeds_used,
                                      "seed_budget": plan.seeds.max, "max_looks": planned})


def replay_looks(plan, results: pd.DataFrame, labels: dict[str, str]
                 ) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """The sequential looks of a campaign, replayed from its final results table.

    At look k the campaign's table held exactly the runs of the seeds of the first k batches
    (decided methods got no later seeds), in the same order, so filtering the final table by
    seed gives the table each look saw.

    Args:
        plan: the plan.
        results: the final results table.
        labels: plan entry name -> the method's name in the table (a plugin names itself).

    Returns:
        ``(looks, seeds_used)`` as the campaign records them in ``verdict.sequential``.
    """
    from flows.campaign import look_at_methods, seed_batches

    batches = seed_batches(plan.seeds.initial, plan.seeds.batch, plan.seeds.max)
    undecided = [labels.get(name, name) for name in plan.method_names] + plan.control_labels
    seeds_used: dict[str, list[int]] = {m: [] for m in undecided}
    looks: list[dict[str, Any]] = []
    seen: list[int] = []
    for look, seeds in enumerate(batches, start=1):
        seen += seeds
        for method in undecided:
            seeds_used[method].extend(seeds)
        table = analysis_table(results[results["seed"].isin(seen)]).reset_index(drop=True)
        decisions = look_at_methods(StatsView(plan, labels), table, undecided, look,
                                    len(batches))
        looks.append({"look": look, "seeds": list(seeds), "decisions": decisions})
        undecided = [m for m in undecided if not decisions[m]["decided"]]
        if not undecided:
            break
    return looks, seeds_used


@dataclass(frozen=True)
class TableSpec:
    """The parts of a ``RunSpec`` the guards and the binding read, as results.parquet holds them."""

    arm: str
    label: str
    rung: str
    dataset: str
    seed: int
    unjailed: bool
    method_fingerprint: str | None
    trainer_fingerprint: str | None
    hash: str

    def run_hash(self) -> str:
        return self.hash


@dataclass(frozen=True)
class TableRun:
    """A run as results.parquet records it: its rows and the facts of its run columns. Quacks
    like ``transfer.store.RunRecord`` for the promotion guards."""

    spec: TableSpec
    rows: pd.DataFrame
    isolation: str
    accuracy: float | None
    n: int | float | None

    @property
    def metrics(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "n": self.n, "isolation": self.isolation}

    def predictions(self) -> pd.DataFrame:
        return self.rows[PREDICTION_COLUMNS].reset_index(drop=True)

    def checked_accuracy(self, tolerance: float = 1e-12) -> float:
        from transfer.store import StoreIntegrityError, accuracy_problems

        predictions = self.predictions()
        problems = accuracy_problems(predictions, self.metrics, tolerance)
        if problems:
            raise StoreIntegrityError("inconsistent run: " + "; ".join(problems),
                                      path=f"results.parquet[run {self.spec.hash}]")
        return float(predictions["correct"].mean())


def _number(value: Any) -> float | int | None:
    if value is None or pd.isna(value):
        return None
    value = float(value)
    return int(value) if value.is_integer() else value


def table_runs(results: pd.DataFrame, source: str = "results.parquet") -> list[TableRun]:
    """The runs results.parquet names, in the order they first appear, each with its rows.

    Raises:
        InputError: the run columns are missing, or one run's rows disagree about its facts.
    """
    missing = [c for c in RUN_COLUMNS if c not in results.columns]
    if missing:
        raise InputError(f"no run column(s) {', '.join(missing)}: written by an older version "
                         "of w2s-transfer, or not by validate; rerun validate", path=source)
    runs = []
    for run_hash, rows in results.groupby("run_hash", sort=False):
        facts = rows[RUN_COLUMNS + list(names.KEY_COLUMNS)].drop_duplicates()
        if len(facts) != 1:
            raise InputError(f"run {run_hash}: its rows disagree about the run "
                             f"({len(facts)} different sets of run facts)", path=source)
        row = facts.iloc[0]
        isolation = str(row["run_isolation"])
        spec = TableSpec(arm=str(row["run_kind"]), label=str(row["arm"]), rung=str(row["rung"]),
                         dataset=str(row["dataset"]), seed=int(row["seed"]),
                         unjailed=isolation == "unjailed",
                         method_fingerprint=None if pd.isna(row["method_fingerprint"])
                         else str(row["method_fingerprint"]),
                         trainer_fingerprint=None if pd.isna(row["trainer_fingerprint"])
                         else str(row["trainer_fingerprint"]),
                         hash=str(run_hash))
        runs.append(TableRun(spec, rows, isolation, _number(row["run_accuracy"]),
                             _number(row["run_n"])))
    return runs


def stored_runs(results: pd.DataFrame, store_root, source: str = "results.parquet") -> list[Any]:
    """The stored runs results.parquet names, each checked against its manifest and against the
    table: the table's rows must be the run's predictions and its run columns the run's facts.

    Raises:
        InputError: a run missing from the store, failing its manifest, or differing from the
            table (one line naming the run and what differs).
    """
    from transfer.results import run_facts
    from transfer.store import RunStore

    store = RunStore(store_root)
    records = []
    for run in table_runs(results, source):
        record = store.find(run.spec.hash)
        if record is None:
            raise InputError(f"run {run.spec.hash} ({run.spec.label}, rung {run.spec.rung}, "
                             f"seed {run.spec.seed}) is not in the store {store.root}", path=source)
        spec = record.spec
        expected = {"label": spec.label, "arm": spec.arm, "rung": spec.rung,
                    "dataset": spec.dataset, "seed": spec.seed,
                    "method_fingerprint": spec.method_fingerprint,
                    "trainer_fingerprint": spec.trainer_fingerprint}
        for key, value in expected.items():
            if getattr(run.spec, key) != value:
                raise InputError(f"run {run.spec.hash}: the table says {key} "
                                 f"{getattr(run.spec, key)!r}, the stored run {value!r}",
                                 path=source)
        facts = run_facts(record)
        stored_facts = {"run_isolation": facts["run_isolation"],
                        "run_accuracy": _number(facts["run_accuracy"]),
                        "run_n": _number(facts["run_n"])}
        table_facts = {"run_isolation": run.isolation, "run_accuracy": run.accuracy,
                       "run_n": run.n}
        for key, stored in stored_facts.items():
            if table_facts[key] != stored:
                raise InputError(f"run {run.spec.hash}: the table says {key} "
                                 f"{table_facts[key]!r}, the stored run {stored!r}", path=source)
        table = run.predictions()
        stored_predictions = record.predictions()[PREDICTION_COLUMNS].reset_index(drop=True)
        if not _same_frame(table, stored_predictions):
            raise InputError(f"run {run.spec.hash}: the table's predictions differ from the "
                             "stored run's", path=source)
        records.append(record)
    return records


def _same_frame(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    if left.shape != right.shape:
        return False
    try:
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=True)
    except AssertionError:
        return False
    return True
