"""Content manifests: the sha256 of every file of a directory, written by the trusted side when
the directory is built and checked before anything in it is used.

A manifest is a JSON file inside the directory it describes::

    {"format": "w2s-manifest/1", "files": {"<relative path>": "<sha256 hex>", ...}, ...extra}

It is written last, into a staging directory that is then renamed into place
(``transfer.fsutil.publish_dir``), so a published directory always holds one. Verification
requires the directory's regular files to be exactly the listed ones (nothing missing, nothing
added, no symlinks or special files) with the listed digests. Reads go through
``Manifest.read_verified``, which hashes the very bytes it returns, so nothing can be swapped
between the check and the use.

What it protects against: a file changed, added, removed or replaced after the directory was
built (a bit flip, a half-restored cache, a process that rewrote a stored run). What it cannot
stop: a writer that rewrites the files *and* their manifest; keeping untrusted code away from
the store and caches (the method jail) is what prevents that.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2s_common.errors import InputError

MANIFEST_FORMAT = "w2s-manifest/1"
_CHUNK = 1 << 20


class IntegrityError(InputError):
    """A stored directory does not match its manifest (or has none). One line naming the file;
    the CLI prints it and exits 2, like every bad input."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _regular_files(root: Path, skip: str, error) -> dict[str, Path]:
    """Relative path -> path of every regular file under ``root`` except ``skip``; anything else
    (a symlink, a fifo, a device) is an error, since a manifest vouches for plain bytes only."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = os.lstat(path).st_mode
            relative = path.relative_to(root).as_posix()
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise error(relative, "not a regular file (a symlink or special file)")
            if relative != skip:
                found[relative] = path
    return found


def _fail(root: Path, cls: type[IntegrityError]):
    def error(relative: str, what: str) -> IntegrityError:
        return cls(f"integrity check failed: {what}", path=root / relative if relative else root)
    return error


@dataclass(frozen=True)
class Manifest:
    """The verified manifest of directory ``root``: file digests and the writer's extra fields."""

    root: Path
    name: str
    files: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    error_type: type[IntegrityError] = IntegrityError

    def read_verified(self, relative: str) -> bytes:
        """The bytes of ``relative`` if they still match the manifest; else IntegrityError."""
        error = _fail(self.root, self.error_type)
        expected = self.files.get(relative)
        if expected is None:
            raise error(relative, f"not listed in the manifest {self.name}")
        path = self.root / relative
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise error(relative, "not a regular file (a symlink or special file)")
            data = path.read_bytes()
        except FileNotFoundError:
            raise error(relative, f"missing, though listed in the manifest {self.name}") from None
        found = sha256_bytes(data)
        if found != expected:
            raise error(relative, _mismatch(expected, found))
        return data


def _mismatch(expected: str, found: str) -> str:
    return (f"sha256 {found[:12]}... differs from {expected[:12]}... recorded when it was "
            f"written (the file changed afterwards)")


def write_manifest(root: str | Path, name: str, extra: dict[str, Any] | None = None, *,
                   digests: dict[str, str] | None = None) -> Manifest:
    """Hash every file under ``root`` and write the manifest ``root/name`` (last, fsynced).

    Call it on a staging directory whose content is final, just before publishing it. With
    ``digests`` (relative path -> sha256 of the bytes the caller wrote), those are the manifest,
    nothing is read back from disk: a file changed on disk after it was written then fails every
    later check instead of being vouched for. The files present must be exactly those named.
    """
    root = Path(root)
    error = _fail(root, IntegrityError)
    present = _regular_files(root, name, error)
    if digests is not None:
        if set(present) != set(digests):
            raise error("", f"files {sorted(present)} are not the ones written "
                            f"{sorted(digests)}")
        files = dict(sorted(digests.items()))
    else:
        files = {rel: sha256_file(path) for rel, path in sorted(present.items())}
    extra = dict(extra or {})
    payload = {**extra, "format": MANIFEST_FORMAT, "files": files}
    with open(root / name, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return Manifest(root, name, files, extra)


def verify_manifest(root: str | Path, name: str, *,
                    error_type: type[IntegrityError] = IntegrityError) -> Manifest:
    """Check directory ``root`` against its manifest ``name``; return the manifest.

    Raises:
        error_type: no manifest, an unreadable one, or a file missing, added, not regular, or
            with another sha256. The message names the file.
    """
    root = Path(root)
    error = _fail(root, error_type)
    if root.is_symlink() or not root.is_dir():
        raise error("", "not a directory")
    try:
        raw = (root / name).read_bytes()
    except FileNotFoundError:
        raise error(name, "no manifest: the directory was not written by this version of "
                          "w2s-transfer, or was changed afterwards") from None
    try:
        payload = json.loads(raw)
        files = payload["files"]
        ok = (payload.get("format") == MANIFEST_FORMAT and isinstance(files, dict)
              and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()))
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise error(name, f"not a {MANIFEST_FORMAT} manifest (an older store or cache format, or "
                          "a damaged file)")
    present = _regular_files(root, name, error)
    for relative in sorted(set(present) - set(files)):
        raise error(relative, f"not listed in the manifest {name} (added afterwards)")
    for relative in sorted(set(files) - set(present)):
        raise error(relative, f"missing, though listed in the manifest {name}")
    for relative, expected in sorted(files.items()):
        found = sha256_file(present[relative])
        if found != expected:
            raise error(relative, _mismatch(expected, found))
    extra = {k: v for k, v in payload.items() if k not in ("format", "files")}
    return Manifest(root, name, dict(files), extra, error_type)
