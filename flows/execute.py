"""Execute arm groups as subprocesses, each in its own process group, logs to files.

Every live child is registered. On SIGTERM/SIGINT (a cancelled flow run) or interpreter exit the
whole process group of each child is killed and no new child starts, so no training outlives the
flow. A flow process killed outright (SIGKILL, the OOM killer) runs no handler at all; for that
case every worker learns its orchestrator's identity (``W2S_ORCHESTRATOR`` in its environment)
and kills its own process group when the orchestrator is gone (``flows.worker``). Without
Prefect the same function runs the same groups directly (the baseline of the orchestration
benchmark).
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows import warm_start
from flows.slots import ShutdownInProgress
from flows.worker import ORCHESTRATOR_ENV, PERMANENT_EXIT, TRANSIENT_EXIT, ArmGroup, process_token

_LIVE: set[int] = set()
# Re-entrant: kill_children (a signal handler) takes it, and the main thread may hold it when the
# signal arrives (a group run's task runs there); a plain Lock then hung the process until SIGKILL.
_LOCK = threading.RLock()
_SHUTTING_DOWN = threading.Event()
_ATEXIT_REGISTERED = False

# Exit status of a worker that failed on bad input or on the machine (a full disk): retrying
# cannot help. Kept under its old name for callers.
BAD_INPUT_EXIT = PERMANENT_EXIT


class GroupFailed(RuntimeError):
    def __init__(self, message: str, returncode: int, log: Path | None) -> None:
        super().__init__(message)
        self.returncode, self.log = returncode, log

    @property
    def transient(self) -> bool:
        """Whether a retry may pass: a worker killed by a signal (the OOM killer, a preempted
        node) or one that reported a transient OS error (exit 75); never bad input, a full disk
        or a crash of the code (exit 1: it fails the same way again, its traceback is in the
        group's log), and nothing while the flow shuts down."""
        if _SHUTTING_DOWN.is_set():
            return False
        return self.returncode < 0 or self.returncode == TRANSIENT_EXIT


def kill_children(*_: Any) -> None:
    """Kill the process group of every running worker and refuse new ones (idempotent)."""
    _SHUTTING_DOWN.set()
    with _LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def shutting_down() -> bool:
    """True once a signal or interpreter exit has killed the workers."""
    return _SHUTTING_DOWN.is_set()


class _KillChildrenThenChain:
    """A signal handler: kill the workers, then do what the handler it replaced did."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: Any) -> None:
        kill_children()
        if callable(self.previous):
            # Prefect's SIGTERM bridge raises TerminationSignal here, so the flow run is marked
            # cancelled/crashed; SIGINT's default raises KeyboardInterrupt.
            self.previous(signum, frame)
        elif self.previous == signal.SIG_IGN:
            return
        else:
            raise SystemExit(128 + signum)


def install_signal_handlers() -> bool:
    """Kill the workers on SIGTERM/SIGINT, chaining whatever handler is installed now.

    Call it from the main thread inside the flow body (Prefect installs its SIGTERM bridge for
    the flow run's duration and restores the previous handler afterwards, so each run installs
    again); from any other thread it does nothing. Also kills the workers at interpreter exit.

    Returns:
        True if the handlers are in place after the call.
    """
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(kill_children)
        _ATEXIT_REGISTERED = True
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(sig)
        if not isinstance(current, _KillChildrenThenChain):
            signal.signal(sig, _KillChildrenThenChain(current))
    return True


def worker_command(group_file: Path, processes: int = 1,
                   devices: tuple[str, ...] = ()) -> list[str]:
    """The command that runs one group: plain python, or the deepspeed launcher for N > 1."""
    if processes > 1:
        from transfer.engine import launcher_command

        return launcher_command("flows.worker", [str(group_file)], processes=processes,
                                devices=devices or None)
    return [sys.executable, "-m", "flows.worker", str(group_file)]


def run_group_subprocess(group: ArmGroup, work_dir: Path, processes: int = 1,
                         devices: tuple[str, ...] = (),
                         command: Callable[[Path], list[str]] | None = None,
                         result_grace_s: float = 0.0) -> dict[str, Any]:
    """Run ``group`` in a child process; return the worker's RESULT.json content.

    Args:
        group: the arm group (its ``result``, when empty, is set here, to a private
            directory of this machine, and copied to ``work_dir`` once read).
        work_dir: where the group's log goes, and copies of its group file and result for
            people to read (the worker reads the group from, and writes its result to, a
            private directory: ``work_dir`` may be on a volume others write).
        processes: processes per run (> 1 starts the deepspeed launcher).
        devices: GPU ids the group runs on (its device slots, ``flows.slots``); empty: the
            launcher's default.
        command: the group file -> the argv that runs it (default ``worker_command``; a
            multi-node group's torchrun, ``flows.nodes``), started with ``launch_env``.
        result_grace_s: how long the result may take to appear after a clean exit (rank 0
            may be on another node, writing to the shared store).

    Returns:
        ``{"runs": [hash...], "executed": [hash...], "executed_arms": [label...], "seconds"}``.

    Raises:
        GroupFailed: non-zero exit (the message carries the log's last line).
        ShutdownInProgress: the flow is shutting down, so no worker starts, or the worker was
            killed by that shutdown (not retried; the command ends as interrupted, exit 130, as
            the pool executor's does).
    """
    install_signal_handlers()
    work_dir.mkdir(parents=True, exist_ok=True)
    key = group.key()
    # What the worker reads (the group) and what this process trusts of it (its result) pass
    # through a directory of this machine only this user can reach, never the output directory,
    # which a deployment may put on a shared volume whose other writers could rewrite a group
    # before the worker reads it or a result before it is read here. work_dir gets copies,
    # for people and tools to read.
    private = Path(tempfile.mkdtemp(prefix=f"w2s-group-{key[:12]}-"))
    try:
        return _run_in(group, key, private, work_dir, processes, devices, command, result_grace_s)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _run_in(group: ArmGroup, key: str, private: Path, work_dir: Path, processes: int,
            devices: tuple[str, ...], command: Callable[[Path], list[str]] | None,
            result_grace_s: float) -> dict[str, Any]:
    """:func:`run_group_subprocess` with its private directory."""
    from w2s_common.atomic import atomic_write_text

    group_file = private / f"group-{key}.json"
    shown_result = None
    if not group.result:  # a multi-node group names one in the shared store (flows.nodes)
        group = group.model_copy(update={"result": str(private / f"result-{key}.json")})
        shown_result = work_dir / f"result-{key}.json"
    text = group.model_dump_json(indent=2)
    atomic_write_text(group_file, text)
    atomic_write_text(work_dir / f"group-{key}.json", text)
    log_path = work_dir / f"group-{key}.log"
    # The default command of a one-process CPU group may fork from the preloaded fork server.
    warm = command is None and warm_start.warm_eligible(processes, devices)
    extra = {"PYTHONUNBUFFERED": "1", ORCHESTRATOR_ENV: process_token(os.getpid())}
    if processes > 1 or command is not None:
        from transfer.engine.launch import launch_env

        env = launch_env(processes, extra)
    else:
        from transfer.engine.launch import without_rendezvous

        env = {**without_rendezvous(os.environ), **extra}
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    with open(log_path, "ab") as log:
        with _LOCK:
            # Under the lock, so kill_children either sees this child or stops it starting.
            if _SHUTTING_DOWN.is_set():
                raise ShutdownInProgress(f"not starting rung {group.rung} seeds {group.seeds}: "
                                         "the flow is shutting down")
            argv = (command(group_file) if command is not None
                    else worker_command(group_file, processes, devices))
            proc = None
            if warm:
                try:
                    proc = warm_start.start_worker(group_file, log_path, env, argv)
                except (OSError, EOFError) as err:  # no fork server: the cold start still works
                    log.write(f"w2s worker: starting cold (the fork server failed: {err})\n"
                              .encode())
                    log.flush()
            if proc is None:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            _LIVE.add(proc.pid)
            if _SHUTTING_DOWN.is_set():  # the handler ran inside this block, before the add
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        try:
            returncode = proc.wait()
        finally:
            # Also after a normal exit: nothing the worker started may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            with _LOCK:
                _LIVE.discard(proc.pid)
    if returncode < 0 and _SHUTTING_DOWN.is_set():
        # Killed by this process's own shutdown (kill_children), not a failure of the group:
        # the command ends as interrupted even where the chained handler did not raise (a
        # SIGINT handler of an event loop only sets a flag), which let this worker's -9 reach
        # the user as a failure, exit 1 (seen once in tests/flows/test_concurrency.py).
        raise ShutdownInProgress(f"rung {group.rung} seeds {group.seeds}: worker stopped "
                                 "(the flow is shutting down)")
    if returncode != 0:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        raise GroupFailed(f"worker for rung {group.rung} seeds {group.seeds} exited "
                          f"{returncode}: {last} (log: {log_path})", returncode, log_path)
    result_text = _wait_for_file(Path(group.result), result_grace_s).read_text()
    outcome = json.loads(result_text)
    if shown_result is not None:
        atomic_write_text(shown_result, result_text)
    from flows import progress

    progress.emit("group_done", rung=group.rung, seeds=group.seeds,
                  executed=len(outcome["executed"]), seconds=outcome.get("seconds"))
    return outcome


def _wait_for_file(path: Path, grace_s: float) -> Path:
    """``path`` once it exists, waiting up to ``grace_s`` (FileNotFoundError after that)."""
    deadline = time.monotonic() + grace_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path
