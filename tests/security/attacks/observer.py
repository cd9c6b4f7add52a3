"""Route class: telling an audit from a real run.

Fingerprints everything a jailed plugin can observe that an audit could change: its
environment and identity, the mounts it sees (``/proc/self/mountinfo``, host paths included),
its limits and capabilities, the file tree of its root (names, sizes, modes), the bytes of its
inputs (``/w2s/job``), the sealed data and the trainer it is handed (its engine settings
included), its command line and import path. Only what legitimately differs between any two
runs is left out: mount ids, the random part of temporary directory names, times, process ids
and the jail's uid and gid (drawn afresh for every run, audited or not). The sha256 of the
fingerprint comes back as bits in the predictions (0.25 or 0.75 per test example), so the suite
compares what a real run and an audited run saw, from outside.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys

import numpy as np

from methods.base import MethodBase, NoParams

RANDOM_PART = re.compile(r"(w2s-[a-z]+-)[A-Za-z0-9_]{8}")
SKIP_TREE = ("/proc", "/sys", "/dev", "/tmp", "/w2s/out")
# The host's runtimes, the same directories in every run (their mounts are in the fingerprint):
# listed at their top level only, to keep the walk short.
RUNTIMES = ("/usr", os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix))


def _normal(text: str) -> str:
    return RANDOM_PART.sub(r"\1<random>", text)


def _mounts() -> list[str]:
    lines = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        lines.append(_normal(" ".join(fields[3:])))  # without the mount ids
    return lines


def _tree() -> list[str]:
    entries = []
    for directory, dirs, names in os.walk("/"):
        if directory in RUNTIMES:
            entries.append(f"{directory}: {sorted(dirs + names)}")
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if os.path.join(directory, d) not in SKIP_TREE
                         and d not in ("__pycache__",))
        for name in sorted(names):
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            entries.append(f"{_normal(path)} {info.st_size} {info.st_mode:o}")
        if len(entries) > 400_000:
            break
    return entries


def _job() -> dict[str, str]:
    digests = {}
    for name in sorted(os.listdir("/w2s/job")):
        with open(os.path.join("/w2s/job", name), "rb") as handle:
            digests[name] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def _without_ids(text: str) -> str:
    return text.replace(str(os.getuid()), "<uid>").replace(str(os.getgid()), "<gid>")


def fingerprint(data, trainer) -> dict:
    status = [_without_ids(line) for line in open("/proc/self/status")
              if line.startswith(("Cap", "NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups"))]
    return {
        "env": sorted(os.environ.items()),
        "ids": [os.getuid() == os.geteuid(), os.getgid() == os.getegid(),
                [_without_ids(str(g)) for g in os.getgroups()]],
        "host": socket.gethostname(), "cwd": os.getcwd(), "argv": sys.argv,
        "path": sys.path, "mounts": _mounts(), "status": status,
        "limits": open("/proc/self/limits").read(), "tree": _tree(), "job": _job(),
        "data": [list(data.ids), list(data.texts), np.asarray(data.weak_probs).tolist(),
                 list(data.test_ids), list(data.test_texts),
                 np.asarray(data.weak_test_probs).tolist(), list(data.label_names), data.seed,
                 repr(sorted(data.extra.items()))],
        "trainer": [trainer.model_names(), trainer.seed, list(trainer.fits),
                    trainer.engine_config.model_dump(mode="json")],
    }


class Observer(MethodBase):
    name = "attack_observer"
    description = "Attack: fingerprints everything it can see, to tell an audit from a real run"
    Params = NoParams

    def run(self, data, trainer, params):
        seen = json.dumps(fingerprint(data, trainer), sort_keys=True, default=str)
        digest = hashlib.sha256(seen.encode()).digest()
        bits = np.unpackbits(np.frombuffer(digest * 8, dtype=np.uint8))
        return 0.25 + 0.5 * bits[: len(data.test_ids)].astype(np.float64)
