"""A flow-run process started before its flow run: ``python -m flows.standby``.

Prefect's process worker starts every flow run cold: a workspace supervisor process that imports
prefect, then ``exec`` of ``python -m prefect.engine``, which imports it again (about 2.5 s each
on a 2-core machine) before the group's own worker subprocess starts. The standby worker
(``flows.standby_worker``) keeps one of these processes started ahead: it has imported the
engine and the arm-group flow and waits on its standard input for one order, a JSON line

    {"env": {...}, "cwd": "...", "quiet": false}

naming the flow run (``PREFECT__FLOW_RUN_ID`` in ``env``). It then becomes the process the cold
path would have been: it changes to ``cwd``, puts ``cwd`` first on its import path, takes
``env`` as its environment and runs ``prefect.engine`` as ``__main__``, so Prefect's own engine
loads the flow run, proposes its states and exits with its status.

It serves an order warm only when a cold start could not differ (an allow-list, checked when
the order arrives); otherwise it ``exec``s ``python -m prefect.engine`` with the order's
environment (same pid, a cold start) and says why on stderr:

- the order's environment equals the one this process started with, except Prefect's per-run
  values (``PREFECT__*``) and the working directory the cold path puts first on ``PYTHONPATH``;
- every module imported so far is still the file it was imported from (same size and
  modification time: an upgrade or a ``git pull`` since this process started goes cold);
- the working directory shadows none of the imported top-level modules and holds none of the
  files Prefect reads settings from (``.env``, ``prefect.toml``, ``pyproject.toml``; this
  process read its settings in an empty directory);
- the imports themselves succeeded.

End of input without an order (the worker stopped or died) ends the process quietly.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
import warnings
from collections.abc import Mapping

ENGINE = "prefect.engine"
RUN_PREFIX = "PREFECT__"  # Prefect's per-run values, read when the engine runs
SETTINGS_FILES = (".env", "prefect.toml", "pyproject.toml")  # read from the cwd at import


def comparable(env: dict[str, str], cwd: str | None = None) -> dict[str, str]:
    """The environment without Prefect's per-run values, and without ``cwd`` where the cold
    path put it first on ``PYTHONPATH``."""
    out = {k: v for k, v in env.items() if not k.startswith(RUN_PREFIX)}
    if cwd is not None and "PYTHONPATH" in out:
        entries = out["PYTHONPATH"].split(os.pathsep)
        if entries and entries[0] == cwd:
            entries = entries[1:]
        if entries:
            out["PYTHONPATH"] = os.pathsep.join(entries)
        else:
            del out["PYTHONPATH"]
    return out


def env_difference(want: Mapping[str, str], have: Mapping[str, str]) -> str | None:
    """Why a process started with ``have`` cannot stand in for one started with ``want`` (the
    first differing names, values not shown: they may be secrets), or None when equal."""
    differing = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    return f"environment differs: {', '.join(differing[:5])}" if differing else None


def preload() -> None:
    """Import what every flow run of the group flow imports."""
    import prefect._internal.control_listener  # noqa: F401
    import prefect._internal.metrics  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import prefect.runtime.flow_run  # noqa: F401

    import flows.group_flow  # noqa: F401
    import flows.group_task  # noqa: F401


def module_files() -> dict[str, tuple[int, int]]:
    """(size, modification time) of the file of every imported module."""
    seen = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path not in seen and (fingerprint := _fingerprint(path)) is not None:
            seen[path] = fingerprint
    return seen


def cold_reason(order_env: dict[str, str], cwd: str, started_env: dict[str, str],
                files: dict[str, tuple[int, int]]) -> str | None:
    """Why this order must start cold, or None."""
    differs = env_difference(comparable(order_env, cwd), comparable(started_env))
    if differs:
        return differs
    changed = [path for path, fingerprint in files.items()
               if _fingerprint(path) != fingerprint]
    if changed:
        return f"{len(changed)} imported file(s) changed since the standby started, e.g. " \
               f"{changed[0]}"
    top_level = {name.split(".")[0] for name in sys.modules}
    shadowing = sorted(name for name in importable_names(cwd) if name in top_level)
    if shadowing:
        return f"the working directory shadows imported modules: {', '.join(shadowing[:5])}"
    settings = sorted(name for name in SETTINGS_FILES if os.path.exists(os.path.join(cwd, name)))
    if settings:
        return f"the working directory holds Prefect settings: {', '.join(settings)}"
    return None


def main() -> int:
    started_env = dict(os.environ)
    try:
        preload()
        failed = None
    except Exception:  # noqa: BLE001 - the cold engine will meet and report it in the flow run
        failed = traceback.format_exc(limit=3)
    files = module_files()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    env = {str(k): str(v) for k, v in order["env"].items()}
    cwd = str(order["cwd"])
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the order pipe is done; children must not inherit it
    if order.get("quiet"):
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.close(devnull)
    os.chdir(cwd)
    reason = ("the imports failed: " + failed.strip().splitlines()[-1]) if failed else \
        cold_reason(env, cwd, started_env, files)
    if reason:
        print(f"w2s standby: starting cold ({reason})", file=sys.stderr, flush=True)
        os.execvpe(sys.executable, [sys.executable, "-m", ENGINE], env)
    os.environ.clear()
    os.environ.update(env)
    sys.path[0] = cwd  # what `python -m` started in cwd has first; PYTHONPATH's copy follows
    sys.path.insert(1, cwd)
    sys.argv = [ENGINE]
    # prefect.flow_engine imports prefect.engine, so a cold `python -m prefect.engine` holds
    # the module twice too (as __main__ and by name); runpy warns about that here only.
    warnings.filterwarnings("ignore", message=f"'{ENGINE}' found in sys.modules",
                            category=RuntimeWarning)
    runpy.run_module(ENGINE, run_name="__main__", alter_sys=True)
    return 0


def _fingerprint(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def importable_names(directory: str) -> set[str]:
    try:
        entries = os.listdir(directory)
    except OSError:
        return set()
    names = set()
    for entry in entries:
        stem, dot, suffix = entry.partition(".")
        if not dot or suffix in ("py", "pyc") or suffix.endswith(("so", "pyd")):
            names.add(stem)
    return names


if __name__ == "__main__":
    sys.exit(main())
