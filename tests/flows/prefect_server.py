"""A real Prefect server and workers on 127.0.0.1 for tests and benchmarks: free port, its own
PREFECT_HOME (SQLite), analytics off; every process in its own session, stopped by group."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(url: str, path: str, body: dict | None = None):
    """GET (or POST ``body``) a Prefect REST endpoint; returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if value := condition():
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def server_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """This environment without any PREFECT_ setting, pointed at a server on ``port``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false",
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                "W2S_REPO_DIR": str(REPO),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **extra})
    return env


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (proc(5) fields 14-15), with its reaped children's
    (16-17) if asked; NaN when the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(x) for x in fields[11:15 if reaped_children else 13]) / os.sysconf(
        "SC_CLK_TCK")


class Processes:
    """Background processes, each in its own session; stop() kills their whole groups and
    whatever they started in other sessions."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.started = logs, []

    def start(self, name: str, argv: list[str], env: dict[str, str],
              cwd: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=cwd or REPO, env=env,
                                stdout=(self.logs / f"{name}.log").open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc

    def log(self, name: str, chars: int | None = 3000) -> str:
        """The end of a process's log (``chars=None``: all of it)."""
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return text if chars is None else text[-chars:]

    @staticmethod
    def kill_tree(proc: subprocess.Popen) -> None:
        """SIGKILL ``proc``, its process group and every descendant (a machine dying)."""
        below = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in reversed(self.started):
            below = descendants(proc.pid) if proc.poll() is None else []
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):  # anything left in its group
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in below:  # children that started their own sessions
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def prefect(args: list[str], env: dict[str, str], timeout_s: float = 120) -> str:
    done = subprocess.run([*PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# A created and migrated Prefect database, built once per checkout and Prefect version.
TEMPLATES = REPO / ".cache" / "prefect-db"


def template_database() -> Path:
    """The path of an empty Prefect database with its schema created and migrated.

    A server on a fresh PREFECT_HOME runs every migration before it answers: 31.9 s on this
    2-core box against 10.1 s on a copy of a migrated database (2026-12-04, `/health` polled
    every 0.1 s). Tests start five such servers (two harnesses, the pool, the deployment, the
    README's commands), so they copy this one instead (`seed_database`). Built on first use by
    a real server under a file lock (two pytest-xdist workers may ask at once); a server still
    runs its migrations on start, which are no-ops on a current copy and bring a stale one up.
    """
    from importlib.metadata import version

    import filelock

    folder = TEMPLATES / version("prefect")
    template = folder / "prefect.db"
    folder.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(folder / "build.lock", timeout=600):
        if not template.exists():
            _build_template(folder, template)
    return template


def _build_template(folder: Path, template: Path) -> None:
    import shutil
    import sqlite3
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
    try:
        processes = Processes(work)
        try:
            start_server(processes, server_env(work / "home", free_port()))
        finally:
            processes.stop()
        partial = folder / "prefect.db.partial"
        # The backup API gives one consistent file, the write-ahead log folded in.
        with contextlib.closing(sqlite3.connect(work / "home" / "prefect.db")) as source, \
                contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
        os.replace(partial, template)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def seed_database(home: Path, name: str = "prefect.db") -> Path:
    """Copy `template_database` to ``home/name`` (``home`` created) and return ``home``; a
    server on that home then starts without creating its schema."""
    import shutil

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template_database(), home / name)
    return home


def start_server(processes: Processes, env: dict[str, str]) -> str:
    """Start ``prefect server start`` on the env's port; return its API URL once it answers."""
    url, port = env["PREFECT_API_URL"], env["PREFECT_SERVER_API_PORT"]
    server = processes.start("server", [*PREFECT, "server", "start", "--host", "127.0.0.1",
                                        "--port", port], env)
    wait_for(lambda: server.poll() is not None or api(url, "/health") is True, 120,
             "the Prefect server")
    assert server.poll() is None, processes.log("server")
    return url
