"""Group workers forked from a process that imported the engine once (the local executor).

A cold group worker (``python -m flows.worker GROUP.json``) spends about 7 s of CPU on a 2-core
machine importing torch, transformers, pandas and the engine before its first arm (``python -X
importtime``, 2026-12-04), longer than the micro ladder's eight arms take to train. The local
executor of one validation runs many groups on one machine, so it starts them from the standard
library's fork server (``multiprocessing`` ``forkserver`` start method): one process started
with the validation imports :data:`PRELOAD` once, and each group's worker is a fork of it.

A forked worker is the cold one in everything but the imports. It starts a session of its own
(killed as a process group, like a cold worker), writes to the group's log, takes the group's
environment and runs ``flows.worker.main``; its exit status reaches the flow as a cold worker's
would (negative for a signal). It runs warm only when a cold start could not differ (an
allow-list, checked in the forked process before the worker runs); otherwise it ``exec``s the
cold command with the group's environment (same pid, same session) and says why in the log:

- the group's environment equals the fork server's, except the per-group values
  (:data:`PER_GROUP_ENV`);
- every module imported so far is still the file it was imported from (a ``git pull`` or an
  upgrade during the validation goes cold), and the working directory, which a cold ``python -m``
  puts first on its import path, shadows no imported module with another file;
- the fork server's imports succeeded.

Only plain one-process groups on a machine without visible GPUs go warm (``warm_eligible``):
CUDA must not be initialised before a fork, and the launchers of multi-process or multi-node
groups start their own processes. ``W2S_WARM_START=off`` turns it off (every group cold).

The fork server imports the parent's ``__main__`` module in each child (multiprocessing's
``spawn``/``forkserver`` contract), so workers go warm only when that is harmless: a parent
started with ``-c`` or from standard input has no main file, and the ``w2s-transfer`` command
declares its entry point safe (:func:`allow_main`). Anything else, such as a user's script
calling the flow without a ``__main__`` guard, starts every worker cold.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util  # noqa: F401 - its atexit hook registers before flows.execute's
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

WARM_ENV = "W2S_WARM_START"
# What every group worker imports; deepspeed is left to the worker (its import logs the chosen
# accelerator, which would land on the validation's terminal instead of the group's log).
PRELOAD = ("flows.worker", "flows.context", "methods.resolve", "transfer.arms",
           "transfer.models.probe", "transfer.backends", "pyarrow.parquet")
# Values the flow sets per group (flows.execute); any other difference starts the worker cold.
PER_GROUP_ENV = frozenset({"W2S_ORCHESTRATOR", "PYTHONUNBUFFERED"})

_LOCK = threading.Lock()
_CONTEXT = None
_STARTED_NS = 0
_STARTED_ENV: dict[str, str] = {}  # the environment the fork server started with
_MAIN_ALLOWED = False


def allow_main() -> None:
    """Declare that this process's ``__main__`` may be imported by forked workers (it only
    defines things under a ``__main__`` guard): the ``w2s-transfer`` entry point calls it."""
    global _MAIN_ALLOWED
    _MAIN_ALLOWED = True


def _main_is_harmless() -> bool:
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    return _MAIN_ALLOWED or (spec_name is None and getattr(main, "__file__", None) is None)


def warm_setting() -> bool:
    """``$W2S_WARM_START``: ``auto`` (default, unset or empty) or ``off``.

    Raises:
        InputError: another value (checked before any compute, ``flows.environment``).
    """
    raw = os.environ.get(WARM_ENV, "").strip()
    if raw not in ("", "auto", "off"):
        from w2s_common.errors import InputError

        raise InputError(f"expected 'auto' or 'off', got {raw!r}", field=WARM_ENV)
    return raw != "off"


def warm_eligible(processes: int, devices: tuple[str, ...]) -> bool:
    """Whether a group of ``processes`` processes on ``devices`` may run in a forked worker."""
    if not warm_setting():
        return False
    if processes != 1 or devices or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() not in ("", "-1"):
        return False
    return _main_is_harmless() and not _cuda_devices_present()


def _cuda_devices_present() -> bool:
    # /dev/nvidia0.. exist where the NVIDIA driver is loaded; asking torch would load CUDA here.
    return any(name.startswith("nvidia") and name[6:].isdigit() for name in _dev_entries())


def _dev_entries() -> list[str]:
    try:
        return os.listdir("/dev")
    except OSError:
        return []


def start() -> None:
    """Start the fork server now (its imports run while the flow prepares its first groups).

    A failure here is left to the first group, which then starts cold and says why."""
    with contextlib.suppress(OSError):
        _context()


def _context():
    global _CONTEXT, _STARTED_NS, _STARTED_ENV
    with _LOCK:
        if _CONTEXT is None:
            _STARTED_NS, _STARTED_ENV = time.time_ns(), dict(os.environ)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOAD))
            from multiprocessing import forkserver

            forkserver.ensure_running()
            _CONTEXT = context
        return _CONTEXT


class WarmWorker:
    """A forked group worker with the parts of ``subprocess.Popen`` the executor uses."""

    def __init__(self, process) -> None:
        self._process = process
        self.pid: int = process.pid

    def wait(self) -> int:
        self._process.join()
        return self._process.exitcode


def start_worker(group_file: Path, log_path: Path, env: Mapping[str, str],
                 cold_argv: list[str]) -> WarmWorker:
    """Fork a worker for ``group_file`` from the fork server; its output goes to ``log_path``.

    Returns once the worker leads a session of its own (or has already exited), so that from
    then on ``os.killpg(worker.pid, ...)`` reaches it and everything it starts, as it does for
    ``subprocess.Popen(..., start_new_session=True)``.

    Args:
        group_file: the group JSON the worker runs.
        log_path: the group's log (appended to).
        env: the worker's environment (the cold worker's).
        cold_argv: the cold command, ``exec``d instead when the fork cannot be warm.

    Returns:
        The started worker; ``wait()`` gives its exit status as ``Popen.wait`` would.
    """
    from multiprocessing.connection import wait

    context = _context()
    ready, ready_in_child = context.Pipe(duplex=False)
    process = context.Process(target=_forked_worker, name=f"w2s-worker-{group_file.stem}",
                              args=(str(group_file), str(log_path), dict(env), list(cold_argv),
                                    _STARTED_NS, _STARTED_ENV, ready_in_child))
    process.start()
    ready_in_child.close()
    try:
        wait([ready, process.sentinel])
    except BaseException:  # interrupted (Ctrl-C) before the caller could register the worker
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        raise
    finally:
        ready.close()
    return WarmWorker(process)


def _forked_worker(group_file: str, log_path: str, env: dict[str, str], cold_argv: list[str],
                   server_started_ns: int, server_env: dict[str, str], ready) -> None:
    """Runs in the forked process: become the cold worker, warm when that cannot differ."""
    os.setsid()
    ready.send_bytes(b"1")
    ready.close()
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    reason = cold_reason(env, os.getcwd(), server_started_ns, server_env)
    if reason:
        print(f"w2s worker: starting cold ({reason})", file=sys.stderr, flush=True)
        os.execve(cold_argv[0], cold_argv, env)
    # What the imports changed (torch sets TORCHINDUCTOR_CACHE_DIR), a cold worker's imports
    # would change the same way from the same start.
    by_imports = {k: v for k, v in os.environ.items() if server_env.get(k) != v}
    removed = server_env.keys() - os.environ.keys()
    os.environ.clear()
    os.environ.update({k: v for k, v in env.items() if k not in removed} | by_imports)
    print("w2s worker: forked from the fork server (imports preloaded)", flush=True)
    sys.stdout.reconfigure(write_through=True)  # the cold worker's PYTHONUNBUFFERED
    sys.stderr.reconfigure(write_through=True)
    cwd = os.getcwd()
    sys.path[:] = [cwd] + [p for p in sys.path if p not in ("", cwd)]
    import flows.worker as worker

    sys.argv = [worker.__file__, group_file]
    import atexit

    try:
        code = worker.main([group_file])
    finally:
        atexit._run_exitfuncs()  # the cold worker's interpreter exit (temporary files, logging)
    raise SystemExit(code)


def cold_reason(env: Mapping[str, str], cwd: str, server_started_ns: int,
                server_env: Mapping[str, str]) -> str | None:
    """Why a forked worker with ``env`` in ``cwd`` must start cold, or None.

    Args:
        env: the group's environment.
        cwd: the working directory (a cold ``python -m`` puts it first on the import path).
        server_started_ns: when the fork server was started (``time.time_ns()``): an imported
            file whose inode changed after that (``st_ctime``, which no copy tool preserves)
            may not be the code the fork server holds.
        server_env: the environment the fork server started with (before its imports).
    """
    missing = [name for name in PRELOAD if name not in sys.modules]
    if missing:
        return f"the fork server could not import {', '.join(missing)}"
    from flows.standby import env_difference
    from transfer.engine.launch import RENDEZVOUS_VARS

    want = {k: v for k, v in env.items() if k not in PER_GROUP_ENV}
    # A parent that trained in-process keeps its one-process rendezvous (MASTER_PORT, RANK...)
    # in its environment, so the fork server inherits it while the group's environment drops
    # it. Only process-group start-up reads those, which the fork server never does, and the
    # worker's environment becomes the group's exactly: their absence from the group is no
    # difference. A value the group sets itself must still match.
    have = {k: v for k, v in server_env.items()
            if k not in PER_GROUP_ENV and (k in env or k not in RENDEZVOUS_VARS)}
    differs = env_difference(want, have)
    if differs:
        return differs
    changed = _changed_since(server_started_ns)
    if changed:
        return f"{len(changed)} imported file(s) changed since the fork server started, " \
               f"e.g. {changed[0]}"
    shadowing = _shadowed_modules(cwd)
    if shadowing:
        return f"the working directory shadows imported modules: {', '.join(shadowing[:5])}"
    return None


def _changed_since(started_ns: int) -> list[str]:
    changed = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not os.path.isabs(path):
            continue  # no file, or a name only (torch.ops says "_ops.py")
        try:
            if os.stat(path).st_ctime_ns > started_ns:
                changed.append(path)
        except OSError:
            changed.append(path)
    return changed


def _shadowed_modules(cwd: str) -> list[str]:
    """Imported top-level modules that ``cwd`` holds another copy of."""
    from flows.standby import importable_names

    shadowed = []
    for name in sorted(importable_names(cwd)):
        module = sys.modules.get(name)
        if module is None:
            continue
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", ())),
                                                          None)
        if where is None or not _inside(os.path.realpath(where), os.path.realpath(cwd), name):
            shadowed.append(name)
    return shadowed


def _inside(path: str, directory: str, name: str) -> bool:
    """Whether ``path`` is the module ``name`` of ``directory`` (a package or a file)."""
    package = os.path.join(directory, name)
    if path == package or path.startswith(package + os.sep):
        return True
    return os.path.dirname(path) == directory and os.path.basename(path).split(".")[0] == name
