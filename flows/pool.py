"""The pool executor: each arm group is its own Prefect flow run on a work pool.

``compute.executor: pool`` (or ``w2s-transfer validate --executor pool --work-pool NAME``):
the `validate` flow submits the groups of each look as flow runs of the deployment
``run-arm-group/<work pool>`` (``flows.group_flow``) with Prefect's deployment-run API
(``prefect.deployments.run_deployment``, linked to the parent as subflow runs), and waits for
them. Whatever workers the pool has (processes on several machines, Kubernetes jobs) run them,
as many at once as the pool's, its queues' and the deployment's concurrency limits allow. The
group runs write to the shared run store; the parent reads their runs from there (every run
hash-verified) and their outcomes from the server, so it never needs a worker's disk.

While it waits the parent watches each group run:

- Completed: the outcome the group run reported to the server is read
  (``flows.group_outcome``: never a file other writers of the store could rewrite) and its
  runs checked in the store.
- Failed: the run's message ``exit N: <line>`` becomes the validation's one-line error (exit 2
  for bad input or the machine, 1 otherwise); the other group runs are cancelled.
- Crashed (its process died: the worker saw it), or Running while its lease in the store
  expired (the whole machine died: nobody left to say so; seen at once on the same machine,
  after ``W2S_LEASE_TTL_S`` elsewhere), or Pending longer than ``compute.start_timeout_s``:
  the parent marks it Crashed and asks Prefect to run it again (``AwaitingRetry``), up to
  ``compute.group_reruns`` times; any worker of the pool takes it. Finished runs are reused
  from the store, so a rerun computes only what the lost attempt had not published.
- Scheduled for longer than ``compute.start_timeout_s`` (no worker took it): the validation
  stops with one line naming the pool and its workers, exit 2.
- When the parent ends early (an error, Ctrl-C, a cancelled parent flow run: SIGTERM), every
  group run still in flight is cancelled; the workers then kill their processes.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows import progress
from flows.execute import GroupFailed, shutting_down
from flows.group_flow import ENTRYPOINT, group_paths
from flows.worker import ArmGroup
from w2s_common.errors import InputError

LOG = logging.getLogger("flows.pool")
POLL_S = 0.5
# How long a Completed group's outcome and runs may take to appear (a shared filesystem's
# attribute cache can hide a file written on another machine for a few seconds).
OUTCOME_GRACE_S = 60.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def deployment_name(compute: Any) -> str:
    """``flow/deployment`` of the group runs: the plan's, or ``run-arm-group/<work pool>``."""
    return compute.deployment or f"run-arm-group/{compute.work_pool}"


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def check_pool(plan: Any) -> None:
    """Before any compute: the executor's Prefect server, work pool and deployment exist.

    Raises:
        InputError: one line at the plan's ``compute`` field it is about: no server
            configured (``PREFECT_API_URL``: the CLI's embedded server is private to its
            process, no worker can reach it), a server that does not answer, an unknown work
            pool (naming those that exist), a deployment on another pool, ``nodes > 1`` on a
            pool without the multi-node job template.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    compute = plan.compute
    url = _api_url()
    if not url:
        plan._raise(("compute", "executor"),
                    "the pool executor needs a Prefect server its workers reach; set "
                    "PREFECT_API_URL (the embedded server of the CLI is private to this process)")
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            plan._raise(("compute", "executor"),
                        f"the Prefect server at {url} does not answer: "
                        f"{' '.join(str(problem).split())[:200]}")
        try:
            pool = client.read_work_pool(compute.work_pool)
        except ObjectNotFound:
            names = sorted(p.name for p in client.read_work_pools())
            plan._raise(("compute", "work_pool"),
                        f"no work pool {compute.work_pool!r} on the Prefect server at {url}; "
                        f"existing: {names or 'none'} (create one: prefect work-pool create "
                        f"{compute.work_pool} --type process)")
        name = deployment_name(compute)
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            deployment = None  # created on first use (ensure_deployment)
        if deployment is not None and deployment.work_pool_name != compute.work_pool:
            plan._raise(("compute", "deployment"),
                        f"deployment {name} runs on work pool {deployment.work_pool_name!r}, "
                        f"not {compute.work_pool!r}")
        if compute.nodes > 1:
            variables = ((pool.base_job_template or {}).get("variables") or {}).get(
                "properties") or {}
            if "nodes" not in variables:
                plan._raise(("compute", "nodes"),
                            f"{compute.nodes} nodes per group need a work pool whose job "
                            f"template starts one pod per node (a 'nodes' job variable: "
                            f"infra/k8s/multinode-job-template.json); pool "
                            f"{compute.work_pool!r} ({pool.type}) has none")


def ensure_deployment(compute: Any) -> str:
    """Create ``run-arm-group/<work pool>`` on the pool if it does not exist; return its name.

    An existing deployment is used as it is (deploy your own under that name to give the group
    runs job variables: an image, GPUs). The created one imports the flow by module path, so a
    worker needs the installed package, not a checkout.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    from flows.group_flow import run_arm_group

    name = deployment_name(compute)
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
            return name
        except ObjectNotFound:
            pass
    flow_name, deployment = name.split("/", 1)
    if flow_name != run_arm_group.name:
        raise InputError(f"deployment {name} does not exist; only run-arm-group/... "
                         "deployments are created on first use", field="compute.deployment")
    run_arm_group.to_deployment(
        name=deployment, work_pool_name=compute.work_pool,
        entrypoint_type=EntrypointType.MODULE_PATH, tags=["w2s", "arm-group"],
        description="One arm group of a w2s-transfer validation (flows/group_flow.py).",
    ).apply()
    LOG.info("created deployment %s on work pool %s (entrypoint %s)", name, compute.work_pool,
             ENTRYPOINT)
    return name


@dataclass
class GroupRun:
    """One submitted group and what the parent knows about its flow run."""

    group: ArmGroup
    tag: str
    flow_run_id: Any = None
    name: str = ""
    reruns: int = 0
    waiting_since: float = field(default_factory=time.monotonic)  # submitted or rescheduled
    state: str = "SCHEDULED"
    state_since: float = field(default_factory=time.monotonic)
    lease_seen: bool = False
    completed_at: float | None = None
    outcome: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        return f"rung {self.group.rung} seeds {self.group.seeds}"


class PoolExecutor:
    """Submits a look's groups to the pool and waits for them (a `Campaign` submit function)."""

    def __init__(self, plan: Any, store: Path) -> None:
        self.plan, self.compute, self.store = plan, plan.compute, Path(store).resolve()
        self.deployment: str | None = None

    def __call__(self, groups: list[ArmGroup], work_dir: Path, processes: int,
                 parallel: int) -> list[dict[str, Any]]:
        """Run ``groups`` as flow runs; return their outcomes in the order of ``groups``.

        ``parallel`` (``compute.max_parallel_runs``) is not used: the pool's workers and
        concurrency limits decide how many group runs execute at once.
        """
        from prefect.client.orchestration import get_client

        from transfer import leases

        if self.deployment is None:
            self.deployment = ensure_deployment(self.compute)
        runs = [GroupRun(group=g.model_copy(update={"store": str(self.store), "result": ""}),
                         tag=uuid.uuid4().hex) for g in groups]
        watch = leases.ExpiryWatch()
        try:
            for run in runs:
                _stop_if_shutting_down(f"not submitting {run.where}")
                self._submit(run, processes)
            with get_client(sync_client=True) as client:
                while any(r.outcome is None for r in runs):
                    # A signal's KeyboardInterrupt has been seen not to reach this loop (where
                    # it went is not known): the shutdown flag stops it all the same.
                    _stop_if_shutting_down("stopped waiting for the group runs")
                    self._poll(client, runs, watch)
                    time.sleep(POLL_S)
        finally:
            self._cancel([r for r in runs if r.outcome is None and r.flow_run_id is not None])
        return [r.outcome for r in runs]  # type: ignore[misc]

    # -- submission --------------------------------------------------------------------------

    def _submit(self, run: GroupRun, processes: int) -> None:
        from prefect.deployments import run_deployment

        seeds = run.group.seeds
        # A group with no seeds of its own reruns stored runs for the label-leak audit; one
        # with a throw-away store recomputes a cell for the reuse check.
        run.name = (f"{run.group.rung}-reuse-check-seed-{seeds[0]}" if run.group.rerun_into
                    else f"{run.group.rung}-seeds-{seeds[0]}-{seeds[-1]}" if seeds
                    else f"{run.group.rung}-audit" if run.group.canaries else run.group.rung)
        nodes = self.compute.nodes
        flow_run = run_deployment(
            self.deployment, timeout=0, as_subflow=True, flow_run_name=run.name,
            parameters={"group": run.group.model_dump(mode="json"), "tag": run.tag,
                        "processes": processes, "nodes": nodes},
            tags=["w2s", "arm-group", f"rung:{run.group.rung}"],
            job_variables={"nodes": nodes} if nodes > 1 else None)
        run.flow_run_id = flow_run.id
        run.waiting_since = run.state_since = time.monotonic()
        LOG.info("%s: submitted as flow run %s (%s)", run.where, flow_run.id, self.deployment)

    # -- waiting -----------------------------------------------------------------------------

    def _poll(self, client: Any, runs: list[GroupRun], watch: Any) -> None:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        live = [r for r in runs if r.outcome is None]
        found = {fr.id: fr for fr in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.flow_run_id for r in live])))}
        for run in live:
            flow_run = found.get(run.flow_run_id)
            if flow_run is None or flow_run.state is None:
                raise GroupFailed(f"{run.where}: flow run {run.flow_run_id} disappeared from the "
                                  "Prefect server", 1, None)
            kind = flow_run.state.type.value
            if kind != run.state:
                run.state, run.state_since = kind, time.monotonic()
            if kind == "COMPLETED":
                self._completed(client, run, flow_run.run_count)
            elif kind == "FAILED":
                raise _failure(run, flow_run.state.message)
            elif kind == "CANCELLED" or flow_run.state.name == "Cancelling":
                raise GroupFailed(f"{run.where}: group run {run.name} ({run.flow_run_id}) was "
                                  "cancelled", 1, None)
            elif kind == "CRASHED":
                self._rerun(client, run, flow_run.state.message or "crashed", mark_crashed=False)
            elif kind == "SCHEDULED":
                self._check_started(client, run)
            elif kind == "PENDING":
                if time.monotonic() - run.state_since > self.compute.start_timeout_s:
                    self._rerun(client, run, f"pending for more than "
                                f"{self.compute.start_timeout_s:g} s after a worker took it")
            elif kind == "RUNNING":
                self._check_alive(client, run, watch)

    def _completed(self, client: Any, run: GroupRun, attempt: int | None) -> None:
        """Read the outcome the group run reported to the server (``flows.group_outcome``);
        every run it lists must be in the shared store, verified."""
        from flows.group_outcome import read_outcome
        from transfer.store import RunStore

        if run.completed_at is None:
            run.completed_at = time.monotonic()
        outcome = read_outcome(client, run.flow_run_id, run.tag, attempt, run.where)
        if outcome is None:
            if time.monotonic() - run.completed_at < OUTCOME_GRACE_S:
                return
            raise GroupFailed(f"{run.where}: group run {run.name} completed but reported no "
                              "outcome to the Prefect server (is the worker's w2s-transfer the "
                              "parent's?)", 2, None)
        store = RunStore(self.store)
        missing = [h for h in outcome["runs"] if store.find(h) is None]
        if missing:
            if time.monotonic() - run.completed_at < OUTCOME_GRACE_S:
                return
            raise GroupFailed(f"{run.where}: group run {run.name} lists {len(missing)} run(s) "
                              f"not in the store {self.store} (first: {missing[0]})", 2, None)
        run.outcome = outcome
        progress.emit("group_done", rung=run.group.rung, seeds=run.group.seeds,
                      executed=len(outcome["executed"]), seconds=outcome.get("seconds"))
        LOG.info("%s: done on %s (%d executed)", run.where, outcome.get("worker"),
                 len(outcome["executed"]))

    def _check_started(self, client: Any, run: GroupRun) -> None:
        waited = time.monotonic() - run.waiting_since
        if waited <= self.compute.start_timeout_s:
            return
        pool = self.compute.work_pool
        try:
            workers = client.read_workers_for_work_pool(pool)
            online = [w.name for w in workers if str(getattr(w.status, "value", w.status))
                      == "ONLINE"]
            status = (f"{len(online)} online worker(s)" if online else
                      "the pool has no online worker")
        except Exception:  # noqa: BLE001 - only for the message
            status = "its workers could not be read"
        self.plan._raise(("compute", "start_timeout_s"),
                         f"no worker of work pool {pool!r} started group run {run.name} "
                         f"({run.where}) within {self.compute.start_timeout_s:g} s ({status}); "
                         f"start one: w2s-transfer worker --pool {pool}")

    def _check_alive(self, client: Any, run: GroupRun, watch: Any) -> None:
        from transfer import leases

        lease = leases.read_lease(group_paths(self.store, run.tag).lease)
        if lease is not None:
            run.lease_seen = True
            if watch.expired(lease):
                host = lease.host.split("|")[0] or "?"
                self._rerun(client, run, f"its process (pid {lease.pid} on {host}) stopped "
                                         "renewing the group's lease: its worker or machine died")
        elif not run.lease_seen and (time.monotonic() - run.state_since
                                     > self.compute.start_timeout_s):
            self._rerun(client, run, f"running for {self.compute.start_timeout_s:g} s without "
                                     "taking the group's lease")

    def _rerun(self, client: Any, run: GroupRun, why: str, mark_crashed: bool = True) -> None:
        """Mark the group run Crashed (if its state does not say so yet) and have Prefect run
        it again on any worker of the pool, or fail when its reruns are spent."""
        from prefect.states import AwaitingRetry, Crashed

        if mark_crashed:
            client.set_flow_run_state(run.flow_run_id, Crashed(message=f"w2s: {why}"),
                                      force=True)
        if run.reruns >= self.compute.group_reruns:
            raise GroupFailed(f"{run.where}: group run {run.name} crashed: {why} "
                              f"({run.reruns} rerun(s) spent, compute.group_reruns = "
                              f"{self.compute.group_reruns})", 1, None)
        run.reruns += 1
        LOG.warning("%s: group run %s crashed (%s); running it again (%d of %d)", run.where,
                    run.name, why, run.reruns, self.compute.group_reruns)
        client.set_flow_run_state(run.flow_run_id, AwaitingRetry(), force=True)
        run.state, run.lease_seen = "SCHEDULED", False
        run.waiting_since = run.state_since = time.monotonic()

    def _cancel(self, runs: list[GroupRun]) -> None:
        """Cancel group runs still in flight (the parent is ending early)."""
        if not runs:
            return
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled, Cancelling

        with contextlib.suppress(Exception), get_client(sync_client=True) as client:
            for run in runs:
                with contextlib.suppress(Exception):
                    # A run no worker has taken is simply cancelled; a running one is set
                    # Cancelling, and its worker kills its process (and with it the group).
                    state = Cancelled if run.state == "SCHEDULED" else Cancelling
                    client.set_flow_run_state(run.flow_run_id,
                                              state(message="w2s: the validation ended"),
                                              force=True)
                    # INFO: the validation's own one-line error says why it ended.
                    LOG.info("%s: cancelled group run %s", run.where, run.name)


def _stop_if_shutting_down(what: str) -> None:
    from flows.slots import ShutdownInProgress

    if shutting_down():
        raise ShutdownInProgress(f"{what}: the flow is shutting down")


def _failure(run: GroupRun, message: str | None) -> GroupFailed:
    """The group run's final message ``exit N: <line>`` as the validation's error."""
    text = " ".join((message or "failed").split())
    code, line = 1, text
    head, sep, rest = text.partition(": ")
    if sep and head.startswith("exit ") and head[5:].lstrip("-").isdigit():
        code, line = int(head[5:]), rest
    return GroupFailed(f"{line} (group run {run.name}, {run.flow_run_id})", code, None)
