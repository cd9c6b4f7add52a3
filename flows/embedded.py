"""Prefect's embedded mode, as the CLI runs it: one local server per process, safely.

Settings. The task-run recorder service writes task runs to SQLite in batches; each batch
locks the database, the client's next write gets a 503, and the client waits a fixed 2 s before
retrying. Measured on a 2-core box: about one 2-second stall every 5 task runs (a loop of
1-second tasks: 16.1 s with the recorder, 13.1 s without). Embedded runs therefore turn it off:
flow runs, logs and artifacts (the report) are still recorded; task runs are not. A deployed
server (PostgreSQL) keeps every service. Values already in the environment win.

Starting the server (:func:`embedded_prefect`). Without ``PREFECT_API_URL`` every CLI process
starts its own server on the SQLite database in ``PREFECT_HOME``. Two of them starting at once
on a fresh home both create the schema and crash (``index ix_block_type_name_case_insensitive
already exists``, then a time-out connecting to the server). So the start is serialised: a
lease on ``PREFECT_HOME/.w2s-server-start.lease`` (``transfer.leases``: a killed holder is
seen at once) is held until the server answers, by which time its database is created and
migrated; the next process then starts on a ready database. The server also dies with the CLI:
it is started with ``PR_SET_PDEATHSIG`` = SIGKILL, so a CLI killed outright (SIGKILL, the OOM
killer), which runs no ``atexit`` handler, leaves no server behind.

Console. Prefect's own log lines (task and flow run states and their tracebacks) go to a file
(``OUT/prefect.log``) instead of the terminal, so a failed run says why in one line; every
other logger (this project's warnings) still prints.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

EMBEDDED_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    # Services that only matter for deployments and schedules; they poll the database.
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    # Prefect's default (20 s) is too short on a loaded 2-core machine (measured: a first start
    # timed out at load 5, then took 33 s).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}
START_LEASE = ".w2s-server-start.lease"
PR_SET_PDEATHSIG = 1
# Loggers whose console output goes to the log file in embedded mode.
PREFECT_LOGGERS = ("prefect", "uvicorn", "fastapi", "docket", "httpx")


def configure_embedded_prefect() -> None:
    """Apply `EMBEDDED_SETTINGS` (before Prefect is imported) unless already set."""
    for key, value in EMBEDDED_SETTINGS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def embedded_prefect(log_file: Path | None = None) -> Iterator[None]:
    """Run the block with Prefect configured for the CLI: embedded settings, Prefect's console
    lines in ``log_file`` (when given), and this process's own server started (serialised per
    ``PREFECT_HOME``, dying with this process) unless ``PREFECT_API_URL`` names one."""
    configure_embedded_prefect()
    with _prefect_console_to(log_file):
        start_embedded_server()
        yield


def start_embedded_server() -> None:
    """Start this process's Prefect server now, one start per ``PREFECT_HOME`` at a time.

    Does nothing when ``PREFECT_API_URL`` is set (a real server or a test harness) or when a
    server of this process already runs.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        get_current_settings,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return  # a configured server, or none allowed (Prefect then says so itself)
    # Only now: importing Prefect's server costs 1.4 s that a client of a real server never needs.
    from prefect.server.api.server import SubprocessASGIServer

    from transfer import leases

    existing = SubprocessASGIServer._instances.get(None)
    if existing is not None and existing.running:
        return
    home = Path(get_current_settings().home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    with leases.held(home / START_LEASE, lambda: None):
        _server_class()().start()


def _death_signal(parent: int):
    """A ``preexec_fn``: SIGKILL this child when the thread that started it exits (the CLI's
    main thread, i.e. the process); exit at once if the parent is already gone."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _server_class():
    from prefect.server.api.server import SubprocessASGIServer

    class ServerDyingWithParent(SubprocessASGIServer):
        """Prefect's ephemeral server, started with a parent-death signal (Linux).

        ``SubprocessASGIServer()`` returns one instance per port; this one registers under
        port None, which is the instance every Prefect client of this process asks for.
        """

        def _run_uvicorn_command(self):
            import prefect.server.api.server as module

            if not sys.platform.startswith("linux"):
                return super()._run_uvicorn_command()
            real = module.subprocess
            module.subprocess = _PopenWith(real, _death_signal(os.getpid()))
            try:
                return super()._run_uvicorn_command()
            finally:
                module.subprocess = real

    return ServerDyingWithParent


class _PopenWith:
    """``subprocess`` as seen by Prefect's server module while it starts the server: the same
    module, with ``Popen`` given a ``preexec_fn``."""

    def __init__(self, module, preexec) -> None:
        self._module, self._preexec = module, preexec

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 - mirrors subprocess.Popen
        kwargs.setdefault("preexec_fn", self._preexec)
        return self._module.Popen(*args, **kwargs)


class _QuietLogFile(logging.FileHandler):
    """A log file that never prints a 'Logging error' traceback (a full disk must not turn a
    one-line error into pages)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        pass


def _is_prefect_record(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in PREFECT_LOGGERS


@contextlib.contextmanager
def _prefect_console_to(log_file: Path | None) -> Iterator[None]:
    if log_file is None:
        yield
        return
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # Prefect's console handlers exist from here on

    consoles = [handler for name in (None, *PREFECT_LOGGERS)
                for handler in logging.getLogger(name).handlers
                if isinstance(handler, PrefectConsoleHandler)]

    def not_prefect(record: logging.LogRecord) -> bool:
        return not _is_prefect_record(record)

    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler | None = _QuietLogFile(log_file, delay=True)
    except OSError:
        file_handler = None
    if file_handler is not None:
        file_handler.setFormatter(logging.Formatter(
            "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
        file_handler.addFilter(_is_prefect_record)
        for name in (None, "uvicorn", "fastapi"):
            logging.getLogger(name).addHandler(file_handler)
    for handler in consoles:
        handler.addFilter(not_prefect)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(not_prefect)
        if file_handler is not None:
            for name in (None, "uvicorn", "fastapi"):
                logging.getLogger(name).removeHandler(file_handler)
            file_handler.close()
