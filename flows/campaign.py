"""One validation campaign: the plan's seed batches, sequential looks, statistics and outputs.

Orchestrator-agnostic: ``run(submit=...)`` takes the function that executes a list of arm groups
(Prefect tasks in the `validate` flow, a plain loop in the orchestration benchmark), so both
paths run exactly the same work.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flows import progress as events
from flows.audit_draw import AuditCell, audit_horizon, draw_audit_cells
from flows.outcome_check import GroupOutcomeError
from flows.plan import MethodRef
from flows.resolved import ResolvedMethod, check_controls, check_unique_labels
from flows.worker import ArmGroup, Canary, ControlRef, GroupEngine, GroupMethod
from w2s_common.errors import InputError

if TYPE_CHECKING:
    from flows.plan import Plan
    from stats.verdict_model import Verdict
    from transfer.ladder import Ladder

Submit = Callable[[list[ArmGroup], Path, int, int], list[dict[str, Any]]]


def _plan_field(cli_field: str | None, entry: str) -> str:
    """The plan's field for an error ``methods.resolve`` reports by the CLI's flag (``--method``,
    ``--param KEY``): in a plan the name and params of ``entry`` (``methods[i]``, ``baseline``)."""
    if cli_field is None or cli_field == "--method":
        return entry if entry == "baseline" else f"{entry}.name"
    if cli_field.startswith("--param"):
        key = cli_field.removeprefix("--param").strip()
        return f"{entry}.params.{key}" if key else f"{entry}.params"
    return cli_field


class Prepared:
    """Something already prepared (a :class:`Campaign`, the sweep's items), handed to a flow
    called in the same process so it is not prepared again.

    Prefect stores every flow parameter in its database through a JSON encoder; this box has no
    fields an encoder can walk, so the run's record says ``<Prepared>`` rather than copying the
    plan, the ladder and every code file list into the database.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass
class Campaign:
    plan: Plan
    ladder: Ladder
    out: Path
    store: Path
    rungs: list[str]
    runs: list[str] = field(default_factory=list)
    executed_arms: list[str] = field(default_factory=list)
    looks: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    dataset_fingerprints: dict[str | None, str] = field(default_factory=dict)  # by group.data
    report_markdown: str = ""  # the report without images, for the Prefect artifact
    # Plan entry name (the baseline first) -> the method as resolved: its name in the results
    # (``label``; a plugin names itself), params and code (``methods.fingerprint.MethodCode``).
    methods: dict[str, ResolvedMethod] = field(default_factory=dict)
    verdict_key: bytes | None = field(default=None, repr=False)  # HMAC key (flows.binding)
    # The label-leak audit inside the campaign: results name -> the audited cells' outcomes
    # (``stats.verdict_model.LabelAudit``).
    audits: dict[str, list[Any]] = field(default_factory=dict)
    dataset_names: dict[str | None, str] = field(default_factory=dict)  # by group.data
    # Runs this campaign computed and published itself (the rest it reused from the store).
    computed_runs: set[str] = field(default_factory=set)
    # Per group: the runs it computed and the shared cache entries it used without building
    # them; and every entry this campaign's groups built (flows.worker outcomes).
    cache_use: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)
    cache_built: set[str] = field(default_factory=set)
    # Whether workers' outcomes reach this process without passing through the shared store
    # (the local executor's output directory; the pool's come back through STORE/.groups/).
    outcomes_private: bool = True
    # Run hash -> its content digest as the worker that used it reported it
    # (``RunRecord.content_digest``): a copy that changes in the store afterwards is refused.
    pinned: dict[str, str] = field(default_factory=dict)
    # The reuse check after the last look (flows.reuse_check): one entry per recomputed run.
    reuse_checked: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def prepare(cls, plan_path: str | Path, out: str | Path, store: str | Path | None = None,
                compute: dict[str, Any] | None = None, plan_text: str | None = None
                ) -> Campaign:
        """Load and check everything before any compute: the environment, plan, methods and
        params, ladder, rungs, datasets, the budget, the engine settings against this machine,
        the executor and every method on every rung (``flows.preflight``). Any problem is an
        InputError naming the plan's file and line (or the environment variable). Writes
        nothing. ``compute``: settings of the plan's ``compute`` section to override (the
        CLI's ``--executor`` and ``--work-pool``). ``plan_text``: the plan's YAML when it is not
        yet written at ``plan_path`` (``flows.plan.load_plan``)."""
        from flows.binding import check_key_settings
        from flows.environment import check_environment
        from flows.plan import load_plan
        from flows.preflight import check_before_compute
        from flows.summary import check_summary_settings
        from methods.resolve import method_function
        from transfer.fsutil import cache_dir
        from transfer.ladder import load_ladder

        check_environment()
        plan = load_plan(plan_path, text=plan_text)
        if compute:
            plan = plan.with_compute(**compute)
        # Settings the run reads only at the end, checked now: a bad one fails before compute.
        check_summary_settings()
        check_key_settings()
        methods: dict[str, ResolvedMethod] = {}
        for index, entry in enumerate([MethodRef(name=plan.baseline)] + list(plan.methods)):
            try:
                label, params, fn = method_function(entry.name, entry.params, jail=plan.jail)
            except InputError as err:
                if err.path is not None or (err.field or "").startswith("W2S_"):
                    raise  # a file's or an environment variable's own error, not the plan's
                line = plan.line_of("methods", index - 1) if index else plan.line_of("baseline")
                where = f"methods[{index - 1}]" if index else "baseline"
                raise InputError(err.message, path=plan.source, line=line,
                                 field=_plan_field(err.field, where)) from None
            methods[entry.name] = ResolvedMethod(label, params, fn.code,
                                                 bool(fn.runs_untrusted_code),
                                                 bool(fn.jailed_builtin))
        check_unique_labels(plan, methods)
        check_controls(plan, methods)
        ladder = load_ladder(plan.ladder_ref())
        rungs = [r.name for r in ladder.rungs] if plan.rungs == "all" else list(plan.rungs)
        for name in rungs:
            try:
                ladder.rung(name)
            except InputError as err:
                raise InputError(err.message, path=plan.source, line=plan.line_of("rungs"),
                                 field="rungs") from None
        check_before_compute(plan, ladder, rungs)
        from flows.context import load_dataset

        for dataset in plan.dataset_paths():
            load_dataset(dataset)  # bad data fails here, before compute
        store_path = Path(store) if store else cache_dir() / "store"
        return cls(plan=plan, ladder=ladder, out=Path(out), store=store_path, rungs=rungs,
                   methods=methods)

    def labels(self) -> dict[str, str]:
        """Plan entry name -> the method's name in the results and the verdict."""
        return {name: info.label for name, info in self.methods.items()}

    def groups(self, seeds: list[int], methods: list[str],
               controls: list[str] = ()) -> list[ArmGroup]:
        """One group per (rung, dataset) for ``seeds``: the baseline, the candidate ``methods``
        (plan entry names) and the ``controls`` (labels) still undecided."""
        entries = {m.name: m.params for m in self.plan.methods}
        # Each method carries the parent's resolution: the worker refuses to file runs under
        # another name, params or code (``GroupMethod.check``).
        refs = [self._group_method(self.plan.baseline, {})] + [
            self._group_method(m, entries[m]) for m in methods]
        wanted = set(controls)
        control_refs = [ControlRef(kind=c.kind, name=c.name, gold_fraction=c.gold_fraction,
                                   gain=c.gain, baseline=MethodRef(name=self.plan.baseline))
                        for c in self.plan.controls if c.label in wanted]
        engine = self._group_engine()
        return [ArmGroup(ladder=self.plan.ladder_ref(), rung=rung,
                         data=None if dataset is None else str(dataset), store=str(self.store),
                         seeds=seeds, methods=refs, controls=control_refs, engine=engine,
                         jail=self.plan.jail,
                         pinned=dict(self.pinned), result="")
                for dataset in self.plan.dataset_paths() for rung in self.rungs_smallest_first()]

    def _group_engine(self) -> GroupEngine:
        return GroupEngine(ds_config=self.plan.compute.ds_config,
                           precision=self.plan.compute.precision)

    def audit_groups(self, cells: dict[str, list[AuditCell]]) -> list[ArmGroup]:
        """One group per (rung, dataset) holding audits (``cells``: plan entry -> its audited
        cells), with no real runs of its own: it reruns stored real runs under permuted gold
        (``flows.worker.run_canary``)."""
        entries = {m.name: m.params for m in self.plan.methods}
        audit = self.plan.audit
        engine = self._group_engine()
        by_place: dict[tuple[str, str | None], dict[str, list[AuditCell]]] = {}
        for entry, chosen in cells.items():
            for cell in chosen:
                by_place.setdefault((cell.rung, cell.data), {}).setdefault(entry, []).append(cell)
        groups = []
        for (rung, data), audited in sorted(by_place.items(), key=lambda kv: str(kv[0])):
            refs = [self._group_method(entry, entries.get(entry, {})) for entry in audited]
            canaries = [Canary(method=entry, seed=cell.seed, permutations=cell.permutations,
                               check_determinism=audit.check_determinism, rule=audit.rule,
                               alpha=audit.alpha)
                        for entry, chosen in audited.items() for cell in chosen]
            groups.append(ArmGroup(ladder=self.plan.ladder_ref(), rung=rung, data=data,
                                   store=str(self.store), seeds=[], methods=refs,
                                   canaries=canaries, engine=engine,
                                   jail=self.plan.jail,
                                   pinned=dict(self.pinned), result=""))
        return groups

    def _group_method(self, entry: str, params: dict[str, Any]) -> GroupMethod:
        info = self.methods[entry]
        return GroupMethod(name=entry, params=params, label=info.label,
                           resolved=info.params, fingerprint=info.code.fingerprint)

    def record_audits(self, group: ArmGroup, audits: Any) -> None:
        """Keep the audit outcomes a group reports: exactly one per canary it was given.

        Raises:
            GroupOutcomeError: an audit missing, extra, or not of the expected form.
        """
        from pydantic import ValidationError

        from stats.verdict_model import LabelAudit

        where = f"rung {group.rung} seeds {group.seeds}"
        wanted = sorted((c.method, c.seed) for c in group.canaries)
        reported = audits if isinstance(audits, list) else []
        if audits is not None and not isinstance(audits, list) or any(
                not isinstance(a, dict) for a in reported):
            raise GroupOutcomeError(f"{where}: the group's audits are not a list of objects")
        got = sorted((a.get("method"), a.get("seed")) for a in reported)
        if got != wanted:
            raise GroupOutcomeError(f"{where}: the group reported label-leak audits {got}, not "
                                    f"the ones it was asked for {wanted}")
        dataset = self._dataset_name(group.data)
        for audit in reported:
            label = self.methods[audit["method"]].label
            try:
                record = LabelAudit(rung=group.rung, dataset=dataset, seed=audit["seed"],
                                    clean=audit.get("clean"), evidence=audit.get("evidence"),
                                    rule=audit.get("rule"), isolation=audit.get("isolation", []))
            except ValidationError as err:
                raise GroupOutcomeError(f"{where}: the audit of {label} is malformed: "
                                        f"{err.errors()[0]['msg']}") from None
            self.audits.setdefault(label, []).append(record)

    def note_cache_use(self, computed: set[str], outcome: dict[str, Any]) -> None:
        """Keep which shared cache entries a group found and built (``flows.worker``); an
        outcome of an older worker, which does not say, counts as having found one."""
        found = outcome.get("cache_found", ["*"])
        found = ["*"] if found is True else found or []
        self.cache_use.append((frozenset(computed), frozenset(map(str, found))))
        self.cache_built |= {str(name) for name in outcome.get("cache_built") or []} - {"*"}

    @property
    def cache_fed_runs(self) -> set[str]:
        """Runs this campaign computed from shared cache entries that none of its own groups
        built: like reused runs, they rest on bytes another process wrote, so the reuse check
        may draw their cells (entries one of its groups built and another found do not count:
        the demo's two groups at a time share a cache)."""
        return {run for computed, found in self.cache_use if found - self.cache_built
                for run in computed}

    def rungs_smallest_first(self) -> list[str]:
        """The campaign's rungs in the ladder's order (a ladder lists them smallest first; a plan
        may list them in any order): the local executor starts the last ones first."""
        order = [r.name for r in self.ladder.rungs]
        return sorted(self.rungs, key=order.index)

    def records(self) -> list:
        """The stored runs of this campaign, in the order they were first used, each the copy
        its worker reported (:meth:`pin`).

        Raises:
            StoreIntegrityError: a run's copy in the store changed since its worker used it.
        """
        from transfer.store import RunStore

        store = RunStore(self.store, pins=self.pinned)
        return [r for r in (store.find(h) for h in dict.fromkeys(self.runs)) if r is not None]

    def pin(self, group: ArmGroup, outcome: dict[str, Any]) -> None:
        """Keep the content digest the worker reported for each of ``group``'s runs.

        Raises:
            GroupOutcomeError: the outcome has no digest for a run, or one that differs from
                the digest another group of this campaign reported for it.
        """
        contents = outcome.get("contents")
        where = f"rung {group.rung} seeds {group.seeds}"
        for run_hash in outcome["runs"]:
            digest = contents.get(run_hash) if isinstance(contents, dict) else None
            if not isinstance(digest, str):
                raise GroupOutcomeError(f"{where}: the group reported no content digest for "
                                        f"run {run_hash}")
            if self.pinned.setdefault(run_hash, digest) != digest:
                raise GroupOutcomeError(f"{where}: run {run_hash} changed in the store during "
                                        "this campaign (two groups used different copies)")

    def check_outcome(self, group: ArmGroup, runs: list[str]) -> None:
        """The runs a group reports must be exactly the runs it was asked for
        (``flows.outcome_check.check_outcome``).

        Raises:
            GroupOutcomeError: naming the group and the first run or arm that is off.
        """
        from flows.outcome_check import check_outcome

        check_outcome(self, group, runs)

    def dataset_fingerprint(self, data: str | None) -> str:
        """The fingerprint of a group's dataset (``ArmGroup.data``), loaded once."""
        if data not in self.dataset_fingerprints:
            self._load_dataset_identity(data)
        return self.dataset_fingerprints[data]

    def _dataset_name(self, data: str | None) -> str:
        if data not in self.dataset_names:
            self._load_dataset_identity(data)
        return self.dataset_names[data]

    def _load_dataset_identity(self, data: str | None) -> None:
        from flows.context import load_dataset

        task = load_dataset(data)
        self.dataset_fingerprints[data], self.dataset_names[data] = task.fingerprint, task.name

    def results(self) -> pd.DataFrame:
        from transfer.results import results_table

        return results_table(self.records(), self.ladder)

    def run(self, submit: Submit) -> Verdict:
        """Seed batches until every method is decided or the budget is spent; then outputs."""
        from flows.binding import verdict_key
        from flows.derive import StatsView
        from transfer.results import analysis_table

        self.verdict_key = verdict_key()  # a Secret block that cannot load fails before compute
        self.outcomes_private = self.plan.compute.executor == "local"
        seeds_cfg = self.plan.seeds
        batches = seed_batches(seeds_cfg.initial, seeds_cfg.batch, seeds_cfg.max)
        audits_left = {entry: self.plan.audit.cells if self.plan.audit.mode == "campaign" else 0
                       for entry in [self.plan.baseline, *self.plan.method_names]}
        undecided = list(self.plan.method_names)
        # Controls take part in the sequential design like candidates (docs/stats.md).
        controls = list(self.plan.control_labels)
        # Looks and the verdict name a method as the results do (a plugin by its own name).
        label = self.labels().get
        seeds_used: dict[str, list[int]] = {label(m, m): [] for m in undecided}
        seeds_used.update({c: [] for c in controls})
        per_look = len(self.rungs) * len(self.plan.dataset_paths())
        total_groups = len(batches) * per_look
        done_groups, start = 0, time.perf_counter()
        events.emit("plan", total_groups=total_groups, looks=len(batches))
        for look, seeds in enumerate(batches, start=1):
            groups = self.groups(seeds, undecided, controls)
            outcomes = submit(groups, self.out / "work", self.plan.compute.processes,
                              self.plan.compute.max_parallel_runs)
            for group, outcome in zip(groups, outcomes, strict=True):
                self.check_outcome(group, outcome["runs"])
                self.pin(group, outcome)
                self.runs.extend(outcome["runs"])
                self.executed_arms.extend(outcome["executed_arms"])
                computed = set(outcome["executed"]) - set(outcome.get("discarded", []))
                self.computed_runs |= computed
                self.note_cache_use(computed, outcome)
            done_groups += len(groups)
            for method in [label(m, m) for m in undecided] + controls:
                seeds_used[method].extend(seeds)
            decisions = look_at_methods(StatsView(self.plan, self.labels()),
                                        analysis_table(self.results()),
                                        [label(m, m) for m in undecided] + controls, look,
                                        len(batches))
            self.looks.append({"look": look, "seeds": seeds, "decisions": decisions})
            ran = [self.plan.baseline, *undecided]
            undecided = [m for m in undecided if not decisions[label(m, m)]["decided"]]
            controls = [c for c in controls if not decisions[c]["decided"]]
            later_seeds, finishing = audit_horizon(batches, look, ran, undecided,
                                                   bool(controls))
            self._audit_look(submit, seeds, {e: audits_left[e] for e in ran}, audits_left,
                             later_seeds, finishing)
            # Decided methods stop early: the remaining looks may need fewer groups.
            remaining = (len(batches) - look) * per_look if undecided or controls else 0
            events.emit("look", look=look, seeds=seeds, undecided=undecided + controls,
                        done_groups=done_groups, total_groups=done_groups + remaining)
            if not undecided and not controls:
                break
        self.check_reuse(submit)
        self.timings["runs_s"] = round(time.perf_counter() - start, 3)
        events.emit("analysis")
        return self.finish(seeds_used)

    def check_reuse(self, submit: Submit) -> None:
        """The reuse check after the last look (``flows.reuse_check.check_reuse``)."""
        from flows.reuse_check import check_reuse

        check_reuse(self, submit)

    def _audit_look(self, submit: Submit, seeds: list[int], entries: dict[str, int],
                    audits_left: dict[str, int], later_seeds: int, finishing: set[str]) -> None:
        """Draw and run this look's label-leak audits (after its real runs are stored)."""
        cells = draw_audit_cells(self.plan, entries, self.rungs, seeds, later_seeds, finishing)
        groups = self.audit_groups(cells)
        if not groups:
            return
        outcomes = submit(groups, self.out / "work", self.plan.compute.processes,
                          self.plan.compute.max_parallel_runs)
        for group, outcome in zip(groups, outcomes, strict=True):
            self.check_outcome(group, outcome["runs"])
            self.record_audits(group, outcome.get("audits"))
        for entry, chosen in cells.items():
            audits_left[entry] -= len(chosen)

    def finish(self, seeds_used: dict[str, list[int]]) -> Verdict:
        from flows.outputs import write_outputs
        from w2s_common.atomic import atomic_write_json

        start = time.perf_counter()
        verdict = write_outputs(self, self.results(), seeds_used)
        self.timings["analysis_s"] = round(time.perf_counter() - start, 3)
        atomic_write_json(self.out / "timings.json", self.timings)
        return verdict


def look_at_methods(plan, table: pd.DataFrame, methods: list[str], look: int,
                    max_looks: int) -> dict[str, dict[str, Any]]:
    """Ask the group-sequential design about each undecided method at the production rung.

    Each method is looked at with its own seeds only (paired with the baseline's on the same
    seeds). Alpha is spent by O'Brien-Fleming (Lan-DeMets) over ``max_looks`` planned looks,
    alpha / 2 per direction split over every planned method x dataset (the family the final
    analysis corrects with Holm).
    """
    from stats import SequentialDesign

    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        design = SequentialDesign(max_looks=max_looks, alpha=plan.alpha, sesoi=plan.sesoi,
                                  baseline=plan.baseline, n_methods=len(plan.method_names),
                                  estimand=plan.estimand)
        seeds = set(table.loc[table["arm"] == method, "seed"])
        subset = table[table["seed"].isin(seeds) &
                       table["arm"].isin(["weak", "ceiling", plan.baseline, method])]
        decision = design.look(subset.reset_index(drop=True), method=method, look=look)
        out[method] = {"decided": bool(decision.decided), "verdict": decision.verdict,
                       "reason": decision.reason, "boundary": float(decision.boundary),
                       "n_seeds": len(seeds)}
    return out


def seed_batches(initial: int, batch: int, maximum: int) -> list[list[int]]:
    """Seeds per look: ``initial`` first, then ``batch`` at a time up to ``maximum``.

    Linear in ``maximum`` (the plan's budget check bounds it before this runs).
    """
    initial = min(initial, maximum)
    looks = [list(range(initial))]
    looks += [list(range(start, min(start + batch, maximum)))
              for start in range(initial, maximum, batch)]
    return looks
