"""Settings of Prefect's embedded mode (the CLI's local, per-process server).

The task-run recorder service writes task runs to SQLite in batches; each batch locks the
database, the client's next write gets a 503, and the client waits a fixed 2 s before retrying.
Measured on a 2-core box: about one 2-second stall every 5 task runs (a loop of 1-second tasks:
16.1 s with the recorder, 13.1 s without). Embedded runs therefore turn it off: flow runs, logs
and artifacts (the report) are still recorded; task runs are not. A deployed server (PostgreSQL)
keeps every service. Values already in the environment win.
"""
from __future__ import annotations

import os

EMBEDDED_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    # Services that only matter for deployments and schedules; they poll the database.
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    # The server is a subprocess that imports FastAPI, SQLAlchemy and Alembic: ~13 s here, longer
    # on a busy machine or on a first run that compiles their bytecode; Prefect's 20 s default
    # then fails the whole run.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def configure_embedded_prefect() -> None:
    """Apply `EMBEDDED_SETTINGS` (before Prefect is imported) unless already set."""
    for key, value in EMBEDDED_SETTINGS.items():
        os.environ.setdefault(key, value)
