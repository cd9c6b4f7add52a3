"""The `validate` flow: a plan in, verdict.json and a significance report out.

1. Load and check the plan (methods and params resolve, rungs and datasets exist) before any
   compute.
2. For each batch of seeds, run one group per (rung, dataset): the weak and ceiling arms once,
   shared by every method, then one student arm per still-undecided method. Groups run as
   subprocesses (Prefect tasks, retried only when a retry can pass), each holding its device
   slots (``flows.slots``: expiring leases, freed when a holder dies) while it trains.
3. After each batch, the sequential design looks at the production rung; decided methods stop
   receiving seeds. Stop when every method is decided or the seed budget is spent.
4. Statistics over all seeds, then verdict.json, results.parquet, report.md/html, artifacts.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows import progress as events
from flows import warm_start
from flows.campaign import Campaign, Prepared
from flows.execute import install_signal_handlers
from flows.group_task import run_group_task
from flows.plan import MethodRef
from flows.worker import ArmGroup
from stats.verdict_model import Verdict


@flow(name="validate", log_prints=True, persist_result=False,
      task_runner=ThreadPoolTaskRunner(max_workers=4))
def validate_flow(plan: str, out: str = "reports/validate", store: str | None = None,
                  executor: str | None = None, work_pool: str | None = None,
                  prepared: Prepared | None = None) -> Verdict:
    """Validate the plan's methods up its ladder; returns the verdict (also on disk).
    Another live validation writing to ``out`` makes it fail at once (``flows.outdir``).
    ``executor`` and ``work_pool`` override the plan's ``compute.executor`` and
    ``compute.work_pool`` (``pool``: every group is a flow run on that pool, ``flows.pool``).
    ``prepared``: the :class:`Campaign` the caller already prepared from these arguments (the
    CLI, the sweep), so a plan is prepared once per run; a deployment's run prepares it here."""
    from flows.outdir import exclusive_out

    logger = get_run_logger()
    # Here, not at import: the flow body runs in the main thread, after Prefect has installed
    # its SIGTERM bridge, which our handler then chains (kill workers, then cancel the run).
    install_signal_handlers()
    if prepared is None:
        campaign = Campaign.prepare(plan, out, store,
                                    compute={"executor": executor, "work_pool": work_pool})
    else:
        campaign = prepared.value
        if not isinstance(campaign, Campaign) or campaign.out != Path(out):
            raise ValueError(f"prepared is not the campaign of {plan} into {out}")
    with exclusive_out(campaign.out):  # already held when the CLI started this flow
        return _run_campaign(campaign, logger)


def _run_campaign(campaign, logger) -> Verdict:
    from flows.artifacts import ProgressTracker, publish_report

    tracker = ProgressTracker(campaign.plan.name, total=1)

    def on_event(event: str, data: dict[str, Any]) -> None:
        # Looks and the analysis happen in this (the flow's) thread; group events come from
        # the task threads and only feed the CLI's bar.
        if event == "plan":
            tracker.set(0, data["total_groups"])
        elif event == "look":
            done, total = data["done_groups"], data["total_groups"]
            logger.info("look %d: seeds %s done (%.0f%%)", data["look"], data["seeds"],
                        100 * done / max(1, total))
            tracker.set(done, total)
        elif event == "analysis":
            logger.info("analysis")
            tracker.set(tracker.total, tracker.total)

    with events.subscribed(on_event):
        verdict = campaign.run(submit=_submitter(campaign))
    publish_report(campaign.plan.name, campaign.report_markdown, verdict)
    logger.info("report: %s", (campaign.out / "report.html").resolve())
    return verdict


def _submitter(campaign):
    """How this campaign's groups run: Prefect tasks here (``local``), or flow runs on a work
    pool (``pool``, ``flows.pool``)."""
    if campaign.plan.compute.executor == "pool":
        from flows.pool import PoolExecutor

        return PoolExecutor(campaign.plan, campaign.store)
    return _submit_with_prefect


def _submit_with_prefect(groups: list[ArmGroup], work_dir: Path, processes: int,
                         parallel: int) -> list[dict[str, Any]]:
    """Run ``groups`` as Prefect tasks, at most ``parallel`` at a time, and return their
    outcomes in the order of ``groups``.

    A group starts as soon as another ends (a window, not batches: a batch waits for its
    slowest group while a core idles), and the largest rungs start first: a ladder lists its
    rungs smallest first (``Campaign.groups`` lists them in that order), and starting the
    longest jobs first keeps the look's end from waiting on one large group started last.
    """
    if warm_start.warm_eligible(processes, ()):
        warm_start.start()  # its imports overlap the first group's task set-up
    rungs = list(dict.fromkeys(g.rung for g in groups))
    waiting = deque(sorted(range(len(groups)), key=lambda i: -rungs.index(groups[i].rung)))
    running: dict[Any, int] = {}
    outcomes: list[dict[str, Any] | None] = [None] * len(groups)

    def start_next() -> None:
        index = waiting.popleft()
        running[run_group_task.submit(groups[index], str(work_dir), processes)] = index

    while waiting and len(running) < parallel:
        start_next()
    while running:
        finished = next(as_completed(list(running)))
        outcomes[running.pop(finished)] = finished.result()  # a failed group raises here
        if waiting:
            start_next()
    return outcomes  # type: ignore[return-value]


__all__ = ["ArmGroup", "MethodRef", "run_group_task", "validate_flow"]
