"""Run untrusted code (external commands, plugin methods) where it cannot see gold labels.

Preferred isolation ("namespace", Linux, needs root or CAP_SYS_ADMIN):
``unshare --mount --pid --fork --kill-child --mount-proc`` gives the child its own process tree
(so ``/proc`` shows neither the parent's command line nor its environment) and its own mount
table, in which every path of ``hide`` is covered (a directory by an empty read-only tmpfs, a file
by ``/dev/null``); then ``setpriv`` drops every capability and sets no-new-privs before running
the command, so the child cannot unmount the covers or mount the host's ``/proc`` again.
In all modes the child gets a scrubbed environment (only ``PASSTHROUGH_VARS`` and ``HOME`` = a
fresh temp dir), a fresh empty working directory, no stdin and its own session.

Fallback ("subprocess", with a logged warning): the same scrubbed environment and working
directory, without hiding anything. ``SandboxResult.isolation`` says which one ran.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Isolation = Literal["namespace", "subprocess"]
IsolationRequest = Literal["auto", "namespace", "subprocess"]

# Variables a child may need to run a program or a python interpreter; nothing else passes.
PASSTHROUGH_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
                    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                    "TOKENIZERS_PARALLELISM")

# Runs inside the new namespaces: cover the hidden paths, drop all capabilities, run the command.
# Arguments: N, then N "d:PATH" or "f:PATH" items, then the command.
_COVER_AND_EXEC = r"""
set -e
n=$1; shift
while [ "$n" -gt 0 ]; do
  kind=${1%%:*}; target=${1#?:}
  if [ "$kind" = d ]; then
    mount -t tmpfs -o ro,nosuid,nodev,size=4k,mode=0555 w2s-hidden "$target"
  else
    mount --bind /dev/null "$target"
  fi
  shift; n=$((n - 1))
done
exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"
"""


class SandboxError(RuntimeError):
    """The sandbox could not be set up as requested (e.g. namespaces demanded but unavailable)."""


class SandboxTimeout(RuntimeError):
    """The child ran past its time limit and was killed (with its whole process group)."""

    def __init__(self, timeout_s: float, stderr: str) -> None:
        self.timeout_s = timeout_s
        self.stderr = stderr
        super().__init__(f"timed out after {timeout_s:g} s")


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed child did.

    Attributes:
        returncode: the child's exit status (negative: killed by that signal).
        stdout, stderr: its output, decoded as UTF-8 with replacement.
        isolation: ``"namespace"`` or ``"subprocess"`` (the fallback, nothing hidden).
        hidden: the paths covered inside the child (empty for ``"subprocess"``).
    """

    returncode: int
    stdout: str
    stderr: str
    isolation: Isolation
    hidden: tuple[str, ...]

    def last_stderr_line(self) -> str:
        """The last non-blank stderr line ('' if none), for one-line error messages."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


@dataclass
class SandboxPolicy:
    """What the caller wants hidden from untrusted code run during one method run.

    Attributes:
        hide: paths to cover (the dataset directory, the run store, the results cache, ...).
        isolation: ``auto`` (namespace if available, else fallback), ``namespace`` (required)
            or ``subprocess``.
        used: isolation levels actually used by sandboxed children so far, in order.
    """

    hide: tuple[str, ...] = ()
    isolation: IsolationRequest = "auto"
    used: list[Isolation] = field(default_factory=list)


_POLICY: contextvars.ContextVar[SandboxPolicy | None] = contextvars.ContextVar(
    "w2s_sandbox_policy", default=None)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies.

    The sandbox runs in its own session (so a timeout can kill its whole group), which puts it
    out of reach of a kill aimed at the caller's process group; PR_SET_PDEATHSIG closes that gap
    when a cancelled flow kills the worker that started it (``unshare --kill-child`` then takes
    the sandboxed program with it).
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def sandbox_policy(hide: Sequence[str | os.PathLike[str]] = (),
                   isolation: IsolationRequest = "auto") -> Iterator[SandboxPolicy]:
    """Set the policy that sandboxed children started in this context follow.

    Args:
        hide: paths to cover in every sandboxed child.
        isolation: see :class:`SandboxPolicy`.

    Yields:
        the policy; its ``used`` list fills as children run.
    """
    policy = SandboxPolicy(tuple(str(p) for p in hide), isolation)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def current_policy() -> SandboxPolicy:
    """The policy of the enclosing :func:`sandbox_policy`, or a default one (hide nothing)."""
    return _POLICY.get() or SandboxPolicy()


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether ``unshare`` can create mount+PID namespaces here and ``setpriv`` exists (cached)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
             "sh", "-c", "mount -t tmpfs -o size=4k w2s-probe /mnt && setpriv --no-new-privs "
             "--bounding-set=-all -- true"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def scrubbed_env(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``PASSTHROUGH_VARS`` present in ours, ``HOME``, then ``extra``."""
    env = {name: os.environ[name] for name in PASSTHROUGH_VARS if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = home
    env.update(extra or {})
    return env


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip(os.sep) + os.sep)


def _cover_items(hide: Sequence[str], visible: Sequence[str]) -> list[str]:
    items = []
    for raw in hide:
        target = os.path.realpath(raw)
        if not os.path.lexists(target):
            continue
        for path in visible:
            if _inside(os.path.realpath(path), target):
                raise SandboxError(f"cannot hide {raw}: the child needs {path} inside it")
        items.append(("d:" if os.path.isdir(target) else "f:") + target)
    return items


def _choose(isolation: IsolationRequest) -> Isolation:
    if isolation == "subprocess":
        return "subprocess"
    if namespaces_available():
        return "namespace"
    if isolation == "namespace":
        raise SandboxError("Linux namespaces are not available here (unshare/setpriv missing or "
                           "not permitted); cannot run with isolation='namespace'")
    log.warning("sandbox: Linux namespaces unavailable; running untrusted code as a plain "
                "subprocess with a scrubbed environment (hidden paths stay readable)")
    return "subprocess"


def run_sandboxed(argv: Sequence[str], *, timeout_s: float,
                  hide: Sequence[str | os.PathLike[str]] = (),
                  visible: Sequence[str | os.PathLike[str]] = (),
                  env_extra: dict[str, str] | None = None,
                  isolation: IsolationRequest = "auto") -> SandboxResult:
    """Run ``argv`` isolated from ``hide``, in a fresh empty working directory.

    Args:
        argv: the command and its arguments (no shell).
        timeout_s: wall-clock limit; on expiry the child's process group is killed.
        hide: paths the child must not read; missing paths are skipped.
        visible: paths the child needs (its inputs/outputs); hiding an ancestor of one is an
            error.
        env_extra: variables added to the scrubbed environment.
        isolation: ``auto``, ``namespace`` (error if unavailable) or ``subprocess``.

    Returns:
        :class:`SandboxResult`.

    Raises:
        SandboxTimeout: the child ran past ``timeout_s``.
        SandboxError: the requested isolation is unavailable or ``hide`` covers ``visible``.
        FileNotFoundError: the command does not exist (subprocess mode).
    """
    used = _choose(isolation)
    with tempfile.TemporaryDirectory(prefix="w2s-sandbox-") as root:
        covers = _cover_items([str(p) for p in hide], [root, *(str(p) for p in visible)])
        workdir, home = Path(root, "work"), Path(root, "home")
        workdir.mkdir()
        home.mkdir()
        env = scrubbed_env(str(home), env_extra)
        if used == "namespace":
            command = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                       "--", "sh", "-c", _COVER_AND_EXEC, "w2s-sandbox", str(len(covers)),
                       *covers, *argv]
        else:
            command = list(argv)
        process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, preexec_fn=_die_with_parent)
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
            raise SandboxTimeout(timeout_s, stderr.decode("utf-8", "replace")) from None
    current_policy().used.append(used)
    return SandboxResult(process.returncode, stdout.decode("utf-8", "replace"),
                         stderr.decode("utf-8", "replace"), used,
                         tuple(item[2:] for item in covers) if used == "namespace" else ())
