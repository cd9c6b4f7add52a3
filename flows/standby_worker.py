"""A Prefect process worker that keeps the next arm group's flow-run process started ahead.

``w2s-transfer worker --pool NAME`` runs :class:`StandbyProcessWorker`: Prefect's own process
worker (same pools, same job template and variables, same polling, limits, cancellation and
crash reporting) with one change. A flow run of the ``run-arm-group`` deployment that the
pool executor created (module entrypoint ``flows.group_flow.run_arm_group``, no pull steps, no
storage, no custom command) is handed to a standby process (``flows.standby``) that has already
imported the engine and the flow, instead of a cold supervisor + engine pair that imports both
twice. The next standby starts as soon as one is taken, so its imports overlap the group's
compute. Every other flow run (another deployment, a pool template with a ``command``, a
deployment with pull steps) takes Prefect's path unchanged; so does a run whose job variables
change Prefect settings or ``PYTHON*`` variables (the standby ``exec``s a cold engine then).

The standby is the flow run's process exactly as the cold path's would be: its own session
(a group-wide signal reaches the engine and the group's worker subprocess), its pid recorded as
the flow run's infrastructure pid (cancellation kills its process group), its exit status the
infrastructure's. A standby left idle when the worker stops or dies reads end of input and
exits.

This leans on Prefect's runner internals (``prefect.runner._flow_run_executor``), which are not
a public API: where they are missing this worker says so once and behaves as the plain process
worker (``tests/flows/test_standby_worker.py`` fails in that case, so an upgrade cannot make it
silently slow).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from prefect.settings import get_current_settings
from prefect.workers.process import (
    ProcessJobConfiguration,
    ProcessWorker,
    ProcessWorkerResult,
)

from flows.group_flow import ENTRYPOINT

try:  # Prefect's runner internals (3.9): the executor the process worker itself uses
    from prefect.flows import load_flow_from_flow_run
    from prefect.runner._flow_run_executor import FlowRunExecutorContext
    from prefect.runner._process_manager import ProcessHandle, create_isolated_termination_scope
    from prefect.utilities.processutils import sanitize_subprocess_env
    STANDBY_SUPPORTED = True
except ImportError:  # pragma: no cover - another Prefect version
    STANDBY_SUPPORTED = False

STANDBY_MODULE = "flows.standby"
CONCLUSION_POLL_S = 0.05  # how often a running group's control-channel record is looked at
RECEIPT_ACK_GRACE_S = 0.1  # lets the channel acknowledge the engine's receipt before release
DRAIN_LIMIT_S = 60.0  # a concluded flow run's process gets this long to ship its last logs
SLOT_RELEASE_S = 0.05
# A waiting standby imports at this much lower CPU priority, so that on a busy machine it takes
# only spare CPU from the group that is training (measured on 2 cores: docs/scale.md).
STANDBY_NICE = 10


def _environment(job_env: dict[str, Any]) -> dict[str, str]:
    """A flow-run process's environment as Prefect's process worker composes it: this process's,
    then Prefect's settings, then the job's (which already holds this process's)."""
    settings = get_current_settings().to_environment_variables(exclude_unset=True)
    return sanitize_subprocess_env({**os.environ, **settings, **job_env})


with warnings.catch_warnings():
    # Same type as the process worker: it serves process pools and their job template. Only
    # the worker's own process imports this module, so only there does the class stand in for
    # ProcessWorker in Prefect's registry of worker types (Prefect warns about that override).
    warnings.simplefilter("ignore", UserWarning)

    class StandbyProcessWorker(ProcessWorker):
        """Prefect's process worker, with a started-ahead process for arm-group flow runs."""

        type = "process"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._standby: anyio.abc.Process | None = None
            self._standby_cwd = Path.cwd()
            self._may_lower_priority = False

        async def run(self, flow_run: Any, configuration: ProcessJobConfiguration,
                      task_status: anyio.abc.TaskStatus[int] | None = None) -> ProcessWorkerResult:
            if not (STANDBY_SUPPORTED and await self._standby_serves(flow_run, configuration)):
                return await super().run(flow_run, configuration, task_status)
            task_status = task_status or anyio.TASK_STATUS_IGNORED
            starter = _StandbyStarter(self, configuration)
            working_dir = (tempfile.TemporaryDirectory(suffix="prefect")
                           if not configuration.working_dir
                           else nullcontext(configuration.working_dir))
            with working_dir as cwd:
                starter.cwd = Path(cwd).resolve()
                async with FlowRunExecutorContext() as ctx:
                    starter.control_channel = ctx.control_channel
                    executor = ctx.create_executor(flow_run, starter,
                                                   resolve_flow=load_flow_from_flow_run,
                                                   propose_submitting=False)
                    execution = None

                    async def execute(*, task_status: anyio.abc.TaskStatus[Any]
                                      = anyio.TASK_STATUS_IGNORED) -> None:
                        nonlocal execution
                        execution = await executor.submit(task_status=task_status)

                    async with anyio.create_task_group() as group:
                        handle = await group.start(execute)
                        if handle.pid is None:
                            raise RuntimeError("Flow run process has no PID")
                        task_status.started(handle.pid)
            if execution is None or execution.status_code is None:
                raise RuntimeError("Failed to start flow run process.")
            self._runs_task_group.start_soon(self._poll_when_free)
            return ProcessWorkerResult(status_code=execution.status_code,
                                       identifier=str(execution.handle.pid))

        async def _standby_serves(self, flow_run: Any,
                                  configuration: ProcessJobConfiguration) -> bool:
            """Only flow runs the cold path would start as ``python -m prefect.engine`` in a bare
            working directory: the group deployment as ``flows.pool`` creates it."""
            if configuration._command_configured or flow_run.deployment_id is None:
                return False
            deployment = await self.client.read_deployment(flow_run.deployment_id)
            return (deployment.entrypoint == ENTRYPOINT and not deployment.pull_steps
                    and deployment.path is None and deployment.storage_document_id is None)

        async def setup(self) -> None:
            await super().setup()
            if STANDBY_SUPPORTED:  # the first group starts warm too
                self._standby = await self._start_standby()
                self._may_lower_priority = self._priority_can_be_restored(self._standby)
                if self._may_lower_priority:
                    _set_priority(self._standby, _own_priority() + STANDBY_NICE)

        def reap_later(self, process: anyio.abc.Process) -> None:
            """Wait for a concluded flow run's process in the background; kill it if it does
            not exit within ``DRAIN_LIMIT_S``."""
            async def reap() -> None:
                with anyio.move_on_after(DRAIN_LIMIT_S):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                with anyio.CancelScope(shield=True):
                    await process.aclose()

            self._runs_task_group.start_soon(reap)

        async def _poll_when_free(self) -> None:
            """Look for the next flow run as soon as this one's slot is free, not at the next
            polling interval (the base class frees the slot when ``run`` returns)."""
            await anyio.sleep(SLOT_RELEASE_S)
            try:
                await self.get_and_submit_flow_runs()
            except Exception:  # noqa: BLE001 - the regular polling loop will try again
                self._logger.debug("early poll failed", exc_info=True)

        async def take_standby(self) -> anyio.abc.Process:
            """The started-ahead process (or a new one) at this worker's CPU priority, and the
            next one starting behind it at a lower one."""
            standby = self._standby
            self._standby = None
            if standby is None or standby.returncode is not None:
                standby = await self._start_standby()
            elif self._may_lower_priority:
                _set_priority(standby, _own_priority())
            self._standby = await self._start_standby()
            if self._may_lower_priority:
                _set_priority(self._standby, _own_priority() + STANDBY_NICE)
            return standby

        async def _start_standby(self) -> anyio.abc.Process:
            return await anyio.open_process(
                [sys.executable, "-m", STANDBY_MODULE], stdin=subprocess.PIPE, stdout=None,
                stderr=None, cwd=self._standby_cwd, env=_environment({}), start_new_session=True)

        @staticmethod
        def _priority_can_be_restored(process: anyio.abc.Process) -> bool:
            """Whether this worker may lower a standby's CPU priority while it imports: only if
            it can give the priority back at hand-off (root or CAP_SYS_NICE); otherwise the
            flow run and the group's training would run at the lowered priority."""
            own = _own_priority()
            try:
                _set_priority(process, own + STANDBY_NICE)
                _set_priority(process, own)
            except OSError:
                with contextlib.suppress(OSError):
                    _set_priority(process, own)
                return False
            return True

        async def teardown(self, *exc_info: Any) -> None:
            standby, self._standby = self._standby, None
            if standby is not None and standby.returncode is None:
                await standby.stdin.aclose()  # end of input: it exits
                with anyio.move_on_after(5):
                    await standby.wait()
                if standby.returncode is None:
                    standby.kill()
            await super().teardown(*exc_info)


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def _set_priority(process: anyio.abc.Process, niceness: int) -> None:
    """Set the standby's CPU priority: the nice value of its session's scheduling group where
    the kernel groups sessions (``/proc/PID/autogroup``: a session competes with other sessions
    as a whole, so a thread's own nice value counts only within it), and every thread's (Linux
    niceness is per thread; the imports start a few native threads, and the engine's threads and
    the group's processes inherit from the main thread)."""
    niceness = min(niceness, 19)
    autogroup = Path(f"/proc/{process.pid}/autogroup")
    if autogroup.exists():
        autogroup.write_text(f"{niceness}\n")
    try:
        threads = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task")]
    except OSError:
        threads = [process.pid]
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


class _StandbyStarter:
    """Prefect's ``ProcessStarter`` contract (``start`` signals the handle, then blocks until the
    process exits) over a standby process instead of a newly spawned one."""

    def __init__(self, worker: StandbyProcessWorker,
                 configuration: ProcessJobConfiguration) -> None:
        self.worker, self.configuration = worker, configuration
        self.cwd: Path | None = None
        self.control_channel: Any = None

    async def start(self, flow_run: Any, task_status: anyio.abc.TaskStatus[Any]
                    = anyio.TASK_STATUS_IGNORED) -> None:
        runtime = {"PREFECT__FLOW_RUN_ID": str(flow_run.id),
                   "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                   "PREFECT__FLOW_ENTRYPOINT": ENTRYPOINT}
        registered = False
        if self.control_channel is not None:
            try:
                port, token = self.control_channel.register(flow_run.id)
                runtime.update(PREFECT__CONTROL_PORT=str(port), PREFECT__CONTROL_TOKEN=token)
                registered = True
            except RuntimeError:  # no loopback listener: Prefect falls back to kill-only
                pass
        try:
            process = await self.worker.take_standby()
            order = {"env": {**_environment(self.configuration.env), **runtime},
                     "cwd": str(self.cwd), "quiet": not self.configuration.stream_output}
            await process.stdin.send(json.dumps(order).encode() + b"\n")
            await process.stdin.aclose()
        except BaseException:
            if registered:
                self.control_channel.unregister(flow_run.id)
            raise
        self.worker.get_flow_run_logger(flow_run).info(
            "Flow run '%s' handed to standby process %d", flow_run.name, process.pid)
        concluded = False
        try:
            task_status.started(ProcessHandle(
                process, termination_scope=create_isolated_termination_scope(process.pid)))
            concluded = await self._until_exit_or_conclusion(process, flow_run.id)
        finally:
            if concluded:
                self.worker.reap_later(process)
            else:
                with anyio.CancelScope(shield=True):
                    if process.returncode is None:  # the worker is stopping
                        process.terminate()
                    await process.aclose()

    async def _until_exit_or_conclusion(self, process: anyio.abc.Process,
                                        flow_run_id: Any) -> bool:
        """Wait until the process exits (False) or the engine has reported its flow run's
        final state on the control channel (True): after that the process only ships its last
        logs and events (about 1 s), which need not hold the worker's slot. Prefect's executor
        takes a reported conclusion as the attempt's outcome whatever the exit status."""
        concluded = False
        async with anyio.create_task_group() as group:
            async def watch() -> None:
                nonlocal concluded
                while self.control_channel is not None:
                    if self.control_channel.get_conclusion(flow_run_id) is not None:
                        await anyio.sleep(RECEIPT_ACK_GRACE_S)
                        concluded = process.returncode is None
                        break
                    await anyio.sleep(CONCLUSION_POLL_S)
                else:
                    await anyio.sleep_forever()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await process.wait()
            group.cancel_scope.cancel()
        return concluded


def serve(pool: str, name: str | None, limit: int | None, queues: list[str] | None) -> None:
    """Run the worker until it is stopped (SIGINT/SIGTERM), as ``prefect worker start`` does."""
    from prefect.utilities.processutils import setup_signal_handlers_worker

    if not STANDBY_SUPPORTED:
        warnings.warn("this Prefect version lacks the runner internals the standby needs; "
                      "running the plain process worker", RuntimeWarning, stacklevel=1)
    setup_signal_handlers_worker(os.getpid(), "the w2s-transfer worker", print)

    async def _main() -> None:
        worker = StandbyProcessWorker(name=name, work_pool_name=pool, work_queues=queues,
                                      limit=limit)
        await worker.start(printer=print)

    anyio.run(_main)
