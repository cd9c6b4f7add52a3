"""What a method jail holds: the Python runtime, the allowed part of this project, the job.

Layout inside every jail (everything read-only unless said otherwise):

- ``/usr``, ``/bin``, ``/lib``...: the operating system's runtime (``jail.system_mounts``);
- ``/etc/passwd``, ``/etc/group``, ``/etc/hosts``: generated: the jail user and localhost only;
- the interpreter's prefix and the virtual environment, at their host paths: the Python runtime
  and its installed packages; installed copies of this project's packages are covered by empty
  directories;
- ``/w2s/lib``: the allowed part of this project (:data:`JAIL_MODULES`): the method contract, the
  built-in methods and the trainer; never the task loaders, the synthetic generator, the arms,
  the store, flows or stats;
- ``/w2s/code/<name>``: third-party code the job needs: the plugin's top-level package, and
  modules of objects handed over;
- ``/w2s/job``: the job's inputs;
- ``/w2s/out``: its outputs, the only writable host directory;
- ``/tmp``, ``/dev/shm``: private tmpfs;
- model checkpoints the trainer loads: at their host paths.

The allowed part of the project is copied (with compiled bytecode) into a content-addressed
directory, ``<jail cache>/runtime/<hash>``, by the trusted side; plugins' sources likewise into
``<jail cache>/code/<hash>``. A copy is reused without being read again, so the jail cache is
never the shared ``$W2S_CACHE_DIR``, which every machine of a pool writes (the caches' writers
are trusted; that trust should not extend to code other machines' jails run): it is
``$W2S_JAIL_CACHE_DIR``, by default ``/var/tmp/w2s-transfer-jail-<euid>``, on this host, and it
is used only if it is a directory (not a link) owned by this user that no one else may write
(:func:`jail_cache`).
"""
from __future__ import annotations

import compileall
import contextlib
import importlib.machinery
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from methods.code_cache import (  # noqa: F401  (JAIL_CACHE_ENV, code_files: re-exported)
    JAIL_CACHE_ENV,
    JailSetupError,
    code_copy,
    code_files,
    jail_cache,
    publish_copy,
)
from methods.jail import JailLimits, JailSpec, Mount, gpu_mounts, system_mounts
from methods.jail_outputs import Collect

PROJECT_PACKAGES = ("flows", "methods", "stats", "transfer", "w2s_common")
# The part of this project a jailed method may import: the contract (methods, transfer.sealed),
# the shared primitives (w2s_common: errors, atomic writes, YAML, names; no labels, no evaluator
# code), the built-ins it may build on, and the trainer it is handed (student,
# backends, engine, models, ladder). Not transfer.data (loaders and the synthetic generator,
# which can regenerate labels), transfer.arms / store / canary (scoring), flows, stats.
JAIL_MODULES = (
    "methods", "w2s_common",
    "transfer/__init__.py", "transfer/sealed.py", "transfer/student.py",
    "transfer/backends.py", "transfer/ladder.py", "transfer/fsutil.py",
    "transfer/cache.py", "transfer/manifest.py", "transfer/leases.py",
    "transfer/engine", "transfer/models",
)

LIB = "/w2s/lib"
CODE = "/w2s/code"
JOB = "/w2s/job"
OUT = "/w2s/out"
# What a job may hand back (methods.jail_worker and the external-command contract).
OUTPUT_FILES = ("predictions.jsonl", "describe.json", "error.json")
JAIL_USER = "w2s"


def project_root() -> Path:
    """The directory holding this project's top-level packages (checkout or site-packages)."""
    return Path(__file__).resolve().parent.parent


# What of the allowed part of the project goes into the jail: sources and the DeepSpeed configs.
PROJECT_SUFFIXES = (".py", ".json")


def project_files(root: Path) -> list[Path]:
    """The files of :data:`JAIL_MODULES` under ``root`` that the jail's copy holds (and the
    project fingerprint covers): regular files of their own with a suffix of
    :data:`PROJECT_SUFFIXES`, sorted; compiled files are left out.

    Raises:
        JailSetupError: an entry is missing, or a file or directory there is a symbolic link,
            not a regular file, or has another hard link: followed, it would copy whatever it
            points at into every jail (a link in ``methods/builtin/`` to a test split handed a
            jailed built-in the gold labels; attacker review, 2026-12-05).
    """
    files: list[Path] = []
    for entry in JAIL_MODULES:
        path = root / entry
        if path.is_symlink():
            raise JailSetupError(f"{path}: a symbolic link in the part of this project the jail "
                                 "holds (expected regular files only)")
        if path.is_dir():
            for directory, subdirs, names in os.walk(path, followlinks=False):
                subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
                for name in subdirs:
                    if os.path.islink(os.path.join(directory, name)):
                        raise JailSetupError(f"{Path(directory, name)}: a symbolic link in the "
                                             "part of this project the jail holds (expected "
                                             "regular files only)")
                files += [Path(directory, n) for n in sorted(names)]
        elif path.is_file():
            files.append(path)
        else:
            raise JailSetupError(f"the jail's module list names {entry}, which is missing")
    kept = []
    for file in files:
        info = os.lstat(file)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise JailSetupError(f"{file}: not a regular file of its own (a link or special "
                                 "file) in the part of this project the jail holds")
        if file.suffix in PROJECT_SUFFIXES:
            kept.append(file)
    return sorted(kept, key=lambda f: f.relative_to(root).as_posix())


def allowed_module(name: str) -> bool:
    """Whether module ``name`` (dotted) of this project is offered inside the jail."""
    relative = name.replace(".", "/")
    for entry in JAIL_MODULES:
        stem = entry[:-3] if entry.endswith(".py") else entry
        stem = stem[: -len("/__init__")] if stem.endswith("/__init__") else stem
        if relative == stem or relative.startswith(stem + "/") and not entry.endswith(".py"):
            return True
    return False


def _compile_and_hosts(tmp: Path) -> None:
    compileall.compile_dir(tmp / "lib", quiet=2, workers=1)
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost w2s-jail\n::1 localhost\n")


def project_runtime() -> Path:
    """The allowed part of this project, copied and byte-compiled into the cache (built once per
    content hash; concurrent builders race to a rename and the first complete copy wins)."""
    root = project_root()
    final, _ = publish_copy(jail_cache() / "runtime", root, project_files(root), into="lib",
                            prepare=_compile_and_hosts)
    return final


def _identity_files(directory: Path, uid: int, gid: int) -> Path:
    """``directory/identity/{passwd,group}`` naming the jail's uid (one jail's own files)."""
    identity = directory / "identity"
    identity.mkdir(mode=0o755, exist_ok=True)
    for name, text in (("passwd", f"{JAIL_USER}:x:{uid}:{gid}:w2s jail:/tmp:/usr/sbin/nologin\n"),
                       ("group", f"{JAIL_USER}:x:{gid}:\n")):
        (identity / name).write_text(text)
        (identity / name).chmod(0o644)
    return identity


def _job_ids(private: Path) -> tuple[int, int]:
    """The jail uid and gid job_directories drew for this job (the caller's own when not root)."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        uid = int((private / "uid").read_text())
    except (OSError, ValueError):
        from methods.jail import jail_ids

        uid, _ = jail_ids()
    return uid, uid


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def jail_search_path() -> str:
    """The PATH inside a jail: this interpreter's ``bin``, then the system's."""
    return f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin"


def python_mounts() -> list[Mount]:
    """The interpreter and its installed packages at their host paths, with installed copies of
    this project's packages covered."""
    mounts: list[Mount] = []
    covered = ["/usr"]
    for prefix in dict.fromkeys([sys.base_prefix, sys.prefix,
                                 str(Path(os.path.realpath(sys.executable)).parent.parent)]):
        prefix = os.path.realpath(prefix)
        if not any(_inside(prefix, c) for c in covered):
            mounts.append(Mount("ro", prefix, prefix))
            covered.append(prefix)
    if not _inside(sys.prefix, os.path.realpath(sys.prefix)):
        # A venv reached through a link: the interpreter resolves pyvenv.cfg by this path.
        mounts.append(Mount("ro", sys.prefix, sys.prefix))
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if not real or not any(_inside(real, c) for c in covered):
            continue
        for package in PROJECT_PACKAGES:
            candidate = os.path.join(entry, package)
            if os.path.isdir(candidate):
                mounts.append(Mount("tmpfs", candidate, size=4096))
    return mounts


PLUGIN_PATH_ENV = "W2S_PLUGIN_PATH"


def plugin_dirs() -> list[str]:
    """Directories of installed plugin distributions (``$W2S_PLUGIN_PATH``, ``os.pathsep``-
    separated; ``pip install --target DIR``): read for entry points and sources, never put on
    the trusted process's ``sys.path``, so none of their code (``.pth`` lines included) runs
    there."""
    raw = os.environ.get(PLUGIN_PATH_ENV, "")
    return [os.path.abspath(p) for p in raw.split(os.pathsep) if p]


def module_location(top: str) -> Path | None:
    """Where top-level module ``top`` would be imported from, found without running any of its
    code: its package directory or its module file (on ``sys.path``, then in the plugin
    directories), or None when it is nowhere."""
    spec = importlib.machinery.PathFinder.find_spec(
        top, [p or os.getcwd() for p in sys.path] + plugin_dirs())
    if spec is None:
        return None
    if spec.submodule_search_locations:
        locations = list(spec.submodule_search_locations)
        if spec.origin is None or len(locations) != 1:
            raise JailSetupError(f"{top} is a namespace package (no __init__.py); a plugin's "
                                 "top-level package must be a regular package")
        return Path(locations[0])
    return Path(spec.origin) if spec.origin else None


def code_mounts(modules: Iterable[str], runtime_mounts: Sequence[Mount],
                snapshots: Mapping[str, str] | None = None) -> list[Mount]:
    """Read-only mounts under ``/w2s/code`` of the Python sources (a copy: :func:`code_copy`)
    of the top-level packages of ``modules`` that the runtime does not already hold (the
    standard library and installed packages are in it; this project's modules must be in
    :data:`JAIL_MODULES`). Nothing but ``.py`` files travels: no data lying beside the code.

    ``snapshots`` (top-level name -> the copy its method's fingerprint was computed from:
    ``methods.fingerprint.MethodCode.snapshots``): the method's own package is mounted from its
    snapshot, whatever its files hold now, so the jail runs the code its runs are keyed by.
    Other packages (those of the objects the trusted side hands over) are copied as found.

    Raises:
        JailSetupError: a module of this project outside the allowed part, a namespace
            package, or sources that are links.
    """
    roots = [m.target for m in runtime_mounts if m.kind == "ro"]
    mounts: dict[str, Mount] = {}
    for module in modules:
        top = module.split(".")[0]
        if top in PROJECT_PACKAGES:
            if not allowed_module(module):
                raise JailSetupError(f"the job needs module {module}, which the jail does not "
                                     "offer (it is part of the evaluator)")
            continue
        if top in sys.builtin_module_names or top in sys.stdlib_module_names or top in mounts:
            continue
        if snapshots is not None and top in snapshots:
            copy = Path(snapshots[top])
            mounts[top] = Mount("ro", f"{CODE}/{copy.name}", str(copy))
            continue
        location = module_location(top)
        if location is None:
            continue  # not importable here either; the jailed import fails with its own message
        real = os.path.realpath(location)
        if any(_inside(real, root) for root in roots):
            continue
        own = project_root()
        if any(_inside(real, str(own / package)) for package in PROJECT_PACKAGES):
            raise JailSetupError(f"module {top} resolves to {location}, inside this project's "
                                 "own packages; name project modules by their full path")
        mounts[top] = Mount("ro", f"{CODE}/{location.name}", str(code_copy(location)))
    return list(mounts.values())


class _RecordingPickler(pickle._Pickler):  # type: ignore[name-defined]
    """A pickler that records the module of every class and function it refers to by name."""

    def __init__(self, file) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def save_global(self, obj, name=None) -> None:
        self.modules.add(pickle.whichmodule(obj, name or getattr(obj, "__qualname__", "")))
        super().save_global(obj, name)


def pickle_job(payload: object, path: Path) -> set[str]:
    """Pickle ``payload`` to ``path``; return the modules the jail must import to load it."""
    with open(path, "wb") as handle:
        pickler = _RecordingPickler(handle)
        pickler.dump(payload)
    return pickler.modules


@dataclass(frozen=True)
class JailRequest:
    """What one jailed job needs beyond the runtime: its directories, code, models, limits."""

    job_dir: Path
    out_dir: Path
    modules: tuple[str, ...] = ()
    model_paths: tuple[str, ...] = ()
    limits: JailLimits = JailLimits()
    use_gpu: bool = False
    # The method's code snapshots (``code_mounts``); None: code copied as the job finds it.
    snapshots: tuple[tuple[str, str], ...] | None = None
    # (path in the jail, its read-only copy on this host): an ``external`` command's own files.
    files: tuple[tuple[str, str], ...] = ()


PASSTHROUGH_VARS = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                    "TOKENIZERS_PARALLELISM")


def jail_spec(request: JailRequest) -> JailSpec:
    """The full jail for one job: system, Python, the allowed project code, the job's code,
    inputs, outputs and model checkpoints."""
    runtime = project_runtime()
    private = Path(request.out_dir).parent
    uid, gid = _job_ids(private)
    identity = _identity_files(private, uid, gid)
    base = system_mounts() + python_mounts()
    mounts = [*base,
              Mount("ro", "/etc/passwd", str(identity / "passwd")),
              Mount("ro", "/etc/group", str(identity / "group")),
              Mount("ro", "/etc/hosts", str(runtime / "etc" / "hosts")),
              Mount("ro", LIB, str(runtime / "lib")),
              *code_mounts(request.modules, base,
                           None if request.snapshots is None else dict(request.snapshots)),
              Mount("ro", JOB, str(request.job_dir)),
              # Outputs go to a size-limited tmpfs inside the jail (memory, charged to its
              # control group, not the host's disk); the named files reach the caller over a
              # capped pipe when the program ends (methods.jail_outputs): no host directory is
              # writable from the jail.
              Mount("tmpfs", OUT, size=request.limits.out_bytes)]
    for path in request.model_paths:
        real = os.path.realpath(path)
        mounts.append(Mount("ro", real, real))
    mounts += [Mount("ro", target, source) for target, source in request.files]
    if request.use_gpu:
        mounts += gpu_mounts()
    code = [m.target for m in mounts if m.target.startswith(CODE + "/")]
    python_path = [LIB] + ([CODE] if code else [])
    env = {"PATH": jail_search_path(),
           "HOME": "/tmp", "USER": JAIL_USER, "LOGNAME": JAIL_USER, "LANG": "C.UTF-8",
           "PYTHONPATH": ":".join(python_path), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "W2S_CACHE_DIR": "/tmp/w2s-cache", "TORCH_EXTENSIONS_DIR": "/tmp/torch_extensions",
           "MPLCONFIGDIR": "/tmp/matplotlib", "TRITON_CACHE_DIR": "/tmp/triton"}
    env.update({name: os.environ[name] for name in PASSTHROUGH_VARS if name in os.environ})
    return JailSpec(mounts=tuple(mounts), env=env, cwd="/tmp", limits=request.limits,
                    uid=uid if os.geteuid() == 0 else None,
                    collect=Collect(OUT, str(request.out_dir), OUTPUT_FILES,
                                    request.limits.out_bytes, sys.executable))


@contextlib.contextmanager
def job_directories(prefix: str):
    """A private parent directory with ``job/`` (inputs, read-only to the jail) and ``out/``
    (where a jail's outputs are copied when it ends; unjailed, the program's own outputs
    directory), and the fresh uid the job's jail will run as; removed afterwards."""
    from methods.jail import jail_ids

    private = tempfile.mkdtemp(prefix=prefix)
    try:
        job, out = Path(private, "job"), Path(private, "out")
        job.mkdir(mode=0o755)
        out.mkdir(mode=0o700)
        if os.geteuid() == 0:
            uid, _ = jail_ids()
            Path(private, "uid").write_text(f"{uid}\n")
        yield job, out
    finally:
        remove_tree(private)


def remove_tree(path: str) -> None:
    """Remove a directory a jailed program wrote into, whatever it left there.

    Python's ``shutil.rmtree`` recurses once per level and fails near 1000 (a jailed program
    can nest deeper in a second), so GNU ``rm``, which walks any depth, takes over; a second try
    follows a moment later in case the jail's last processes were still dying.
    """
    with contextlib.suppress(RecursionError, OSError):
        shutil.rmtree(path)
    for delay in (0.0, 0.5):
        if not os.path.lexists(path):
            return
        time.sleep(delay)
        subprocess.run(["rm", "-rf", "--one-file-system", "--", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
