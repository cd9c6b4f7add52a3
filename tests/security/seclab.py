"""The attack suite's lab and measurements: the lab's layout, byte-level snapshots, the stand-ins
for host services, and running an attack through the real pipeline (``run_student``) or the
audit (``audit``). The ``lab`` fixture that builds one per session is in ``conftest.py``.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ATTACKS = HERE / "attacks"
RUNG, SEED = "m0", 0
# Directories of the project that are not its sources (built or written by tools).
NOT_SOURCES = {".venv", ".cache", ".git", "__pycache__", ".pytest_cache", "reports",
               "w2s_transfer.egg-info", "node_modules"}


def write_task(task, directory: Path) -> Path:
    """``task`` as a generic JSONL task directory, the way a user would hand it over."""
    directory.mkdir(parents=True)
    for name, split in task.splits.items():
        (directory / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": e.id, "text": e.text, "label": int(e.label)}) + "\n"
            for e in split.examples))
    (directory / "labels.json").write_text(json.dumps(list(task.label_names)))
    return directory


# --- snapshots --------------------------------------------------------------------------------

def _files(root: Path, skip: set[str] = frozenset()) -> list[Path]:
    out = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        out += [Path(directory, name) for name in names]
    return out


def sha_tree(roots: list[Path], skip: set[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file under ``roots`` (links: their target text), by path."""
    digests: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in _files(root, skip) if root.is_dir() else [root]:
            if path.is_symlink():
                digests[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digests[str(path)] = "special"
    return digests


def system_snapshot() -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, mode) of every entry of the virtual environment, the Python
    installation, ``/usr`` and the parts of ``/etc`` a jail holds (cheaper than hashing 200k
    files; the jail's uid owns none of them)."""
    roots = dict.fromkeys([sys.prefix, os.path.realpath(sys.base_prefix), "/usr",
                           "/etc/alternatives"])
    entries: dict[str, tuple[int, int, int]] = {}
    for path in ("/etc/ld.so.cache", os.path.realpath("/etc/localtime")):
        if os.path.exists(path):
            info = os.lstat(path)
            entries[path] = (info.st_size, info.st_mtime_ns, info.st_mode)
    stack = [root for root in roots if os.path.isdir(root)]
    while stack:
        directory = stack.pop()
        try:
            scan = os.scandir(directory)
        except OSError:
            continue
        with scan:
            for entry in scan:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries[entry.path] = (info.st_size, info.st_mtime_ns, info.st_mode)
                if entry.is_dir(follow_symlinks=False) and "__pycache__" not in entry.name:
                    stack.append(entry.path)
    return {k: v for k, v in entries.items() if "__pycache__" not in k}


def diff(before: dict[str, Any], after: dict[str, Any], allowed_new: tuple[str, ...] = ()
         ) -> list[str]:
    problems = [f"changed: {p}" for p in before if p in after and after[p] != before[p]]
    problems += [f"deleted: {p}" for p in before if p not in after]
    problems += [f"added: {p}" for p in after if p not in before and
                 not any(p.startswith(prefix) for prefix in allowed_new)]
    return problems


# --- the stand-ins for host services ----------------------------------------------------------

class LabelServer(http.server.ThreadingHTTPServer):
    """A stand-in for the Prefect API on 127.0.0.1: GET returns ``{test_id: label}``; every
    POST/PUT/PATCH/DELETE it receives is recorded in ``writes``."""

    daemon_threads = True

    def __init__(self, labels: dict[str, int]) -> None:
        self.labels = labels
        self.writes: list[str] = []
        self.reads: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.reads.append(self.path)
                body = json.dumps(server.labels).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _write(self) -> None:
                server.writes.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            # Names of http.server.BaseHTTPRequestHandler's per-method hooks.
            do_POST = do_PUT = do_PATCH = do_DELETE = _write  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/labels"


def serve_abstract_socket(name: str, payload: bytes) -> socket.socket:
    """Serve ``payload`` to every connection on the abstract Unix socket ``name``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\0" + name)
    sock.listen(8)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(payload)

    threading.Thread(target=loop, daemon=True).start()
    return sock


# --- the lab ----------------------------------------------------------------------------------

@dataclass
class Lab:
    root: Path
    task_dir: Path
    store: Path
    old_store: Path
    reports: Path
    checkout_copy: Path
    pipeline: Path
    ctx: Any
    gold: np.ndarray
    test_ids: tuple[str, ...]
    weak_accuracy: float
    ceiling_accuracy: float
    server: LabelServer
    socket_name: str
    decoy: subprocess.Popen
    table: list[dict[str, Any]] = field(default_factory=list)

    # where an attacker would look: every lab directory holding labels
    @property
    def label_roots(self) -> list[str]:
        return [str(self.root)]

    def protected(self) -> list[Path]:
        from methods.jail_runtime import jail_cache
        from transfer.fsutil import cache_dir

        roots = [cache_dir(), jail_cache(), self.task_dir, self.store, self.old_store,
                 self.reports, self.checkout_copy, self.pipeline]
        extensions = os.environ.get("TORCH_EXTENSIONS_DIR")
        if extensions:
            roots.append(Path(extensions))
        return roots

    def snapshot(self) -> dict[str, str]:
        from methods.jail_runtime import project_root

        sources = sha_tree([project_root()], NOT_SOURCES)
        return {**sha_tree(self.protected(), {"__pycache__"}), **sources}

    def assert_unchanged(self, before: dict[str, str]) -> None:
        """Every protected byte as it was; new files only in this store's student runs and in
        new copies of the project and plugin sources (made by the trusted side before a jail
        starts): never a file added to a copy that existed before."""
        from methods.jail_runtime import jail_cache

        kinds = [str(jail_cache() / kind) + "/" for kind in ("code", "runtime", "files")]

        def copies(paths) -> set[str]:  # the copy directories ("<kind>/<hash>/") holding paths
            return {p[:len(k)] + p[len(k):].split("/", 1)[0] + "/"
                    for p in paths for k in kinds if p.startswith(k)}

        after = self.snapshot()
        new_copies = tuple(copies(after) - copies(before))
        problems = diff(before, after, (str(self.store / "student") + "/", *new_copies))
        assert not problems, "\n".join(problems[:20])

    def accuracy(self, probs) -> float:
        return float(np.mean((np.asarray(probs) > 0.5) == self.gold))

    def record(self, route: str, program: str, before: str, after: str, identical: str,
               audit: str) -> None:
        self.table.append({"route": route, "program": program, "before": before,
                           "after": after, "identical": identical, "audit": audit})


def attack_path(name: str) -> str:
    return str(ATTACKS / name)


def external(script: str, *args: str) -> str:
    """The command line of an external attack script (its helper module named, so mounted)."""
    parts = [sys.executable, attack_path(script), "{inputs}", "{outputs}", attack_path("_ext.py"),
             *args]
    return " ".join(parts)


def run_student(lab: Lab, reference: str, params=(), jail=None) -> tuple[np.ndarray, list[str]]:
    """One student arm through the real pipeline (``method_function`` + ``run_arm``); the
    predictions and the isolation its code ran with."""
    from methods.resolve import method_function
    from transfer.arms import run_arm

    name, params_dict, fn = method_function(reference, list(params), jail=jail)
    record = run_arm(lab.ctx, RUNG, "student", SEED, method=name, method_params=params_dict,
                     method_fn=fn)
    return record.predictions()["prob"].to_numpy(), list(fn.isolation)


def audit(lab: Lab, reference: str, params=(), jail=None):
    """The label-leak audit as ``w2s-transfer audit`` runs it (the method resolved afresh for
    each permutation, ``transfer.canary.run_with_permuted_gold`` on the real arms); returns the
    ``AuditResult``, the predictions of each permutation and the isolations used."""
    from methods.audit import audit_label_leak
    from methods.resolve import method_function
    from transfer.canary import run_with_permuted_gold

    runs: dict[int, np.ndarray] = {}
    isolations: list[str] = []

    def permuted(permutation_seed: int) -> np.ndarray:
        name, params_dict, fn = method_function(reference, list(params), jail=jail)
        probs = run_with_permuted_gold(lab.ctx, RUNG, SEED, fn, permutation_seed, method=name,
                                       method_params=params_dict)
        runs[permutation_seed] = probs
        isolations.extend(fn.isolation)
        return probs

    return audit_label_leak(permuted), runs, isolations


def one_printable_line(message: str) -> bool:
    return "\n" not in message and message.isprintable() and len(message) < 2000


def processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose command line contains ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found
