"""Execute arm groups as subprocesses, each in its own process group, logs to files.

Every live child is registered; on SIGTERM/SIGINT (a cancelled flow run) or interpreter exit the
whole process group of each child is killed, so no training outlives the flow. Without Prefect the
same function runs the same groups directly (the baseline of the orchestration benchmark).
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from flows.worker import ArmGroup

_LIVE: set[int] = set()
_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False

# Exit status of a worker that failed on bad input: retrying cannot help.
BAD_INPUT_EXIT = 2


class GroupFailed(RuntimeError):
    def __init__(self, message: str, returncode: int, log: Path) -> None:
        super().__init__(message)
        self.returncode, self.log = returncode, log

    @property
    def transient(self) -> bool:
        return self.returncode != BAD_INPUT_EXIT


def kill_children(*_: Any) -> None:
    """Kill the process group of every running worker (idempotent)."""
    with _LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    atexit.register(kill_children)
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            kill_children()
            if callable(previous):
                previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(sig, handler)
    _HANDLERS_INSTALLED = True


def worker_command(group_file: Path, processes: int = 1) -> list[str]:
    """The command that runs one group: plain python, or the deepspeed launcher for N > 1."""
    if processes > 1:
        from transfer.engine import launcher_command

        return launcher_command("flows.worker", [str(group_file)], processes=processes)
    return [sys.executable, "-m", "flows.worker", str(group_file)]


def run_group_subprocess(group: ArmGroup, work_dir: Path, processes: int = 1) -> dict[str, Any]:
    """Run ``group`` in a child process; return the worker's RESULT.json content.

    Raises:
        GroupFailed: non-zero exit (the message carries the log's last line).
    """
    _install_handlers()
    work_dir.mkdir(parents=True, exist_ok=True)
    key = group.key()
    group_file = work_dir / f"group-{key}.json"
    group = group.model_copy(update={"result": str(work_dir / f"result-{key}.json")})
    group_file.write_text(group.model_dump_json(indent=2))
    log_path = work_dir / f"group-{key}.log"
    if processes > 1:
        from transfer.engine.launch import launch_env

        env = launch_env(processes, {"PYTHONUNBUFFERED": "1"})
    else:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(worker_command(group_file, processes), stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        with _LOCK:
            _LIVE.add(proc.pid)
        try:
            returncode = proc.wait()
        finally:
            with _LOCK:
                _LIVE.discard(proc.pid)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    if returncode != 0:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        raise GroupFailed(f"worker for rung {group.rung} seeds {group.seeds} exited "
                          f"{returncode}: {last} (log: {log_path})", returncode, log_path)
    return json.loads(Path(group.result).read_text())
