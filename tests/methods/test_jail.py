"""The jail, tested directly with both builders: what exists inside, what is writable, who runs,
which network and processes are visible, limits and time-outs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from methods import jail
from methods.jail import JailLimits, JailSpec, JailTimeout, JailUnavailable, Mount, run_jailed
from methods.jail_runtime import JailRequest, jail_spec, job_directories


def _builders() -> list[str]:
    found = []
    for builder in ("bwrap", "unshare"):
        if jail._probe(builder) is None:
            found.append(builder)
    return found


BUILDERS = _builders()
pytestmark = pytest.mark.skipif(not BUILDERS, reason="no jail builder works here")


@pytest.fixture(params=BUILDERS)
def builder(request, monkeypatch):
    monkeypatch.setenv(jail.BUILDER_ENV, request.param)
    return request.param


def shell(script: str, *, mounts=(), limits=JailLimits(), timeout_s=60.0, env=None, uid=None):
    spec = JailSpec(mounts=(*jail.system_mounts(), *mounts),
                    env=env or {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, limits=limits, uid=uid)
    return run_jailed(["sh", "-c", script], spec, timeout_s=timeout_s)


def test_only_the_allowed_mounts_exist(builder, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "gold.jsonl").write_text('{"id": "x", "label": 1}\n')
    given = tmp_path / "given"
    given.mkdir()
    (given / "inputs.txt").write_text("ok\n")
    result = shell(f"ls -A /; cat /given/inputs.txt; cat {secret}/gold.jsonl; ls {tmp_path}; "
                   "ls /work /root /home /etc; echo done",
                   mounts=[Mount("ro", "/given", str(given))])
    top = set(result.stdout.split("ok")[0].split())
    allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev",
               "tmp", "given"}
    if builder == "unshare":  # the interpreter that loads the system-call filter
        allowed.add(Path(jail.INTERPRETER_PREFIX).parts[1])
    assert top <= allowed, top
    assert "ok" in result.stdout and "label" not in result.stdout
    assert result.stdout.strip().endswith("done")
    etc = result.stdout.split("ok")[1]
    assert "passwd" not in etc and "shadow" not in etc


def test_read_only_mounts_refuse_writes_and_rw_mounts_take_them(builder, tmp_path):
    given, out = tmp_path / "given", tmp_path / "out"
    given.mkdir()
    out.mkdir()
    os.chmod(out, 0o777)
    (given / "file").write_text("original\n")
    result = shell("echo x > /given/file; echo x > /usr/w2s-test; echo x > /newfile; "
                   "echo written > /out/result; echo tmp > /tmp/t && cat /tmp/t",
                   mounts=[Mount("ro", "/given", str(given)), Mount("rw", "/out", str(out))])
    assert (given / "file").read_text() == "original\n"
    assert not Path("/usr/w2s-test").exists()
    assert (out / "result").read_text() == "written\n"
    assert "tmp" in result.stdout
    assert result.stderr.count("Read-only file system") >= 2


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop is what a root caller gets")
def test_the_program_is_an_unprivileged_uid_on_the_host_too(builder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    owned = tmp_path / "root-owned"
    owned.mkdir()
    (owned / "f").write_text("root's\n")
    os.chmod(owned / "f", 0o666 & ~0o022)  # 0644: owner (root) may write, others may not
    uid, gid = jail.jail_ids()
    result = shell("id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
                   "touch /out/made; echo pwn >> /owned/f",
                   mounts=[Mount("rw", "/out", str(out)), Mount("rw", "/owned", str(owned))],
                   uid=uid)
    lines = result.stdout.split()
    assert lines[:2] == [str(uid), str(gid)]
    assert "0000000000000000" in result.stdout and "NoNewPrivs:\t1" in result.stdout
    assert (out / "made").stat().st_uid == uid  # the host sees the jail's uid, not root
    assert (owned / "f").read_text() == "root's\n"  # a root-owned file stays root's


def test_the_hosts_network_and_processes_are_out_of_reach(builder):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        python = os.path.realpath("/usr/bin/python3") if os.path.exists("/usr/bin/python3") \
            else None
        probe = (f"{python} -c \"import socket; s=socket.socket(); s.settimeout(2); "
                 f"print('connect', s.connect_ex(('127.0.0.1', {port})))\"; " if python else "")
        result = shell(probe + "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done;"
                       " hostname")
    finally:
        server.close()
    assert not accepted
    if python:
        assert "connect 0" not in result.stdout
    assert "pytest" not in result.stdout
    assert result.stdout.strip().endswith(jail.JAIL_HOSTNAME)


def test_the_environment_is_only_what_the_spec_says(builder, monkeypatch):
    monkeypatch.setenv("W2S_GOLD_SECRET", "labels-here")
    result = shell("env", env={"PATH": "/usr/bin:/bin", "ONLY": "this"})
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
    assert "W2S_GOLD_SECRET" not in result.stdout
    assert names <= {"PATH", "ONLY", "PWD", "SHLVL", "_"}, names


def test_file_size_process_and_time_limits_hold(builder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    limits = JailLimits(file_bytes=1 << 20, processes=64, open_files=64)
    result = shell("head -c 3000000 /dev/zero > /out/big; echo size=$(stat -c %s /out/big); "
                   "ulimit -u; ulimit -n",
                   mounts=[Mount("rw", "/out", str(out))], limits=limits)
    assert (out / "big").stat().st_size <= 1 << 20
    assert "64" in result.stdout.split()[-2:]
    start = time.monotonic()
    with pytest.raises(JailTimeout):
        shell("sleep 60 & sleep 60", timeout_s=1)
    assert time.monotonic() - start < 15


def test_every_jail_gets_a_uid_of_its_own(builder):
    uids = {shell("id -u").stdout.strip() for _ in range(3)}
    assert len(uids) == 3 and all(int(uid) >= jail.JAIL_UID_BASE for uid in uids)


def test_an_unknown_builder_is_one_clear_line(monkeypatch):
    monkeypatch.setenv(jail.BUILDER_ENV, "docker")
    with pytest.raises(JailUnavailable, match="expected 'bwrap' or 'unshare'"):
        jail.jail_builder()


def test_python_in_the_jail_imports_the_contract_but_not_the_evaluator(builder):
    with job_directories("w2s-test-") as (job, out):
        spec = jail_spec(JailRequest(job_dir=job, out_dir=out))
        probe = ("import importlib, os\n"
                 "import methods.base, transfer.sealed, transfer.student\n"
                 "print('contract ok')\n"
                 "for name in ('transfer.data', 'transfer.arms', 'transfer.store', "
                 "'transfer.canary', 'flows', 'stats'):\n"
                 "    try:\n"
                 "        importlib.import_module(name); print('IMPORTED', name)\n"
                 "    except ImportError:\n"
                 "        print('absent', name)\n"
                 "print(sorted(os.listdir('/w2s/lib/transfer')))\n")
        result = run_jailed([sys.executable, "-c", probe], spec, timeout_s=120)
    assert "contract ok" in result.stdout, result.stderr
    assert "IMPORTED" not in result.stdout
    assert result.stdout.count("absent") == 6
    assert "data" not in result.stdout.splitlines()[-1]


def collecting_spec(destination: Path, file_bytes: int = 1 << 20) -> JailSpec:
    from methods.jail_runtime import python_mounts

    names = ("file", "link", "directory", "fifo", "absent")
    return JailSpec(mounts=(*jail.system_mounts(), *python_mounts(),
                            Mount("tmpfs", "/out", size=file_bytes)),
                    env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
                    collect=jail.Collect("/out", str(destination), names, file_bytes,
                                         sys.executable))


MAKE_OUTPUTS = ("printf 'bytes\\n' > /out/file; ln -s /etc/passwd /out/link; "
                "mkdir /out/directory; mkfifo /out/fifo; echo stray > /out/not-named")


def test_outputs_come_back_over_a_pipe_as_allowed_names_only(builder, tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    result = run_jailed(["sh", "-c", MAKE_OUTPUTS + "; exit 3"], collecting_spec(destination),
                        timeout_s=60)
    assert result.returncode == 3, result.stderr  # the program's status, through the collector
    assert (destination / "file").read_bytes() == b"bytes\n"
    assert os.readlink(destination / "link") == "/etc/passwd"  # a link stays a link: refused
    assert (destination / "directory").is_dir() and (destination / "fifo").is_dir()
    assert sorted(p.name for p in destination.iterdir()) == ["directory", "fifo", "file", "link"]
    # The real job's jail binds no host directory writable: outputs leave only by the pipe.
    with job_directories("w2s-test-") as (job, out):
        spec = jail_spec(JailRequest(job_dir=job, out_dir=out))
    assert [m.target for m in spec.mounts if m.kind in ("rw", "dev")] == []
    assert spec.collect is not None and spec.collect.destination == str(out)


def test_a_file_larger_than_the_outputs_bound_comes_back_as_its_size_only(builder, tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    # A sparse file: 900 MB apparent size in a 1 MiB tmpfs.
    result = run_jailed(["sh", "-c", "truncate -s 900000000 /out/file"],
                        collecting_spec(destination), timeout_s=60)
    assert result.returncode == 0, result.stderr
    shown = (destination / "file").stat()
    (destination / "file").unlink()  # no sparse giant left in /tmp for other tools to read
    assert shown.st_size == 900_000_000 and shown.st_blocks == 0  # refused by size, no disk


NON_ROOT_UID = 65534
# Write 8 MiB into every pipe of every process the program can open (the outputs pipe is held by
# the collector, which is not dumpable, so its descriptors are not among them).
PUSH = ("; for fd in /proc/[0-9]*/fd/*; do case $(readlink $fd) in pipe:*) "
        "head -c 8388608 /dev/zero > $fd && echo pushed-$fd;; esac; done 2>/dev/null")


# bubblewrap's root is a tmpfs the non-root program owns: without --remount-ro it could write
# there without bound (an attacker review parked 1 GiB of RAM in it) or move the jail's mounts.
ROOTER = ("; { head -c 1048576 /dev/zero > /planted && echo root-writable; "
          "mkdir /elsewhere && echo root-writable; mv /out /moved && echo root-writable; "
          "} 2>/dev/null")


def _as_non_root(code: str, workdir: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as an unprivileged caller (uid 65534, as a non-root cluster pod runs),
    with this checkout on its path: bubblewrap then builds the jail in a user namespace and the
    program has the caller's own uid. Where the interpreter lives below a directory that user
    cannot enter (``/root/.pyenv`` here), the caller runs in a mount namespace of its own in
    which that directory is a world-readable tmpfs holding only the interpreter's tree."""
    os.chown(workdir, NON_ROOT_UID, NON_ROOT_UID)
    prefix = Path(os.path.realpath(sys.executable)).parents[1]
    blocked = next((p for p in reversed(prefix.parents) if not os.stat(p).st_mode & 0o001),
                   None)
    wrap: list[str] = []
    if blocked is not None:
        child = blocked / prefix.relative_to(blocked).parts[0]
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'set -e; stash=$(mktemp -d); mount --bind "$1" "$stash"; '
                'mount -t tmpfs -o mode=0755 w2s-test "$2"; mkdir "$1"; '
                'mount --move "$stash" "$1"; rmdir "$stash"; shift 2; exec "$@"',
                "w2s-test", str(child), str(blocked)]
    return subprocess.run(
        [*wrap, "setpriv", f"--reuid={NON_ROOT_UID}", f"--regid={NON_ROOT_UID}",
         "--clear-groups", sys.executable, "-c", code], cwd=workdir, capture_output=True,
        text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[2]),
             "HOME": str(workdir), jail.BUILDER_ENV: "bwrap", "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.skipif(os.geteuid() != 0 or "bwrap" not in BUILDERS,
                    reason="needs root to become a non-root caller, and bubblewrap")
def test_a_non_root_jail_cannot_reach_the_host_or_the_outputs_pipe():
    # A non-root caller's program has the uid of the jail's first process. Before the pipe, it
    # could write the host directory the outputs were copied into (an independent review wrote
    # ~30 MB past a 4 MiB outputs bound); with the first version of the pipe (fd 0 of a shell
    # collector) it could write into the pipe through /proc. Now it tries every pipe it can
    # open, 8 MiB each, and its outputs come back unchanged.
    workdir = Path(tempfile.mkdtemp(prefix="w2s-nonroot-"))
    try:
        code = (
            "import os, sys\n"
            "from pathlib import Path\n"
            "sys.path.insert(0, os.environ['PYTHONPATH'])\n"
            "from tests.methods.test_jail import collecting_spec, MAKE_OUTPUTS, PUSH, ROOTER\n"
            "from methods.jail import run_jailed\n"
            "for name, script in (('honest', MAKE_OUTPUTS), ('pusher', MAKE_OUTPUTS + PUSH),\n"
            "                     ('rooter', MAKE_OUTPUTS + ROOTER)):\n"
            "    destination = Path(name)\n"
            "    destination.mkdir()\n"
            "    result = run_jailed(['sh', '-c', script + '; id -u'],"
            " collecting_spec(destination), timeout_s=60)\n"
            "    print(name, result.returncode, sorted(p.name for p in destination.iterdir()),"
            " repr(result.last_stderr_line()), result.stdout.split())\n")
        done = _as_non_root(code, workdir)
        assert done.returncode == 0, done.stderr[-2000:]
        honest, pusher, rooter = done.stdout.splitlines()[-3:]
        outputs = "['directory', 'fifo', 'file', 'link'] ''"
        assert honest == f"honest 0 {outputs} ['{NON_ROOT_UID}']", honest
        assert pusher == f"pusher 0 {outputs} ['{NON_ROOT_UID}']", pusher  # nothing pushed
        assert rooter == f"rooter 0 {outputs} ['{NON_ROOT_UID}']", rooter  # the root is read-only
        assert (workdir / "pusher" / "file").read_bytes() == b"bytes\n"
        assert (workdir / "honest" / "file").stat().st_uid == NON_ROOT_UID
        on_disk = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
        assert on_disk < 1 << 20, on_disk
    finally:
        subprocess.run(["rm", "-rf", "--", str(workdir)], check=False)
