"""A Prefect process worker that keeps the next arm group's flow-run process started ahead.

``w2s-transfer worker --pool NAME`` runs :class:`StandbyProcessWorker`: Prefect's own process
worker (same pools, same job template and variables, same polling, limits, cancellation and
crash reporting) with three changes for the flow runs of the ``run-arm-group`` deployment as
the pool executor creates it (module entrypoint ``flows.group_flow.run_arm_group``, no pull
steps, no storage, no path, no custom ``command``; every other flow run takes Prefect's path):

1. The flow run goes to a standby process (``flows.standby``) that has already imported the
   engine and the flow, instead of a cold supervisor + engine pair that imports both twice. The
   next standby starts as soon as one is taken, at a lower CPU priority where the worker may
   give it back at hand-off, so its imports use CPU the running group leaves idle. The standby
   starts cold itself (``exec``) when the order could run differently in it (its allow-list).
2. The worker's slot is free once the engine has reported the flow run's final state on
   Prefect's control channel; the process, which then only ships its last logs, is waited for
   in the background (its working directory is removed after it exits).
3. The worker polls again as soon as a slot is free (polls never overlap), and while no slot
   is free it asks the server only every ``FULL_POLL_S`` (a poll costs the server CPU).

The standby is the flow run's process as the cold path's would be: its own session (cancellation
signals its process group; the group's training subprocess has a session of its own and is
stopped by the group flow), its pid recorded as the flow run's infrastructure pid, its exit
status the infrastructure's. A standby left idle when the worker stops or dies reads end of
input and exits.

This leans on Prefect's runner internals (``prefect.runner._flow_run_executor``, the control
channel), which are not a public API. Where they cannot be imported this worker says so and
behaves as the plain process worker; where they changed, the acceptance test
(``tests/flows/test_pool.py``: each group of its worker w1 is handed to a standby) fails.
With ``--limit N`` > 1 one standby is kept ready: a second run arriving while it is taken gets
a fresh process (one import, not two).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import prefect.types._datetime
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
STOP_GRACE_S = 5.0  # when the worker stops: how long a concluded process may still take
SLOT_RELEASE_S = 0.05
# A worker with no free slot cannot take a flow run, so it asks the server for scheduled runs
# this seldom instead of every PREFECT_WORKER_QUERY_SECONDS: each ask costs the server about
# 30 ms of CPU (measured: docs/scale.md), spent beside the groups that train. Still often
# enough that the server keeps the worker's queue and deployment READY (it marks them NOT_READY
# after 60 s without a poll, by default); a slot that frees up is polled for at once.
FULL_POLL_S = 20.0
# A waiting standby imports at this much lower CPU priority, so that on a busy machine it takes
# only spare CPU from the group that is training (measured on 2 cores: docs/scale.md).
STANDBY_NICE = 10


def _environment(job_env: dict[str, Any]) -> dict[str, str]:
    """A flow-run process's environment as Prefect's process worker composes it: this process's,
    then Prefect's settings, then the job's (which is this process's, Prefect's settings, the
    per-run ``PREFECT__*`` values and the job variables, in that order). A standby starts with
    ``_environment({})``, so an order differs from it only by the job's own values."""
    settings = get_current_settings().to_environment_variables(exclude_unset=True)
    return sanitize_subprocess_env({**os.environ, **settings, **job_env})


def _with_working_dir_on_path(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """``PYTHONPATH`` as Prefect's workspace supervisor sets it: the working directory first."""
    entries = [str(cwd)] + [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep)
                            if entry and entry != str(cwd)]
    return {**env, "PYTHONPATH": os.pathsep.join(entries)}


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
            self._standbys: set[anyio.abc.Process] = set()  # every one not yet handed off
            self._standby_lock = anyio.Lock()
            self._poll_lock = anyio.Lock()
            self._server_polled_at = -float("inf")  # time.monotonic() of the last real poll
            self._server_poll_ok = False  # whether that poll succeeded
            # Standbys start in an empty directory: Prefect reads settings files (.env,
            # prefect.toml) from the directory it is imported in, and a flow run's cold process
            # is imported in its own working directory, not the worker's.
            self._standby_cwd = Path(tempfile.mkdtemp(prefix="w2s-standby-"))
            self._may_lower_priority = False

        async def run(self, flow_run: Any, configuration: ProcessJobConfiguration,
                      task_status: anyio.abc.TaskStatus[int] | None = None) -> ProcessWorkerResult:
            if not (STANDBY_SUPPORTED and await self._standby_serves(flow_run, configuration)):
                return await super().run(flow_run, configuration, task_status)
            task_status = task_status or anyio.TASK_STATUS_IGNORED
            starter = _StandbyStarter(self, configuration)
            if configuration.working_dir:
                starter.cwd = Path(configuration.working_dir).resolve()
            else:  # removed once the process has exited (the starter or the reaper)
                starter.cwd = Path(tempfile.mkdtemp(suffix="prefect")).resolve()
                starter.remove_cwd = True
            try:
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
            finally:
                starter.release_cwd()
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

        async def get_and_submit_flow_runs(self) -> list[Any]:
            # The polling loop and the poll after a run ended must not overlap: a response read
            # before a run finished could submit that run again.
            async with self._poll_lock:
                if (self._limiter is not None and self._limiter.available_tokens < 1
                        and time.monotonic() - self._server_polled_at < FULL_POLL_S):
                    if self._server_poll_ok:
                        # Prefect's health check (``--with-healthcheck``) reads this to see that
                        # the polling loop works: it does, as long as the last real poll did.
                        self._last_polled_time = prefect.types._datetime.now("UTC")
                    return []
                self._server_polled_at, self._server_poll_ok = time.monotonic(), False
                runs = await super().get_and_submit_flow_runs()
                self._server_poll_ok = True
                return runs

        async def _poll_when_free(self) -> None:
            """Look for the next flow run as soon as this one's slot is free, not at the next
            polling interval (the base class frees the slot when ``run`` returns)."""
            await anyio.sleep(SLOT_RELEASE_S)
            try:
                await self.get_and_submit_flow_runs()
            except Exception:  # noqa: BLE001 - the regular polling loop will try again
                self._logger.debug("early poll failed", exc_info=True)

        def reap_later(self, process: anyio.abc.Process, starter: _StandbyStarter) -> None:
            """Wait for a concluded flow run's process in the background: up to
            ``DRAIN_LIMIT_S`` (``STOP_GRACE_S`` once the worker stops), then its process group
            is killed; then its working directory is removed."""
            async def reap() -> None:
                try:
                    with anyio.move_on_after(DRAIN_LIMIT_S):
                        await process.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        if process.returncode is None:
                            with anyio.move_on_after(STOP_GRACE_S):
                                await process.wait()
                        if process.returncode is None:
                            self._logger.warning(
                                "flow-run process %d still running %.0f s after its flow run "
                                "ended; killing it", process.pid, DRAIN_LIMIT_S)
                            with contextlib.suppress(ProcessLookupError):
                                os.killpg(process.pid, signal.SIGKILL)
                        await process.aclose()
                        starter.release_cwd(exited=True)

            self._runs_task_group.start_soon(reap)

        async def take_standby(self) -> anyio.abc.Process:
            """The started-ahead process (or a new one) at this worker's CPU priority, and the
            next one starting behind it at a lower one."""
            async with self._standby_lock:
                standby, self._standby = self._standby, None
                if standby is None or standby.returncode is not None:
                    standby = await self._start_standby()
                elif self._may_lower_priority:
                    _set_priority(standby, _own_priority())
                self._standbys.discard(standby)
                self._standby = await self._start_standby()
                if self._may_lower_priority:
                    _set_priority(self._standby, _own_priority() + STANDBY_NICE)
                return standby

        async def _start_standby(self) -> anyio.abc.Process:
            process = await anyio.open_process(
                [sys.executable, "-m", STANDBY_MODULE], stdin=subprocess.PIPE, stdout=None,
                stderr=None, cwd=self._standby_cwd, env=_environment({}),
                start_new_session=True)
            self._standbys.add(process)
            return process

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
            self._standby = None
            for standby in list(self._standbys):
                await _close_standby(standby)
            self._standbys.clear()
            shutil.rmtree(self._standby_cwd, ignore_errors=True)
            await super().teardown(*exc_info)


async def _close_standby(standby: anyio.abc.Process) -> None:
    """End a standby that never got an order: end of input makes it exit."""
    with anyio.CancelScope(shield=True):
        if standby.returncode is None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await standby.stdin.aclose()
            with anyio.move_on_after(STOP_GRACE_S):
                await standby.wait()
            if standby.returncode is None:
                standby.kill()
        await standby.aclose()


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
        self.remove_cwd = False
        self.control_channel: Any = None
        self._reaping = False

    def release_cwd(self, exited: bool = False) -> None:
        """Remove a temporary working directory once nothing runs in it any more."""
        if self.remove_cwd and self.cwd is not None and (exited or not self._reaping):
            shutil.rmtree(self.cwd, ignore_errors=True)
            self.remove_cwd = False

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
        env = _with_working_dir_on_path(_environment(self.configuration.env), self.cwd)
        order = json.dumps({"env": {**env, **runtime}, "cwd": str(self.cwd),
                            "quiet": not self.configuration.stream_output}).encode() + b"\n"
        try:
            process = await self._hand_off(order)
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
                self._reaping = True
                self.worker.reap_later(process, self)
            else:
                with anyio.CancelScope(shield=True):
                    if process.returncode is None:  # the worker is stopping
                        process.terminate()
                    await process.aclose()

    async def _hand_off(self, order: bytes) -> anyio.abc.Process:
        """Send the order to a standby; one that died meanwhile is replaced once."""
        process = await self.worker.take_standby()
        try:
            await self._send(process, order)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            process = await self.worker.take_standby()
            await self._send(process, order)
        return process

    @staticmethod
    async def _send(process: anyio.abc.Process, order: bytes) -> None:
        try:
            await process.stdin.send(order)
            await process.stdin.aclose()
        except BaseException:
            await _close_standby(process)
            raise

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


def require_api_url() -> None:
    """Refuse to start without a Prefect server to poll, the check Prefect's worker makes at
    start (there a ValueError and its traceback).

    Raises:
        InputError: ``PREFECT_API_URL`` is not set (in the environment or the Prefect profile).
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_TEST_MODE

    from w2s_common.errors import InputError

    if not PREFECT_TEST_MODE.value() and not PREFECT_API_URL.value():
        raise InputError("not set; a worker polls a Prefect server: set it to the server's API "
                         "URL (e.g. http://127.0.0.1:4200/api)", field="PREFECT_API_URL")


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
