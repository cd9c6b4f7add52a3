"""Entries of the model caches (tokenizers, pretrained tiny bodies, features): built once,
hash-checked before every use.

An entry is a directory ``$W2S_CACHE_DIR/<kind>/<key>/`` holding what the builder wrote plus
``MANIFEST.json`` (sha256 of every file). :func:`cached_entry` returns the entry's verified
manifest; on a miss it builds the entry exactly once across all processes and machines that
share the cache: the first takes the lease ``$W2S_CACHE_DIR/leases/<kind>-<key>.lease`` and
builds into a staging directory that is then published by one atomic rename; the others wait
for it (or take over if its owner dies).

An entry that fails its check (a file changed, added or removed, no manifest) is never used.
It is rebuilt, loudly: a warning names the file and what was wrong, and the bad copy is kept
beside the entry as ``.<key>.corrupt-<id>`` for inspection. A rebuild rather than an error
because entries are pure functions of their key (deterministic builds), so the rebuilt entry is
what the original should have been; stored runs, which are evidence, fail loudly instead
(``transfer.store``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from transfer.fsutil import cache_dir, fsync_tree, publish_dir, staging_dir
from transfer.leases import claim_or_wait
from transfer.manifest import IntegrityError, Manifest, verify_manifest, write_manifest

CACHE_MANIFEST = "MANIFEST.json"
LOG = logging.getLogger("transfer.cache")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_WARNED: set[str] = set()


class CacheIntegrityError(IntegrityError):
    """A cache entry does not match its manifest (reported, then rebuilt)."""


def entry_name(key: str) -> str:
    """``key`` as a directory name: itself when short and plain, else a readable prefix plus
    its hash (no separators, no leading dot, short enough for the lease's name too)."""
    if key and len(key) <= 120 and not _SAFE.search(key) and not key.startswith("."):
        return key
    return f"{_SAFE.sub('_', key).lstrip('.')[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


_PRIVATE_ROOT: list[Path] = []  # set by private_entries(): entries built apart
# Shared entries this process used without having built them, and those it built and
# published (``<kind>/<name>``).
_SHARED_FOUND: set[str] = set()
_SHARED_BUILT: set[str] = set()


def shared_entries_found() -> list[str]:
    """The shared cache entries this process has used without building them
    (``kind/name@digest``, the digest of the entry's manifest: its content; sorted), over its
    whole life (models loaded once stay in memory for later groups). Runs computed from them
    rest on bytes another process wrote, as reused runs do, unless a process of the same
    campaign built that very content (:func:`shared_entries_built`), so a campaign's reuse
    check may draw their cells too (``flows.reuse_check``)."""
    return sorted(_SHARED_FOUND)


def shared_entries_built() -> list[str]:
    """The shared cache entries this process built and published (``kind/name@digest``)."""
    return sorted(_SHARED_BUILT)


def _entry_id(shared: str, manifest: Manifest) -> str:
    """``kind/name@digest``: an entry by its name and content, so that an entry found and one
    built under the same name match only when they hold the same bytes (an entry planted,
    found, then deleted and rebuilt by a later group is not the campaign's own: review
    2026-12-05, helper-42 R1)."""
    digest = hashlib.sha256(json.dumps(manifest.files, sort_keys=True).encode()).hexdigest()
    return f"{shared}@{digest[:32]}"


@contextlib.contextmanager
def private_entries(root: Path):
    """Within the block, read and build every entry under ``root`` instead of the shared cache:
    a reuse check (``flows.reuse_check``) recomputes from entries it built itself, so a writer
    of the shared cache (which may live on the store's volume) cannot feed the same forged
    features to a run and to its recomputation."""
    _PRIVATE_ROOT.append(Path(root))
    try:
        yield
    finally:
        _PRIVATE_ROOT.pop()


def _root() -> Path:
    return _PRIVATE_ROOT[-1] if _PRIVATE_ROOT else cache_dir()


def entry_path(kind: str, key: str) -> Path:
    return _root() / kind / entry_name(key)


def _verified(final: Path) -> Manifest | None:
    """The entry's manifest if it checks out; None if missing or bad (a bad one is reported)."""
    if not os.path.lexists(final):
        return None
    try:
        return verify_manifest(final, CACHE_MANIFEST, error_type=CacheIntegrityError)
    except CacheIntegrityError as err:
        if str(err) not in _WARNED:
            _WARNED.add(str(err))
            LOG.warning("cache entry not used: %s; it will be rebuilt", err)
        return None


def _quarantine(final: Path) -> Path:
    """Move a bad entry aside (one rename) so it can be rebuilt; returns where it went."""
    aside = final.with_name(f".{final.name}.corrupt-{uuid.uuid4().hex[:8]}")
    os.rename(final, aside)
    LOG.warning("moved the bad cache entry %s to %s", final, aside)
    return aside


def cached_entry(kind: str, key: str, build: Callable[[Path], None], *,
                 ttl_s: float | None = None, poll_s: float | None = None) -> Manifest:
    """The verified manifest of cache entry ``<kind>/<key>``, built by ``build(dir)`` if needed.

    Args:
        kind: the cache (``tokenizers``, ``models``, ``features``).
        key: the entry's key; it must determine the content completely.
        build: writes the entry's files into the (empty) directory it is given.
        ttl_s, poll_s: lease expiry and polling (defaults: ``$W2S_LEASE_TTL_S``, ttl/20).

    Returns:
        The entry's manifest; read its files through ``Manifest.read_verified`` or load the
        directory ``manifest.root`` right away.
    """
    final = entry_path(kind, key)
    lease, manifest = claim_or_wait(_root() / "leases" / f"{kind}-{final.name}.lease",
                                    lambda: _verified(final), ttl_s=ttl_s, poll_s=poll_s)
    shared = f"{kind}/{final.name}" if not _PRIVATE_ROOT else None
    if manifest is not None:
        if shared:
            _SHARED_FOUND.add(_entry_id(shared, manifest))
        return manifest
    try:
        if os.path.lexists(final):  # present but bad: _verified said so and warned
            with contextlib.suppress(FileNotFoundError):
                _quarantine(final)
        staged = staging_dir(final)
        try:
            build(staged)
            written = write_manifest(staged, CACHE_MANIFEST, extra={"kind": kind, "key": key})
            fsync_tree(staged)
            won = publish_dir(staged, final)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        used = verify_manifest(final, CACHE_MANIFEST, error_type=CacheIntegrityError)
        if shared and won and used.files == written.files:
            _SHARED_BUILT.add(_entry_id(shared, used))
        elif shared:  # another process's copy won (or replaced ours): that one is used
            _SHARED_FOUND.add(_entry_id(shared, used))
        return used
    finally:
        lease.release()
