"""The jail's system-call filter: an allow-list of the calls ordinary programs make.

Every process of a jail runs under a seccomp filter compiled by libseccomp (through
``pyseccomp``) from :data:`ALLOWED`: file and memory calls, processes and threads, signals,
time, polling, System V and POSIX IPC (the jail has its own IPC namespace), sockets (its own
network namespace), ``ioctl`` (GPU drivers need it) and Linux AIO (DeepSpeed's async I/O op).
Everything else fails: the calls in :data:`REFUSED` with ``EPERM``, any other with ``ENOSYS``
(so a C library that probes a call newer than the filter falls back, as on an older kernel).

Why: the jail's uid is unprivileged, but the kernel still offered it user namespaces (in which
it is root and may mount filesystems), keyrings that outlive the jail under a fixed
``W2S_JAIL_UID``, ``io_uring``, ``bpf``, ``perf_event_open``, ``userfaultfd`` and ``ptrace``:
kernel surface no W2S method needs, and most kernel exploits start from one of them (docs/
security.md). ``clone`` is allowed only without namespace flags, and ``clone3`` (whose flags a
filter cannot read) answers ``ENOSYS``, so the C library uses ``clone``. A call of another
architecture's ABI (``int 0x80`` on x86-64, x32) kills the process (libseccomp's default).

Loading: bubblewrap installs the program itself (``--seccomp FD``); the util-linux builder runs
:data:`LOADER` (the interpreter's standard library only) as the jail's first command, which
installs it with ``prctl`` and execs the rest. Either way the filter covers the whole jail: the
outputs collector, the privilege drop and the program, and everything they start.
"""
from __future__ import annotations

import errno
import functools
import os
import tempfile

# Grouped by purpose; names of one architecture that another lacks (``open`` on arm64) are
# skipped there.
ALLOWED: tuple[str, ...] = (
    # files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "dup",
    "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64", "readahead",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "ioctl",
    # metadata and directories
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
    "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link",
    "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask", "utime", "utimes",
    "utimensat", "futimesat", "mknod", "mknodat", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch",
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "mincore", "msync", "membarrier", "memfd_create",
    "get_mempolicy", "set_mempolicy", "mbind", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "map_shadow_stack", "mseal",
    # processes, threads, credentials of its own
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
    "tkill", "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp",
    "getsid", "setsid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getgroups", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capget", "capset", "prctl", "arch_prctl",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex", "futex_waitv",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "uname", "sysinfo", "getcpu", "ioprio_get", "ioprio_set", "pidfd_open",
    "pidfd_send_signal", "restart_syscall", "seccomp", "getrandom",
    # NCCL 2.19's cuMem path hands CUDA memory between the ranks of a jail with it; it needs
    # ptrace access, which the non-dumpable outputs collector refuses to the jail's uid
    "pidfd_getfd",
    # signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "signalfd",
    "signalfd4", "pause", "alarm",
    # time
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime",
    "timerfd_gettime",
    # waiting on descriptors
    "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    # IPC inside the jail's own IPC namespace
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    # sockets inside the jail's own network namespace (the rendezvous of one process)
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "shutdown", "setsockopt", "getsockopt",
    # Linux AIO (DeepSpeed's async_io op), not io_uring
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
)

# Refused with EPERM (the rest of what is not allowed answers ENOSYS). The list names the calls
# a reader looks for; it is not what keeps them out (the allow-list is).
REFUSED: tuple[str, ...] = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "keyctl", "add_key",
    "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "quotactl", "syslog", "vhangup", "iopl", "ioperm", "personality", "sethostname",
    "setdomainname", "modify_ldt", "move_pages", "migrate_pages", "process_madvise",
    "lookup_dcookie", "uselib",
)

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
# CLONE_NEWNET: clone is allowed only with none of them.
NAMESPACE_FLAGS = 0x7E020000

# Runs with ``python -I -S -c LOADER FD COMMAND...``: reads the compiled filter from FD, installs
# it (PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER) and execs COMMAND.
LOADER = r"""
import ctypes, os, sys
fd, command = int(sys.argv[1]), sys.argv[2:]
program = b""
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    program += chunk
os.close(fd)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
code = ctypes.create_string_buffer(program, len(program))
libc = ctypes.CDLL(None, use_errno=True)
fprog = Fprog(len(program) // 8, ctypes.addressof(code))
if not program or len(program) % 8 or libc.prctl(38, 1, 0, 0, 0) or \
        libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):
    sys.stderr.write("w2s-jail: cannot install the system-call filter: "
                     + os.strerror(ctypes.get_errno()) + "\n")
    sys.exit(126)
os.execvp(command[0], command)
"""


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python binding) is missing, so no filter can be compiled."""


@functools.lru_cache(maxsize=1)
def filter_program() -> bytes:
    """The filter as a classic BPF program for this machine's architecture (cached).

    Raises:
        SeccompUnavailable: libseccomp cannot be loaded (one line saying what to install).
    """
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as err:
        raise SeccompUnavailable(f"cannot load libseccomp ({err}); install libseccomp2 "
                                 "(apt-get install libseccomp2) and pyseccomp") from None
    arch = seccomp.system_arch()
    rules = seccomp.SyscallFilter(seccomp.ERRNO(errno.ENOSYS))
    for action, names in ((seccomp.ALLOW, ALLOWED), (seccomp.ERRNO(errno.EPERM), REFUSED)):
        for name in names:
            if seccomp.resolve_syscall(arch, name) >= 0:  # a call of this architecture
                rules.add_rule(action, name)
    rules.add_rule(seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, NAMESPACE_FLAGS, 0))
    for bit in (1 << n for n in range(32) if NAMESPACE_FLAGS >> n & 1):
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ,
                                                                      bit, bit))
    # clone3 is left to the default (ENOSYS): its flags are in memory a filter cannot read.
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def program_descriptor() -> int:
    """A new descriptor holding :func:`filter_program`, at offset 0 (the caller closes it).

    An anonymous memory file (no path on any filesystem); inheritable, so it can be handed to
    the builder with ``pass_fds``.
    """
    fd = os.memfd_create("w2s-jail-seccomp", 0)
    try:
        program = filter_program()
        written = 0
        while written < len(program):
            written += os.write(fd, program[written:])
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def loader_command(python: str, fd: int, command: list[str]) -> list[str]:
    """``command`` under :data:`LOADER`, run by ``python`` (the interpreter's real path)."""
    return [python, "-I", "-S", "-c", LOADER, str(fd), *command]
