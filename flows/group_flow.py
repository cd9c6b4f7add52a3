"""The `run-arm-group` flow: one arm group as its own flow run, on whatever worker a pool has.

With ``compute.executor: pool`` the `validate` flow (``flows.pool``) submits every arm group as
a flow run of the deployment ``run-arm-group/<work pool>``; a worker of that pool (a process on
a GPU machine, a Kubernetes job) runs it here. Everything a group reads and writes is keyed and
lives in the shared run store, so a group run on another machine is just another writer:

- the runs themselves (``STORE/<arm>/<hash>/``, claimed and published as for local groups);
- ``STORE/.groups/<tag>.lease``: held while this flow run works on the group and renewed by the
  lease heartbeat, so the parent sees at once (same machine) or after ``W2S_LEASE_TTL_S``
  (another machine) when the group's infrastructure died;
- the outcome (run hashes, which ones this run executed, their digests, the worker and host
  that ran it, the attempt): an artifact of this flow run, which the parent reads through the
  server (``flows.group_outcome``), and a copy for people in ``STORE/.groups/<tag>.json``.

A failure the user can act on ends the flow run Failed with the message ``exit N: <one line>``
(N = the worker's exit status: 2 bad input or the machine, 1 a crash of the code); the parent
prints that line. The worker subprocess, device slots and retries of transient failures are the
local executor's (``run_group_task``), on the worker's machine.
"""
from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.worker import ArmGroup

GROUPS_DIR = ".groups"
# Where a worker keeps group files and logs: relative to the flow run's working directory
# (a process worker's per-run temporary directory unless the pool sets one).
WORK_DIR_ENV = "W2S_GROUP_WORK_DIR"
ENTRYPOINT = "flows.group_flow.run_arm_group"  # a module path: no checkout needed on workers


@dataclass(frozen=True)
class GroupPaths:
    """The files of one submitted group in the shared store."""

    outcome: Path  # a copy of the outcome, written when the group run succeeded (for people)
    lease: Path  # held while a group run works on it
    result: Path  # the worker process's own result (rank 0 writes it, on whichever node)


def group_paths(store: str | Path, tag: str) -> GroupPaths:
    base = Path(store) / GROUPS_DIR
    return GroupPaths(outcome=base / f"{tag}.json", lease=base / f"{tag}.lease",
                      result=base / f"{tag}.result.json")


def failure_message(returncode: int, line: str) -> str:
    """The final state's message: ``exit N: <one line>`` (parsed by ``flows.pool``)."""
    return f"exit {returncode}: {' '.join(line.split())}"


# async, though its body blocks: Prefect (3.9) ends a sync flow run by joining its heartbeat
# thread, which sleeps in 1 s steps, so every group run's end (and its worker's next group)
# waited 0.35-1.0 s for it (measured); an async flow run leaves that daemon thread to stop alone.
@flow(name="run-arm-group", persist_result=False, log_prints=True)
async def run_arm_group(group: ArmGroup, tag: str, processes: int = 1, nodes: int = 1) -> Any:
    """Run one arm group on this worker and record its outcome in the shared store.

    Args:
        group: the group (its ``store`` is the shared store's path as every worker mounts it).
        tag: the parent's name for this submission (names the lease and outcome files).
        processes: ranks per node.
        nodes: nodes of the group (> 1: this flow run is node 0 of a multi-node job;
            ``flows.nodes``).

    Returns:
        A summary (runs, executed); a failure the user can act on returns a Failed state whose
        message is ``exit N: <one line>``.
    """
    from flows.environment import check_environment
    from flows.execute import GroupFailed, install_signal_handlers
    from flows.group_outcome import publish_outcome
    from flows.preflight import processes_problem
    from flows.slots import ShutdownInProgress
    from flows.worker import PERMANENT_EXIT, TRANSIENT_ERRNOS, TRANSIENT_EXIT, os_error_line
    from transfer import leases
    from w2s_common.atomic import atomic_write_json
    from w2s_common.errors import InputError

    install_signal_handlers()
    logger = get_run_logger()
    paths = group_paths(group.store, tag)
    where = f"rung {group.rung} seeds {group.seeds}"
    try:
        check_environment()
        problem = processes_problem(processes)
        if problem:
            raise InputError(f"{problem} (worker {worker_name()} on {socket.gethostname()})",
                             field="compute.processes")
        paths.lease.parent.mkdir(parents=True, exist_ok=True)
        # A rerun after a crash waits out the dead attempt's lease (at once on its machine).
        lease, _ = leases.claim_or_wait(paths.lease, lambda: None)
    except InputError as err:
        return Failed(message=failure_message(PERMANENT_EXIT, f"{where}: {err}"))
    except OSError as err:
        code = TRANSIENT_EXIT if err.errno in TRANSIENT_ERRNOS else PERMANENT_EXIT
        return Failed(message=failure_message(
            code, f"{where}: worker {worker_name()} on {socket.gethostname()} cannot write the "
                  f"run store: {os_error_line(err)}"))
    try:
        # One node: the worker's result stays on this machine (a private directory,
        # ``flows.execute``); several: rank 0 may run on another node and writes it to the store.
        outcome = _run(group.model_copy(update={"result": str(paths.result) if nodes > 1
                                                else ""}), processes, nodes, tag)
    except GroupFailed as err:
        _log_tail(logger, err.log)
        return Failed(message=failure_message(err.returncode, str(err)))
    except InputError as err:  # a multi-node group: no rendezvous endpoint, a result not shared
        return Failed(message=failure_message(PERMANENT_EXIT, f"{where}: {err}"))
    except ShutdownInProgress as err:
        # A signal whose handler did not raise (SIGINT under asyncio; Prefect's SIGTERM raises
        # TerminationSignal first), before the worker started or killing it: as a killed worker.
        return Failed(message=failure_message(-signal.SIGTERM, str(err)))
    except OSError as err:
        code = TRANSIENT_EXIT if err.errno in TRANSIENT_ERRNOS else PERMANENT_EXIT
        return Failed(message=failure_message(code, f"{where}: {os_error_line(err)}"))
    else:
        record = {**outcome, "tag": tag, "worker": worker_name(), "host": socket.gethostname(),
                  "cwd": os.getcwd(), "flow_run_id": _runtime("id"),
                  "run_count": _runtime("run_count")}
        try:
            await publish_outcome(record)  # what the parent reads (flows.group_outcome)
        except Exception as err:  # noqa: BLE001 - the server or the client, transient
            return Failed(message=failure_message(TRANSIENT_EXIT, f"{where}: cannot report "
                                                  f"the outcome to the Prefect server: {err}"))
        try:
            atomic_write_json(paths.outcome, record)  # a copy for people; never read back
        except OSError as err:
            code = TRANSIENT_EXIT if err.errno in TRANSIENT_ERRNOS else PERMANENT_EXIT
            return Failed(message=failure_message(code, f"{where}: {os_error_line(err)}"))
    finally:
        lease.release()
    logger.info("%s: %d runs, %d executed on %s", where, len(outcome["runs"]),
                len(outcome["executed"]), worker_name())
    return {"runs": len(outcome["runs"]), "executed": len(outcome["executed"])}


def _run(group: ArmGroup, processes: int, nodes: int, tag: str) -> dict[str, Any]:
    from flows.group_task import run_group_task

    work_dir = Path(os.environ.get(WORK_DIR_ENV) or "w2s-groups").resolve()
    if nodes > 1:
        from flows.nodes import run_as_node

        return run_as_node(group, work_dir, nodes=nodes, processes=processes, run_id=tag)
    return run_group_task(group, str(work_dir), processes)


def worker_name() -> str:
    """The Prefect worker that runs this flow run (it sets ``PREFECT__WORKER_NAME``)."""
    return os.environ.get("PREFECT__WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def _runtime(attribute: str) -> Any:
    from prefect.runtime import flow_run

    value = getattr(flow_run, attribute, None)
    return None if value is None else (value if isinstance(value, int) else str(value))


def _log_tail(logger: Any, log: Path | None, lines: int = 20) -> None:
    """The end of the worker's log, in the flow run's log (the file stays on the worker)."""
    try:
        text = Path(log).read_text(errors="replace") if log else ""
    except OSError:
        return
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    if tail:
        logger.error("end of %s:\n%s", log, "\n".join(tail))
