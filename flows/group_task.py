"""The Prefect task that runs one arm group: used by the `validate` flow's local executor and by
a pool's group runs (`flows.group_flow`).

Its own module so that a group run imports neither the statistics nor pandas (the `validate`
flow's): 0.8 s of CPU per group run, paid beside the group's training (measured with
``python -X importtime``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from flows.execute import GroupFailed, run_group_subprocess, shutting_down
from flows.slots import device_slots
from flows.worker import ArmGroup


def _retry_transient(task_obj, task_run, state) -> bool:
    """Retry only failures that may pass: not bad input (it fails the same way again), and
    nothing once a signal has started shutting the flow down."""
    if shutting_down():
        return False
    try:
        state.result()
    except GroupFailed as err:
        return err.transient  # a worker killed by a signal, or a transient OS error
    except Exception:  # noqa: BLE001 - this process's own errors: bad input, a full disk, a bug
        return False
    return False


@task(name="run-arm-group", retries=2, retry_delay_seconds=2,
      retry_condition_fn=_retry_transient, cache_policy=NO_CACHE, log_prints=True)
def run_group_task(group: ArmGroup, work_dir: str, processes: int = 1) -> dict[str, Any]:
    """Run one (rung, dataset, seeds) group in a subprocess while holding ``processes`` device
    slots; completed runs are reused from the run store, which is keyed by run-spec hashes, so
    a retried or resumed group recomputes nothing that finished."""
    logger = get_run_logger()

    def waiting(message: str) -> None:
        text = f"rung {group.rung} seeds {group.seeds}: {message}"
        logger.warning(text)  # the flow run's log (Prefect UI)
        logging.getLogger("flows.slots").warning(text)  # the terminal in embedded mode

    start = time.perf_counter()
    with device_slots(processes, stop=shutting_down, on_wait=waiting) as slots:
        outcome = run_group_subprocess(group, Path(work_dir), processes, slots.devices)
    logger.info("rung %s seeds %s: %d runs, %d executed, %.1f s", group.rung, group.seeds,
                len(outcome["runs"]), len(outcome["executed"]), time.perf_counter() - start)
    return outcome
