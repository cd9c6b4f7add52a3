"""The jail's system-call filter (``methods/jail_seccomp.py``), with both builders: the calls it
refuses fail with EPERM inside the jail, ordinary work (threads, processes, sockets on the
jail's loopback, shared memory) runs, and the filter covers every process of the jail."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from methods import jail
from methods.jail import JailSpec, run_jailed
from methods.jail_runtime import python_mounts
from methods.jail_seccomp import ALLOWED, REFUSED

pyseccomp = pytest.importorskip("pyseccomp")

BUILDERS = [b for b in ("bwrap", "unshare") if jail._probe(b) is None]
pytestmark = pytest.mark.skipif(not BUILDERS, reason="no jail builder works here")


@pytest.fixture(params=BUILDERS)
def builder(request, monkeypatch):
    monkeypatch.setenv(jail.BUILDER_ENV, request.param)
    return request.param


def _with_interpreter() -> JailSpec:
    """The system and this interpreter, with ``python3`` on the jail's PATH."""
    mounts = {m.target: m for m in (*jail.system_mounts(), *python_mounts())}
    interpreter_bin = str(Path(jail.INTERPRETER).parent)
    return JailSpec(mounts=tuple(mounts.values()), cwd="/tmp",
                    env={"PATH": f"{interpreter_bin}:/usr/bin:/bin"})


# Each refused call with arguments that, without the filter, an unprivileged process gets
# through or fails on for another reason (EINVAL, EFAULT, ...): only the filter answers EPERM.
PROBE = r"""
import ctypes, json, os, sys
numbers = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, number in numbers.items():
    ctypes.set_errno(0)
    args = {"unshare": (0x10000000,), "keyctl": (0, -4, 0), "ptrace": (0,),
            "io_uring_setup": (1, 0), "perf_event_open": (0, 0, -1, -1, 0)}.get(name, ())
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    out[name] = 0 if result >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""


def _numbers(names) -> dict[str, int]:
    arch = pyseccomp.system_arch()
    return {name: pyseccomp.resolve_syscall(arch, name) for name in names
            if pyseccomp.resolve_syscall(arch, name) >= 0}


def test_the_refused_calls_fail_with_eperm_inside_the_jail(builder):
    numbers = _numbers(REFUSED)
    assert {"unshare", "keyctl", "ptrace", "bpf", "io_uring_setup", "mount"} <= set(numbers)
    result = run_jailed(["python3", "-I", "-S", "-c", PROBE, json.dumps(numbers)],
                        _with_interpreter(), timeout_s=60)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers == {name: errno.EPERM for name in numbers}, answers


def test_without_the_filter_the_probe_gets_through():
    """What the test above tells apart: unfiltered (here, the test process itself), a user
    namespace and the keyring are there, io_uring and perf answer with another error."""
    numbers = _numbers(["keyctl", "io_uring_setup", "perf_event_open"])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, json.dumps(numbers)],
                          capture_output=True, text=True, timeout=60, check=True)
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["keyctl"] == 0 and answers["io_uring_setup"] != errno.EPERM, answers


def test_a_user_namespace_cannot_be_made_inside_the_jail(builder):
    # Before the filter the jail's uid ran `unshare --user --map-root-user` and was root inside.
    spec = JailSpec(mounts=tuple(jail.system_mounts()), env={"PATH": "/usr/bin:/bin"})
    result = run_jailed(["sh", "-c", "unshare --user --map-root-user id -u; echo rc=$?; "
                         "grep '^Seccomp:' /proc/self/status"], spec, timeout_s=60)
    assert "rc=1" in result.stdout and "Operation not permitted" in result.stderr, result
    assert "Seccomp:\t2" in result.stdout  # filter mode, inherited by the shell's children


def test_ordinary_work_runs_under_the_filter(builder):
    code = (
        "import mmap, os, socket, subprocess, threading\n"
        "done = []\n"
        "threads = [threading.Thread(target=done.append, args=(i,)) for i in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(1)\n"
        "client = socket.create_connection(server.getsockname()); peer, _ = server.accept()\n"
        "client.sendall(b'hi'); assert peer.recv(2) == b'hi'\n"
        "shared = mmap.mmap(-1, 4096); shared[:2] = b'ok'\n"
        "child = subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True)\n"
        "print(len(done), child.stdout.strip(), bytes(shared[:2]).decode(), os.cpu_count() > 0)\n")
    result = run_jailed(["python3", "-I", "-c", code], _with_interpreter(), timeout_s=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["4", "child", "ok", "True"], result.stdout


def test_the_allow_list_and_the_refusals_do_not_overlap():
    assert not set(ALLOWED) & set(REFUSED)
    assert len(set(ALLOWED)) == len(ALLOWED) and len(set(REFUSED)) == len(REFUSED)
