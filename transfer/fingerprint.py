"""Fingerprints of code: what made a run, as part of its store key.

A run is reusable only if the code that produced it is the code that would produce it now. Two
fingerprints go into every ``RunSpec`` (``transfer.store``):

- the **trainer fingerprint** (every arm): the sha256 of the files that train and score a model
  (:data:`TRAINER_FILES`) and of the versions of the packages that determine its numbers
  (:data:`TRAINER_PACKAGES`, and Python's);
- the **method fingerprint** (student arms): the code of the method and the project code it runs
  on (``methods.fingerprint``; a plain callable handed to ``run_arm`` gets
  :func:`callable_fingerprint`).

Everything here reads files and package metadata; nothing imports the code it fingerprints.
"""
from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from w2s_common.versions import package_versions

# The part of this project that trains a model on a task and scores it: the arms (and the
# control arms built from the baseline), the engine, the model backends, the trainer handed to
# methods, the task loaders and tokenizer (features and batches depend on them), the model
# caches and the DeepSpeed configs.
TRAINER_FILES = (
    "transfer/arms.py", "transfer/controls.py", "transfer/backends.py", "transfer/student.py",
    "transfer/sealed.py", "transfer/ladder.py", "transfer/cache.py", "transfer/engine",
    "transfer/models", "transfer/data", "infra/deepspeed",
)
# Packages whose version can change a run's numbers.
TRAINER_PACKAGES = ("torch", "transformers", "deepspeed", "peft", "numpy", "tokenizers")
FINGERPRINT_FORMAT = "w2s-code/1"


def project_root() -> Path:
    """The directory holding this project's top-level packages (checkout or site-packages)."""
    return Path(__file__).resolve().parent.parent


def code_files(root: Path, entries: Iterable[str]) -> list[tuple[str, Path | None]]:
    """``(relative name, path)`` of every file under ``entries`` (files or directories relative
    to ``root``), sorted; compiled files and ``__pycache__`` are skipped. An entry that does not
    exist is listed once with path None, so that its absence is part of the fingerprint."""
    out: list[tuple[str, Path | None]] = []
    for entry in entries:
        path = root / entry
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix not in (".pyc", ".pyo") \
                        and "__pycache__" not in file.parts:
                    out.append((file.relative_to(root).as_posix(), file))
        elif path.is_file():
            out.append((Path(entry).as_posix(), path))
        else:
            out.append((Path(entry).as_posix(), None))
    return sorted(out, key=lambda item: item[0])


def digest_files(files: Iterable[tuple[str, Path | None]], *, label: str = "") -> str:
    """sha256 (hex) over ``(name, size, bytes)`` of each file (a missing one counts as absent).

    Files are read in chunks, never whole: an ``external`` command may name a checkpoint of
    gigabytes as its own file (up to ``methods.code_cache.MAX_OWN_FILE_BYTES``). A file that
    changes size while it is read is an error.
    """
    digest = hashlib.sha256(f"{FINGERPRINT_FORMAT}\0{label}\0".encode())
    for name, path in files:
        digest.update(name.encode() + b"\0")
        if path is None:
            digest.update(b"<absent>\0")
            continue
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(str(size).encode() + b"\0")
            read = 0
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                read += len(chunk)
        if read != size:
            raise OSError(f"{path} changed while it was read ({size} bytes, then {read})")
        digest.update(b"\0")
    return digest.hexdigest()


def combine(*parts: str) -> str:
    """One sha256 (hex) of several labelled parts, in order."""
    digest = hashlib.sha256(FINGERPRINT_FORMAT.encode() + b"\0")
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def trainer_package_versions(names: Iterable[str] = TRAINER_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``absent`` when not installed) and Python's."""
    return package_versions(names, with_python=True)


def trainer_fingerprint(root: Path | None = None) -> str:
    """The trainer's fingerprint: its files (:data:`TRAINER_FILES`) and package versions.

    Computed afresh on every call (about a millisecond per 100 kB of code): an edit made while a
    process runs is seen by the next key it computes.
    """
    root = Path(root) if root is not None else project_root()
    files = digest_files(code_files(root, TRAINER_FILES), label="trainer")
    versions = ",".join(f"{k}={v}" for k, v in sorted(trainer_package_versions().items()))
    return combine("trainer", files, versions)


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return digest_files([(os.path.basename(path), Path(path))], label="callable")


def callable_fingerprint(fn: object) -> str:
    """A fingerprint for a plain Python callable used as a method (tests, benchmarks): the
    source file that defines it (or its qualified name when it has none) and the trainer's
    files, which it may call into."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    try:
        source = inspect.getsourcefile(target) or inspect.getfile(target)
    except TypeError:
        source = None
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    if source and os.path.isfile(source):
        stat = os.stat(source)
        code = _file_digest(os.path.realpath(source), stat.st_size, stat.st_mtime_ns)
    else:
        code = "no-source"
    return combine("callable", name, code,
                   digest_files(code_files(project_root(), TRAINER_FILES), label="trainer"))
