"""Run a Python module as N data-parallel processes on this machine under the ``deepspeed``
launcher (used by ``w2s-transfer run-arm --processes N``), and the environment a worker
subprocess starts with.

Imports no torch: the processes that only start workers (the validate flow, a pool's group run)
use this module, and importing torch costs each of them 2-3 s of CPU.
"""
from __future__ import annotations

import os
import site
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from transfer.fsutil import cache_dir

# The directory this process imported the project's packages from: site-packages for an installed
# wheel, the checkout for a source tree, a --target directory on PYTHONPATH.
IMPORT_ROOT = Path(__file__).resolve().parents[2]

# Rendezvous variables a parent process may carry (e.g. its own one-process group); the
# launcher must set them afresh for each child. Only process-group start-up reads them
# (`transfer.engine.dist`, DeepSpeed's init_distributed), never an import.
RENDEZVOUS_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "LOCAL_SIZE",
                   "MASTER_ADDR", "MASTER_PORT", "CROSS_RANK", "CROSS_SIZE")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_extensions_dir() -> Path:
    """Where DeepSpeed's JIT-compiled ops are cached: ``$TORCH_EXTENSIONS_DIR`` if set, else
    ``torch_extensions`` in the cache directory (``$W2S_CACHE_DIR``, default
    ``~/.cache/w2s-transfer``; see `transfer.fsutil.cache_dir`)."""
    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(env) if env else cache_dir() / "torch_extensions"


def launcher_command(module: str, args: Sequence[str] = (), *, processes: int = 2,
                     master_port: int | None = None,
                     devices: Sequence[str] | None = None) -> list[str]:
    """The argv that starts ``python -m module *args`` on ``processes`` local ranks.

    Ranks read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` from the environment (``--no_local_rank``:
    the module gets no ``--local_rank`` argument). ``devices``: the GPU ids the ranks run on
    (one per rank; DeepSpeed's ``--include localhost:...``); default the first ``processes``.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if devices and len(devices) != processes:
        raise ValueError(f"{processes} processes need {processes} devices, got {list(devices)}")
    port = master_port if master_port is not None else free_port()
    placement = (["--include", "localhost:" + ",".join(devices)] if devices
                 else ["--num_gpus", str(processes)])
    return [sys.executable, "-u", "-m", "deepspeed.launcher.runner", *placement,
            "--master_addr", "127.0.0.1", "--master_port", str(port), "--no_local_rank",
            "--module", module, *args]


def without_rendezvous(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus the rank/master variables, for a child that must start its own process
    group (a parent that trained in-process holds its MASTER_PORT; a child inheriting it would
    fail with 'address already in use')."""
    return {k: v for k, v in environ.items() if k not in RENDEZVOUS_VARS}


def launch_env(processes: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the launched ranks: this one without rendezvous variables, one
    OpenMP thread per rank on a CPU-only machine, the shared op cache, and ``extra``."""
    env = without_rendezvous(os.environ)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(default_extensions_dir()))
    env.setdefault("OMP_NUM_THREADS", "1")
    # The CPU accelerator counts "devices" from LOCAL_SIZE (else NUMA nodes, usually 1).
    env["LOCAL_SIZE"] = str(processes)
    pythonpath = _pythonpath_with_import_root(env.pop("PYTHONPATH", None))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(extra or {})
    return env


def _pythonpath_with_import_root(pythonpath: str | None) -> str:
    """``pythonpath`` plus `IMPORT_ROOT` when the ranks' interpreter (this one) would not find the
    packages by itself; a site-packages directory is never put first on the path."""
    entries = [p for p in (pythonpath or "").split(os.pathsep) if p]
    site_dirs = {Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())}
    known = {Path(p).resolve() for p in entries} | site_dirs
    if IMPORT_ROOT not in known:
        entries.insert(0, str(IMPORT_ROOT))
    return os.pathsep.join(entries)


def launch_module(module: str, args: Sequence[str] = (), *, processes: int = 2,
                  env: Mapping[str, str] | None = None, timeout: float | None = None,
                  capture_output: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m module *args`` as ``processes`` ranks under the deepspeed launcher.

    Args:
        module: importable module name whose ``__main__`` calls the engine.
        args: its command-line arguments.
        processes: number of local data-parallel ranks.
        env: extra environment variables for every rank.
        timeout: seconds before the launch is killed (``subprocess.TimeoutExpired``).
        capture_output: capture stdout/stderr (text) instead of inheriting them.

    Returns:
        the finished process; ``returncode`` is non-zero when any rank failed.
    """
    return subprocess.run(launcher_command(module, args, processes=processes),
                          env=launch_env(processes, env), timeout=timeout,
                          capture_output=capture_output, text=True, check=False)
