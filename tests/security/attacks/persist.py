"""Route class: state that outlives a run (a later run, or the audit's reruns, would see it).

``write TOKEN`` leaves marks in every place it can think of: files in ``/tmp`` and
``/dev/shm``, a key in the kernel keyring of its uid, a daemon (double fork, sleeping), a file
beside its outputs. ``read TOKEN`` (a later run) looks for each and reports through its
predictions: prediction ``i`` is 1.0 when channel ``i`` of :data:`CHANNELS` carried the mark
over, 0.5 otherwise. ``clean TOKEN`` removes the key and the files.

``python3 persist.py {inputs} {outputs} _ext.py MODE TOKEN``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

CHANNELS = ("tmp", "shm", "keyring", "daemon", "outputs")
SYS_ADD_KEY, SYS_REQUEST_KEY, SYS_KEYCTL = 248, 249, 250  # x86_64
KEY_SPEC_USER_KEYRING = -4
KEYCTL_REVOKE, KEYCTL_READ = 3, 11
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.syscall.restype = ctypes.c_long


def _key(token: str) -> int:
    return libc.syscall(SYS_REQUEST_KEY, b"user", f"w2s-persist-{token}".encode(), None, 0)


def write(token: str, outputs: str) -> None:
    for directory in ("/tmp", "/dev/shm"):
        with open(os.path.join(directory, f"w2s-persist-{token}"), "w") as handle:
            handle.write(token)
    payload = token.encode()
    libc.syscall(SYS_ADD_KEY, b"user", f"w2s-persist-{token}".encode(), payload, len(payload),
                 KEY_SPEC_USER_KEYRING)
    with open(os.path.join(outputs, f"w2s-persist-{token}"), "w") as handle:
        handle.write(token)
    if os.fork() == 0:  # a daemon that outlives the run, if anything lets it
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)",
                                      f"w2s-persist-daemon-{token}"])
        os._exit(0)
    time.sleep(0.2)


def read(token: str, outputs: str) -> list[bool]:
    name = f"w2s-persist-{token}"
    daemon = any(name in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                 for p in os.listdir("/proc") if p.isdigit()
                 and os.path.exists(f"/proc/{p}/cmdline"))
    return [os.path.exists(f"/tmp/{name}"), os.path.exists(f"/dev/shm/{name}"), _key(token) > 0,
            daemon, os.path.exists(os.path.join(outputs, name))]


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    mode, token = _ext.args_after(argv)[:2]
    probs = [0.5] * len(ids)
    if mode == "write":
        write(token, outputs)
    elif mode == "read":
        for index, carried in enumerate(read(token, outputs)):
            probs[index] = 1.0 if carried else 0.5
    elif mode == "clean":
        key = _key(token)
        if key > 0:
            libc.syscall(SYS_KEYCTL, KEYCTL_REVOKE, key)
        for directory in ("/tmp", "/dev/shm"):
            if os.path.exists(os.path.join(directory, f"w2s-persist-{token}")):
                os.unlink(os.path.join(directory, f"w2s-persist-{token}"))
    _ext.write_predictions(outputs, ids, probs)


if __name__ == "__main__":
    main(sys.argv)
