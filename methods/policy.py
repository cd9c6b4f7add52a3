"""How untrusted method code runs: the jail settings a plan or the CLI chooses.

``mode: required`` (the default) runs every plugin and external command in the jail and fails
with one line when no jail can be built here. ``mode: off`` is the explicit opt-in to run them
as plain subprocesses: the runs are recorded as ``unjailed`` in metrics.json, verdict.json and
the report, and such a method is never promoted.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from methods.builtin_names import PIPELINE_BUILTINS
from methods.jail import JailLimits

Isolation = Literal["builtin", "jail", "unjailed"]
GIB = 1 << 30


class JailSettings(BaseModel):
    """The jail a plan asks for (``jail:`` in a plan; ``--unjailed`` on the CLI)."""

    # strict: YAML's '2000' (a string) is not a number of processes; no NaN or infinity (an
    # infinite timeout_s was an OverflowError traceback when the CPU limit was derived from it).
    # The upper bounds are far above any real jail and keep every derived limit in range.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    mode: Literal["required", "off"] = Field(
        "required", description="required: untrusted code runs only in the jail; off: run it "
        "unjailed (recorded; never promoted).")
    builtins: Literal["in_process", "jail"] = Field(
        "in_process", description="in_process: the built-in methods run in the trusted worker "
        "process (they are part of what is trusted); jail: each built-in run gets a fresh jail "
        "of its own, like a plugin, so its code shares no process or filesystem with the gold "
        "labels, the store or the worker, which knows it from a data table and never imports "
        "its module (not the pipeline's own built-ins, external and the reference vanilla: "
        "docs/security.md); about 4 s more per run for the imports: "
        "9x the CPU demo's wall time, negligible beside GPU training; one process per run, so "
        "not for students that need a group's ranks together). Jailed runs are keyed apart. "
        "With mode: off built-ins run in-process either way.")
    timeout_s: float = Field(24 * 3600.0, gt=0, le=366 * 24 * 3600.0,
                             description="Wall-clock limit of one method run.")
    memory_gb: float | None = Field(
        None, gt=0, le=1 << 20, description="Memory of the whole jail in GiB, its tmpfs included "
        "(a memory control group where one can be made; also each process's address space, "
        "except with GPUs). Default: the machine's memory.")
    max_processes: int = Field(1024, ge=16, le=1 << 22,
                               description="Processes and threads of the jail.")
    max_file_mb: int = Field(1024, ge=1, le=1 << 20,
                             description="Largest file the method may write (MiB); its outputs "
                             "directory holds four times that.")
    max_open_files: int = Field(4096, ge=64, le=1 << 20, description="Open file descriptors.")
    cpu_seconds: int | None = Field(
        None, ge=1, le=10**9, description="CPU time over all threads (default: timeout_s x CPUs).")

    def jails_builtins(self) -> bool:
        """Whether a trusted built-in's code runs in the jail (else in this process)."""
        return self.mode == "required" and self.builtins == "jail"

    def jails_builtin(self, name: str) -> bool:
        """Whether built-in ``name`` is described and run in a jail of its own: the ports, where
        these settings jail built-ins; never the pipeline's own (``PIPELINE_BUILTINS``)."""
        return self.jails_builtins() and name.strip() not in PIPELINE_BUILTINS

    def limits(self, use_gpu: bool) -> JailLimits:
        """The resource limits of one jailed run."""
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory = int(self.memory_gb * GIB) if self.memory_gb is not None else total
        cpus = os.cpu_count() or 1
        return JailLimits(memory_bytes=memory, address_space_bytes=None if use_gpu else memory,
                          processes=self.max_processes,
                          file_bytes=self.max_file_mb << 20, out_bytes=4 * self.max_file_mb << 20,
                          open_files=self.max_open_files,
                          cpu_seconds=self.cpu_seconds or int(self.timeout_s * cpus) + 60)


_SETTINGS: contextvars.ContextVar[JailSettings | None] = contextvars.ContextVar(
    "w2s_jail_settings", default=None)
_USED: contextvars.ContextVar[list[Isolation] | None] = contextvars.ContextVar(
    "w2s_jail_used", default=None)


@contextlib.contextmanager
def jail_settings(settings: JailSettings) -> Iterator[list[Isolation]]:
    """Use ``settings`` for untrusted code started in this context.

    Yields:
        a list that fills with the isolation of every untrusted program run meanwhile.
    """
    used: list[Isolation] = []
    token, used_token = _SETTINGS.set(settings), _USED.set(used)
    try:
        yield used
    finally:
        _SETTINGS.reset(token)
        _USED.reset(used_token)


def current_settings() -> JailSettings:
    """The settings of the enclosing :func:`jail_settings`, else the default (jail required)."""
    return _SETTINGS.get() or JailSettings()


def record(isolation: Isolation) -> None:
    """Note that untrusted code just ran with ``isolation`` (see :func:`jail_settings`)."""
    used = _USED.get()
    if used is not None:
        used.append(isolation)
