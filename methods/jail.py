"""The jail: run untrusted code in a fresh root that holds only what the job was given.

An allow-list, not a deny-list. The jailed program sees a new, empty root filesystem into which
exactly the mounts of a :class:`JailSpec` are placed (read-only unless a mount says otherwise),
plus a private ``/tmp`` and ``/dev/shm``, a minimal ``/dev`` and a fresh ``/proc``. It has its own
PID, IPC, UTS and network namespaces (the host's network, loopback included, is unreachable; the
jail's own loopback exists only inside it), runs as an unprivileged uid/gid with every capability
dropped and no-new-privs set, under resource limits, in its own session, and is SIGKILLed when
the process that started it dies.

Two builders render the same spec:

- ``bwrap`` (bubblewrap, preferred; ``apt-get install bubblewrap``). As root, bubblewrap builds
  the root without a user namespace and ``setpriv`` inside the jail drops to the jail's uid, so
  the program is an unprivileged uid on the host too (a uid-0 process with capabilities dropped
  could still write every root-owned file it sees). As a non-root user, bubblewrap runs in a new
  user namespace as that user.
- ``unshare`` (util-linux fallback, root only; ``methods/jail_unshare.py``): ``unshare`` for the
  namespaces, a small shell script that mounts a tmpfs root, binds the allowed paths,
  ``pivot_root``s into it and execs ``setpriv`` with the same drop.

Both put every process of the jail under the same system-call allow-list
(``methods/jail_seccomp.py``): no user namespaces, mounts, keyrings, ``ptrace``, ``bpf``,
``io_uring`` and the like.

``W2S_JAIL_BUILDER=bwrap|unshare`` forces one; otherwise the first that works here is used.
When neither works, :func:`jail_builder` raises :class:`JailUnavailable` (one line, saying what
to install); callers never fall back to running unjailed on their own.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from methods.jail_outputs import Collect, OutputsPipe
from methods.jail_seccomp import SeccompUnavailable, loader_command, program_descriptor
from methods.jail_unshare import unshare_argv

Builder = Literal["bwrap", "unshare"]
MountKind = Literal["ro", "rw", "dev", "tmpfs", "symlink", "dir"]

BUILDER_ENV = "W2S_JAIL_BUILDER"
JAIL_UID_ENV = "W2S_JAIL_UID"
# Each jail runs as a uid of its own, drawn from a range no distribution allocates, so that
# nothing the kernel keeps per uid (keyrings, process counts) is shared between two jails, and
# the jailed program owns nothing on the host but its outputs.
JAIL_UID_BASE, JAIL_UID_SPAN = 2_000_000_000, 1 << 24
JAIL_HOSTNAME = "w2s-jail"
# How much of the program's stdout/stderr the parent keeps (the tail), whatever it prints.
OUTPUT_TAIL_BYTES = 64 * 1024
# The interpreter that loads the system-call filter under the util-linux builder, and its
# prefix (mounted read-only there when a spec does not mount it).
INTERPRETER = os.path.realpath(sys.executable)
INTERPRETER_PREFIX = str(Path(INTERPRETER).parents[1])
SETPRIV_DROP = ("--clear-groups", "--inh-caps=-all", "--ambient-caps=-all",
                "--bounding-set=-all", "--no-new-privs")


class JailUnavailable(RuntimeError):
    """No jail builder works here (bubblewrap missing and the util-linux fallback not permitted)."""


class JailTimeout(RuntimeError):
    """The jailed program ran past its wall-clock limit and was killed with its whole jail."""

    def __init__(self, timeout_s: float, stderr: str) -> None:
        self.timeout_s = timeout_s
        self.stderr = stderr
        super().__init__(f"timed out after {timeout_s:g} s")


@dataclass(frozen=True)
class Mount:
    """One entry of the jail's filesystem.

    Attributes:
        kind: ``ro``/``rw`` bind ``source`` at ``target``; ``dev`` binds a device node;
            ``tmpfs`` mounts an empty writable tmpfs (``size`` bytes, mode 1777);
            ``symlink`` creates ``target`` pointing at ``source`` (a path as the link holds it);
            ``dir`` creates an empty directory.
        source: host path (``ro``, ``rw``, ``dev``) or link text (``symlink``).
        target: absolute path inside the jail.
        size: tmpfs size in bytes.
    """

    kind: MountKind
    target: str
    source: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if not os.path.isabs(self.target) or ".." in Path(self.target).parts:
            raise ValueError(f"jail mount target must be an absolute path, got {self.target!r}")


@dataclass(frozen=True)
class JailLimits:
    """Resource limits of the jailed program (setrlimit; inherited by everything it starts).

    Attributes:
        memory_bytes: memory of the whole jail, every process and its tmpfs together (a memory
            control group, ``methods.cgroups``; None: unlimited). Where no control group can be
            made, only the per-process limit below holds.
        address_space_bytes: RLIMIT_AS of each process (None: unlimited; GPU drivers reserve
            huge address ranges, so GPU jails leave it off).
        processes: processes and threads of the jail (a pids control group) and RLIMIT_NPROC
            of its uid.
        file_bytes: RLIMIT_FSIZE, the largest file it may write.
        open_files: RLIMIT_NOFILE.
        cpu_seconds: RLIMIT_CPU, summed over its threads (None: unlimited).
        tmp_bytes: size of the private ``/tmp`` and ``/dev/shm`` tmpfs each.
        out_bytes: size of the outputs tmpfs of a method job (``/w2s/out``).
    """

    memory_bytes: int | None = None
    address_space_bytes: int | None = None
    processes: int = 1024
    file_bytes: int = 1 << 30
    open_files: int = 4096
    cpu_seconds: int | None = None
    tmp_bytes: int = 2 << 30
    out_bytes: int = 4 << 30


def _command(spec: JailSpec, argv: Sequence[str], as_root: bool,
             collect_fd: int | None) -> list[str]:
    """What the jail's first process runs: the privilege drop (as root) and the program, under
    the outputs collector (``methods.jail_outputs``) when the spec has one."""
    command = list(argv)
    if as_root:
        uid, gid = _spec_ids(spec)
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", *SETPRIV_DROP, "--", *command]
    if spec.collect is not None:
        if collect_fd is None:
            raise ValueError("a spec that collects outputs needs the outputs pipe")
        command = spec.collect.wrap(command, collect_fd)
    return command


@dataclass(frozen=True)
class JailSpec:
    """Everything the jailed program gets: mounts, environment, working directory, limits."""

    mounts: tuple[Mount, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/tmp"
    limits: JailLimits = field(default_factory=JailLimits)
    uid: int | None = None  # the jail's uid and gid when the caller is root; None: a fresh one
    collect: Collect | None = None


@dataclass(frozen=True)
class JailResult:
    """What a jailed program did: exit status (negative: killed by that signal), the tails of
    its stdout and stderr (decoded UTF-8 with replacement), and the builder that ran it
    (``bwrap``, ``unshare``, or ``none`` for an unjailed program)."""

    returncode: int
    stdout: str
    stderr: str
    builder: str
    cgroup: bool = False  # whether a control group bounded the jail's memory and processes

    def last_stderr_line(self) -> str:
        """The last non-blank stderr line ('' if none), for one-line error messages; characters
        that are not printable (terminal escape sequences) are shown as '?'."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return printable(lines[-1].strip()[:500]) if lines else ""


def printable(text: str) -> str:
    """``text`` with every character that is not printable replaced by '?': untrusted text
    (a jailed program's stderr or error message) must not drive the user's terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def jail_ids() -> tuple[int, int]:
    """A uid and gid for one jail when the caller is root: ``$W2S_JAIL_UID`` if set (one fixed
    id, e.g. where a cluster allows only certain uids), else a fresh draw from a range of 2**24
    ids above 2,000,000,000 (no two concurrent or successive jails share one but by chance)."""
    import secrets

    raw = os.environ.get(JAIL_UID_ENV)
    if raw is None:
        uid = JAIL_UID_BASE + secrets.randbelow(JAIL_UID_SPAN)
        return uid, uid
    try:
        uid = int(raw)
    except ValueError:
        raise JailUnavailable(f"{JAIL_UID_ENV}={raw!r}: expected an integer uid") from None
    if not 0 < uid < 2**32 - 1:
        raise JailUnavailable(f"{JAIL_UID_ENV}={uid}: expected a non-root uid")
    return uid, uid


def _spec_ids(spec: JailSpec) -> tuple[int, int]:
    return (spec.uid, spec.uid) if spec.uid is not None else jail_ids()


# --- building the command ---------------------------------------------------------------------

def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _bwrap_argv(spec: JailSpec, argv: Sequence[str], as_root: bool,
                collect_fd: int | None, seccomp_fd: int) -> list[str]:
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", JAIL_HOSTNAME, "--seccomp", str(seccomp_fd)]
    if not as_root:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(spec.limits.tmp_bytes), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(spec.limits.tmp_bytes), "--tmpfs", "/dev/shm"]
    made: set[str] = {"/", "/proc", "/dev", "/tmp", "/dev/shm"}
    for mount in spec.mounts:
        # bubblewrap makes missing parents 0700, which the unprivileged program cannot enter.
        for parent in _ancestors(mount.target):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        made.add(mount.target)
        if mount.kind == "ro":
            args += ["--ro-bind", str(mount.source), mount.target]
        elif mount.kind == "rw":
            args += ["--bind", str(mount.source), mount.target]
        elif mount.kind == "dev":
            args += ["--dev-bind", str(mount.source), mount.target]
        elif mount.kind == "tmpfs":
            args += ["--perms", "1777", "--size", str(mount.size or spec.limits.tmp_bytes),
                     "--tmpfs", mount.target]
        elif mount.kind == "symlink":
            args += ["--symlink", str(mount.source), mount.target]
        else:
            args += ["--perms", "0755", "--dir", mount.target]
    # bubblewrap's root is a tmpfs owned by the caller: a non-root caller's program has that
    # uid and could fill it without bound or move the mounts made on it; read-only after the
    # last mount, while the mounts on it (/tmp, /dev/shm, the outputs tmpfs) stay as they are.
    args += ["--remount-ro", "/", "--clearenv"]
    for name, value in spec.env.items():
        args += ["--setenv", name, value]
    args += ["--chdir", spec.cwd, "--"]
    return args + _command(spec, argv, as_root, collect_fd)


def _unshare_argv(spec: JailSpec, argv: Sequence[str], root: str, collect_fd: int | None,
                  seccomp_fd: int) -> list[str]:
    # The filter's loader is the interpreter (standard library only): mount it if the spec
    # does not already.
    if not any(m.kind == "ro" and m.source == m.target
               and Path(INTERPRETER).is_relative_to(m.target) for m in spec.mounts):
        spec = dataclasses.replace(spec, mounts=(*spec.mounts, Mount(
            "ro", INTERPRETER_PREFIX, INTERPRETER_PREFIX)))
    # The loader runs before `env -i` (Python's locale coercion sets LC_CTYPE).
    return unshare_argv(spec, _command(spec, argv, True, collect_fd), root,
                        loader=loader_command(INTERPRETER, seccomp_fd, []))


# --- choosing a builder -----------------------------------------------------------------------

def _probe(builder: Builder) -> str | None:
    """Why ``builder`` cannot build a jail here, or None when a trivial jail ran."""
    tools = {"bwrap": ("bwrap", "setpriv"), "unshare": ("unshare", "setpriv", "pivot_root")}
    missing = [tool for tool in tools[builder] if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    if builder == "unshare" and os.geteuid() != 0:
        return "the util-linux fallback needs root"
    spec = JailSpec(mounts=tuple(system_mounts()), env={"PATH": "/usr/bin:/bin"})
    try:
        result = _run(builder, spec, ["true"], timeout_s=30)
    except (OSError, JailTimeout, SeccompUnavailable) as err:
        return str(err)
    if result.returncode != 0:
        return result.last_stderr_line() or f"exit status {result.returncode}"
    return None


@functools.lru_cache(maxsize=4)
def _available(forced: str | None) -> Builder:
    if forced not in (None, "", "bwrap", "unshare"):
        raise JailUnavailable(f"{BUILDER_ENV}={forced!r}: expected 'bwrap' or 'unshare'")
    candidates: tuple[Builder, ...] = (forced,) if forced else ("bwrap", "unshare")  # type: ignore[assignment]
    reasons = []
    for builder in candidates:
        reason = _probe(builder)
        if reason is None:
            return builder
        reasons.append(f"{builder}: {reason}")
    raise JailUnavailable("cannot build the method jail (" + "; ".join(reasons) + "); install "
                          "bubblewrap (apt-get install bubblewrap) or run as root with util-linux "
                          "unshare/pivot_root/setpriv")


def jail_builder() -> Builder:
    """The builder jails use here (cached per ``W2S_JAIL_BUILDER`` value).

    Raises:
        JailUnavailable: neither builder works; the message says what to install.
    """
    return _available(os.environ.get(BUILDER_ENV) or None)


def jail_available() -> bool:
    """Whether a jail can be built here."""
    try:
        jail_builder()
    except JailUnavailable:
        return False
    return True


# --- the filesystem every jail gets -----------------------------------------------------------

def system_mounts() -> list[Mount]:
    """The operating system's runtime, read-only: ``/usr`` and the top-level links or
    directories into it (``/bin``, ``/lib``...), the dynamic linker's cache and the
    alternatives links (``/usr/bin/awk`` points there on Debian). Nothing else of ``/etc``."""
    mounts = [Mount("ro", "/usr", "/usr")]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = f"/{name}"
        if os.path.islink(host):
            mounts.append(Mount("symlink", host, os.readlink(host)))
        elif os.path.isdir(host):
            mounts.append(Mount("ro", host, host))
    for path in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"):
        if os.path.exists(path):
            mounts.append(Mount("ro", path, os.path.realpath(path) if path.endswith("time")
                                else path))
    return mounts


def gpu_mounts() -> list[Mount]:
    """NVIDIA device nodes, when the host has them (the jailed trainer may use the GPU)."""
    devices = sorted(str(p) for p in Path("/dev").glob("nvidia*") if p.is_char_device())
    return [Mount("dev", path, path) for path in devices]


# --- running ----------------------------------------------------------------------------------

def _limit(kind: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(kind, (value, value))


def _preexec(limits: JailLimits, cgroup=None):
    def apply() -> None:
        import ctypes

        if cgroup is not None:
            cgroup.join()  # before exec: everything the program starts stays in the group
        # SIGKILL when the process that started the jail dies (PR_SET_PDEATHSIG = 1); the
        # builders carry it on into the jail (--die-with-parent / --kill-child).
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
        _limit(resource.RLIMIT_AS, limits.address_space_bytes)
        _limit(resource.RLIMIT_NPROC, limits.processes)
        _limit(resource.RLIMIT_FSIZE, limits.file_bytes)
        _limit(resource.RLIMIT_NOFILE, limits.open_files)
        _limit(resource.RLIMIT_CPU, limits.cpu_seconds)

    return apply


def _tail(handle) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - OUTPUT_TAIL_BYTES))
    return handle.read().decode("utf-8", "replace")


def _run(builder: Builder, spec: JailSpec, argv: Sequence[str], timeout_s: float) -> JailResult:
    with tempfile.TemporaryDirectory(prefix="w2s-jail-") as private, \
            contextlib.ExitStack() as stack:
        pipe = None if spec.collect is None else stack.enter_context(OutputsPipe(spec.collect))
        fd = None if pipe is None else pipe.write_end
        seccomp_fd = program_descriptor()
        stack.callback(os.close, seccomp_fd)
        if builder == "bwrap":
            command = _bwrap_argv(spec, argv, os.geteuid() == 0, fd, seccomp_fd)
        else:
            root = Path(private, "root")
            root.mkdir()
            command = _unshare_argv(spec, argv, str(root), fd, seccomp_fd)
        result = run_process(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, cwd="/",
                             limits=spec.limits, timeout_s=timeout_s, label=builder,
                             pass_fds=(seccomp_fd,) if fd is None else (fd, seccomp_fd))
        problem = None if pipe is None else pipe.finish()
        if problem is None:
            return result
        return dataclasses.replace(result, stderr=result.stderr + (
            f"\nw2s-jail: {problem}; none of the outputs were kept\n"))


def run_process(command: Sequence[str], *, env: dict[str, str], cwd: str, limits: JailLimits,
                timeout_s: float, label: str, pass_fds: Sequence[int] = ()) -> JailResult:
    """Run ``command`` in its own session under ``limits``, killed with its session on timeout
    or when this process dies; keep only the tails of its output.

    Output goes to anonymous files (the file-size limit caps them) and only the last
    ``OUTPUT_TAIL_BYTES`` are read back, so a program that floods its output cannot flood the
    caller. Used for the jail builders and, unjailed, for the program itself.
    """
    from methods.cgroups import jail_cgroup

    cgroup = jail_cgroup(limits.memory_bytes, limits.processes)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=err, env=env, cwd=cwd, start_new_session=True,
                                       pass_fds=tuple(pass_fds),
                                       preexec_fn=_preexec(limits, cgroup))
            try:
                returncode = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise JailTimeout(timeout_s, _tail(err)) from None
            finally:
                # Whatever it left behind in its session dies with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        finally:
            if cgroup is not None:
                cgroup.remove()
        return JailResult(returncode, _tail(out), _tail(err), label, cgroup is not None)


def run_jailed(argv: Sequence[str], spec: JailSpec, *, timeout_s: float) -> JailResult:
    """Run ``argv`` (no shell) inside a jail built from ``spec``.

    Args:
        argv: the program (a path inside the jail, or a name on ``spec.env["PATH"]``) and its
            arguments.
        spec: mounts, environment, working directory and limits.
        timeout_s: wall-clock limit; on expiry the whole jail is killed.

    Returns:
        :class:`JailResult`.

    Raises:
        JailUnavailable: no builder works here.
        JailTimeout: the program ran past ``timeout_s``.
    """
    return _run(jail_builder(), spec, argv, timeout_s)


def describe_spec(spec: JailSpec) -> str:
    """The mounts of ``spec``, one per line (for docs, logs and tests)."""
    return "\n".join(f"{m.kind:7} {m.target}" + (f" <- {m.source}" if m.source else "")
                     for m in spec.mounts) + "\nenv: " + shlex.join(
                         f"{k}={v}" for k, v in sorted(spec.env.items()))
