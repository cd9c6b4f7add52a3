"""The run store: a ``RunSpec`` hashes to a directory that holds one arm's results.

Layout of ``<root>/<arm>/<hash>/``: ``spec.json``, ``predictions.parquet`` (test split:
example_id, prob, pred, correct), ``soft_labels.parquet`` (weak arm only: example_id, prob on
``train_unlabel``), ``metrics.json`` (accuracy, arm, rung, seed, timings, versions),
``config.json`` and ``COMPLETE``, the run's manifest: the sha256 of every other file, the run
hash and the sha256 of the full spec (``transfer.manifest``).

Runs are content-addressed and immutable. A run is written into a staging directory, its
manifest last, and published with one ``rename(2)``: the first complete copy wins, a later one
is discarded, and no reader ever sees a partial run or a missing one that existed before
(``transfer.fsutil.publish_dir``). Every reuse (``get``, ``find``, ``records``) checks the run
against its manifest, and every read of a file hashes the bytes it parses; a mismatch, a
missing manifest or an extra file raises :class:`StoreIntegrityError` (one line naming the
directory and the file; exit 2), never a silent reuse and never a silent recompute.

Two processes or machines about to compute the same run coordinate through a lease per run
(``<root>/<arm>/.<hash>.lease``, see ``transfer.leases``): :meth:`RunStore.claim`. What
the store needs from a shared filesystem is in docs/store.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transfer import leases
from transfer.fsutil import cache_dir, fsync_tree, publish_dir, staging_dir
from transfer.manifest import (
    IntegrityError,
    Manifest,
    sha256_bytes,
    verify_manifest,
    write_manifest,
)
from w2s_common.names import ARM_NAMES
from w2s_common.validation import first_error
from w2s_common.versions import package_versions

Arm = Literal["weak", "ceiling", "student"]
COMPLETE = "COMPLETE"
_RUN_HASH = re.compile(r"[0-9a-f]{20}")
# RunSpec fields added after runs were first stored: omitted from the hash while unset.
_UNSET_OMITTED = ("trainer_fingerprint", "method_fingerprint", "jailed")


class StoreIntegrityError(IntegrityError):
    """A stored run does not match its manifest, has none, or is not the run it claims to be."""

    def __str__(self) -> str:
        return (super().__str__() + "; not reused: move the run out of the store to recompute it "
                "(python -m transfer.store verify STORE --quarantine)")


class RunSpec(BaseModel):
    """Everything that determines an arm's result; its hash names the run's directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arm: Arm
    ladder: str
    rung: str
    dataset: str
    dataset_fingerprint: str
    seed: int = Field(ge=0)
    model: str = Field(description="the model this arm trains (weak or strong of the rung)")
    model_fingerprint: str
    hparams: dict[str, Any] = Field(default_factory=dict)
    method: str | None = None
    method_params: dict[str, Any] = Field(default_factory=dict)
    depends_on: str | None = Field(None, description="hash of the weak run a student uses")
    unjailed: bool = Field(False, description="untrusted method code ran outside the jail "
                           "(explicit opt-in; such runs are never reused by jailed campaigns)")
    jailed: Literal[True] | None = Field(
        None, description="a built-in method's code ran in a jail of its own (jail: {builtins: "
        "jail}), not in the trusted worker process; student arms (a plugin's always do)")
    trainer_fingerprint: str | None = Field(
        None, description="sha256 of the trainer's code and package versions "
        "(transfer.fingerprint.trainer_fingerprint); every arm computed since the key held it")
    method_fingerprint: str | None = Field(
        None, description="sha256 of the method's code and the project code it runs on "
        "(methods.fingerprint); student arms")

    def canonical_json(self) -> str:
        """The spec's canonical JSON, which its hash is taken of.

        The code fingerprints are left out while unset, so a run stored before they existed
        keeps its hash (and still verifies); it is never the run of a key that has them.
        """
        data = self.model_dump(mode="json")
        for name in _UNSET_OMITTED:
            if data.get(name) is None:
                data.pop(name, None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def run_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        """The arm's name in results tables: weak, ceiling or the method's name."""
        return self.method if self.arm == "student" and self.method else self.arm


def spec_sha256(spec: RunSpec) -> str:
    """sha256 of the spec's canonical JSON (the run hash is its first 20 hex digits)."""
    return hashlib.sha256(spec.canonical_json().encode()).hexdigest()


def verify_run(path: Path, expected: RunSpec | None = None) -> tuple[RunSpec, Manifest]:
    """Check the run directory ``path`` against its manifest; return its spec and manifest.

    Checks: the manifest exists and lists exactly the files present, each with its sha256; the
    spec it holds hashes to the directory's name, to the manifest's run hash and spec digest,
    and sits under its arm's directory; it equals ``expected`` when given.

    Raises:
        StoreIntegrityError: one line naming the run directory and the offending file.
    """
    path = Path(path)
    manifest = verify_manifest(path, COMPLETE, error_type=StoreIntegrityError)

    def fail(what: str, name: str = "spec.json") -> StoreIntegrityError:
        return StoreIntegrityError(f"integrity check failed: {what}", path=path / name)

    try:
        spec = RunSpec.model_validate_json(manifest.read_verified("spec.json"))
    except ValidationError as err:
        raise fail(f"not a valid run spec ({first_error(err).message})") from None
    if spec.run_hash() != path.name or manifest.extra.get("run_hash") != path.name:
        raise fail(f"the spec hashes to {spec.run_hash()}, the manifest names "
                   f"{manifest.extra.get('run_hash')!r}, the directory is {path.name}")
    if manifest.extra.get("spec_sha256") != spec_sha256(spec):
        raise fail("the spec's sha256 differs from the one in the manifest", COMPLETE)
    if path.parent.name != spec.arm:
        raise fail(f"a {spec.arm} run stored under {path.parent.name}/")
    if expected is not None and spec_sha256(expected) != manifest.extra.get("spec_sha256"):
        raise fail("the stored spec differs from the requested one (a hash collision?)")
    return spec, manifest


@dataclass(frozen=True)
class RunRecord:
    """A complete run: its spec and directory. Every file read is checked against the run's
    manifest (the bytes parsed are the bytes hashed), so a file changed after ``get`` is still
    caught. ``manifest`` is filled in by the store; a record built without one verifies the
    whole run on first use."""

    spec: RunSpec
    path: Path
    manifest: Manifest | None = field(default=None, compare=False, repr=False)

    @cached_property
    def _manifest(self) -> Manifest:
        return self.manifest if self.manifest is not None else verify_run(self.path, self.spec)[1]

    def read_bytes(self, name: str) -> bytes:
        """The bytes of one of the run's files, checked against its manifest."""
        return self._manifest.read_verified(name)

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.read_bytes("metrics.json"))

    def predictions(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes("predictions.parquet")))

    def soft_labels(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes("soft_labels.parquet")))

    def verify(self) -> None:
        """Check the whole run again (every file, the spec)."""
        verify_run(self.path, self.spec)

    def content_digest(self) -> str:
        """sha256 (hex) of the manifest's file digests: the run's content as this record reads
        it (every read is checked against the same manifest). Two copies of a run with equal
        digests hold the same bytes; a campaign pins each run's digest when a worker reports it
        and refuses a run whose copy changed afterwards (``flows.campaign``)."""
        return hashlib.sha256(json.dumps(self._manifest.files, sort_keys=True).encode()
                              ).hexdigest()

    def derived_accuracy(self) -> float:
        """Test accuracy re-derived from the hash-checked predictions: mean of ``correct``."""
        return float(self.predictions()["correct"].mean())

    def checked_accuracy(self, tolerance: float = 1e-12) -> float:
        """The stored accuracy, after checking it against the predictions it summarises.

        Checks that ``metrics.json``'s ``accuracy`` equals :meth:`derived_accuracy`, its ``n``
        the number of predictions, and ``pred`` the thresholded ``prob`` (``prob > 0.5``).

        Raises:
            StoreIntegrityError: any of these differ (the run is internally inconsistent).
        """
        predictions = self.predictions()
        problems = accuracy_problems(predictions, self.metrics, tolerance)
        if problems:
            raise StoreIntegrityError("inconsistent run: " + "; ".join(problems),
                                      path=self.path / "metrics.json")
        return float(predictions["correct"].mean())


def accuracy_problems(predictions: pd.DataFrame, metrics: dict[str, Any],
                      tolerance: float = 1e-12) -> list[str]:
    """How a run's stored ``accuracy`` and ``n`` disagree with its predictions, and whether
    ``pred`` is not the thresholded ``prob`` (``prob > 0.5``); empty when they agree."""
    derived = float(predictions["correct"].mean())
    stored = metrics.get("accuracy")
    problems = []
    if isinstance(stored, bool) or not isinstance(stored, (int, float)) \
            or not abs(float(stored) - derived) <= tolerance:
        problems.append(f"accuracy {stored!r} but the predictions give {derived!r}")
    if "n" in metrics and metrics["n"] != len(predictions):
        problems.append(f"n {metrics['n']!r} but {len(predictions)} predictions")
    if not ((predictions["prob"] > 0.5).astype("int64") == predictions["pred"]).all():
        problems.append("pred is not prob > 0.5")
    return problems


def _parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers (and Python's)."""
    return package_versions(("w2s-transfer", "torch", "transformers", "deepspeed", "peft",
                             "numpy"), with_python=True)


class RunStore:
    """Content-addressed storage of arm results under ``root`` (default ``<cache>/store``).

    ``executed`` lists the runs computed (not reused) through this object; ``discarded`` those
    of them whose copy lost to one another process published first.

    ``pins`` maps run hashes to the content digest (:meth:`RunRecord.content_digest`) a caller
    already used: every record this object hands out for a pinned run must have that digest,
    or it raises :class:`StoreIntegrityError`. A campaign gives its workers the digests of the
    runs earlier groups used, so a copy replaced in the store (manifest and all) between two
    groups, or before an audit reads the real run, is refused rather than used.
    """

    def __init__(self, root: str | Path | None = None, *, lease_ttl_s: float | None = None,
                 poll_s: float | None = None, pins: dict[str, str] | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "store"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lease_ttl_s = leases.lease_ttl(lease_ttl_s)
        self.poll_s = poll_s
        self.pins: dict[str, str] = dict(pins or {})
        self.executed: list[RunSpec] = []
        self.discarded: list[RunSpec] = []

    def _checked(self, spec: RunSpec, path: Path, manifest: Manifest) -> RunRecord:
        record = RunRecord(spec, path, manifest)
        expected = self.pins.get(spec.run_hash())
        if expected is not None and record.content_digest() != expected:
            raise StoreIntegrityError(
                "integrity check failed: the run changed in the store after its worker used "
                "it in this campaign (another writer replaced it, manifest and all)", path=path)
        return record

    def path(self, spec: RunSpec) -> Path:
        return self.root / spec.arm / spec.run_hash()

    def lease_path(self, spec: RunSpec) -> Path:
        # Beside the run (a dot name, never taken for a run): the store's root holds arms only.
        return self.root / spec.arm / f".{spec.run_hash()}.lease"

    def get(self, spec: RunSpec) -> RunRecord | None:
        """The complete run of ``spec``, checked against its manifest; None if there is none.

        Raises:
            StoreIntegrityError: the run's directory exists but fails its check.
        """
        path = self.path(spec)
        if not os.path.lexists(path):
            return None
        _, manifest = verify_run(path, spec)
        return self._checked(spec, path, manifest)

    @contextlib.contextmanager
    def claim(self, spec: RunSpec) -> Iterator[RunRecord | None]:
        """Claim the computation of ``spec``'s run, or get the run another process computed.

        Yields the complete run when it exists or appears while waiting; otherwise ``None``,
        and this process holds the run's lease (renewed in the background) until the block
        exits: compute the run and :meth:`put` it inside the block. Waits while another live
        process holds the lease; takes over once its owner stops renewing it for the lease TTL.
        Ranks other than 0 of a data-parallel job follow their rank 0: they get the run, or
        ``None`` once rank 0 holds the lease, and never take a lease themselves.
        """
        path = self.lease_path(spec)
        ready = lambda: self.get(spec)  # noqa: E731
        if leases.rank() > 0:
            yield leases.follow(path, ready, job=leases.job_token(), poll_s=self.poll_s,
                                ttl_s=self.lease_ttl_s)
            return
        with leases.held(path, ready, ttl_s=self.lease_ttl_s, poll_s=self.poll_s) as (_, record):
            yield record

    def put(self, spec: RunSpec, predictions: pd.DataFrame, metrics: dict[str, Any],
            soft_labels: pd.DataFrame | None = None,
            config: dict[str, Any] | None = None) -> RunRecord:
        """Write a run; the first complete copy wins and is returned.

        The run is written to a staging directory (files fsynced, manifest last) and published
        by one rename; if a complete copy is already there, this one is discarded. Under data
        parallelism every rank computes the same run; rank 0 writes it and the other ranks wait
        for it to appear.

        Raises:
            StoreIntegrityError: the copy already there fails its check.
        """
        if leases.rank() > 0:
            return self._wait_for(spec)
        existing = self.get(spec)
        self.executed.append(spec)
        if existing is not None:
            self.discarded.append(spec)
            return existing
        final = self.path(spec)
        # The manifest is the sha256 of the bytes serialised here, never of what is read back
        # from disk, and the record returned reads against it: a writer of the store who
        # changes the staged or published files is refused at the next read, not vouched for
        # (second review of 2026-12-05, R3 F2).
        contents = {"spec.json": spec.model_dump_json(indent=2).encode(),
                    "predictions.parquet": _parquet_bytes(predictions),
                    "metrics.json": json.dumps({**metrics, "versions": versions()}, indent=2,
                                               sort_keys=True).encode(),
                    "config.json": json.dumps(config or {}, indent=2, sort_keys=True,
                                              default=str).encode()}
        if soft_labels is not None:
            contents["soft_labels.parquet"] = _parquet_bytes(soft_labels)
        staged = staging_dir(final)
        try:
            for name, data in contents.items():
                (staged / name).write_bytes(data)
            extra = {"run_hash": spec.run_hash(), "spec_sha256": spec_sha256(spec)}
            written = write_manifest(staged, COMPLETE, extra=extra, digests={
                name: sha256_bytes(data) for name, data in contents.items()})
            fsync_tree(staged)
            won = publish_dir(staged, final)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if won:
            return RunRecord(spec, final, Manifest(final, COMPLETE, written.files, written.extra,
                                                   StoreIntegrityError))
        self.discarded.append(spec)
        record = self.get(spec)
        assert record is not None  # published by the winner
        return record

    def _wait_for(self, spec: RunSpec, grace_s: float = 600.0) -> RunRecord:
        """Rank > 0: wait for rank 0 to publish the run. Waits as long as rank 0's lease on the
        run is alive (training may be long), then at most ``grace_s`` more."""
        job, lease_path = leases.job_token(), self.lease_path(spec)
        deadline = time.monotonic() + grace_s
        while (record := self.get(spec)) is None:
            info = leases.read_lease(lease_path)
            if info is not None and job and info.job == job:
                deadline = time.monotonic() + grace_s
            elif time.monotonic() > deadline:
                raise TimeoutError(f"rank {leases.rank()}: run {spec.run_hash()} never appeared")
            time.sleep(0.05)
        return record

    def find(self, run_hash: str) -> RunRecord | None:
        """The complete run with this hash, whatever its arm, checked against its manifest."""
        if not _RUN_HASH.fullmatch(run_hash):
            return None
        for arm in ARM_NAMES:
            path = self.root / arm / run_hash
            if os.path.lexists(path):
                spec, manifest = verify_run(path)
                return self._checked(spec, path, manifest)
        return None

    def records(self, arm: str | None = None) -> list[RunRecord]:
        """Every complete run in the store (optionally of one arm), each checked.

        Staging directories of writes in progress and anything not named like a run are
        skipped; a run directory that fails its check raises StoreIntegrityError.
        """
        out = []
        for name in [arm] if arm else ARM_NAMES:
            directory = self.root / name
            if name not in ARM_NAMES or not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if _RUN_HASH.fullmatch(path.name):
                    spec, manifest = verify_run(path)
                    out.append(self._checked(spec, path, manifest))
        return out

    def sweep(self, older_than_s: float = 24 * 3600.0) -> list[Path]:
        """Remove what killed writers left behind: staging directories, leases and private lease
        files older than ``older_than_s`` (never a run; a live lease is renewed every few
        seconds, so it is never that old), and the throw-away stores of label-leak audits in
        multi-process groups (``STORE/.canary/<digest>``, ``flows.worker.canary_scratch``)
        in which nothing changed for that long. Returns what was removed.

        Runs are published in well under a second once computed, so a day-old staging directory
        has no writer left; the age guard keeps a live one on a slow filesystem safe. An audit's
        scratch store is read only by the ranks of the group that wrote it, while it runs; a
        rerun of that group a day later recomputes it.
        """
        removed, cutoff = [], time.time() - older_than_s
        candidates = [p for arm in ARM_NAMES if (self.root / arm).is_dir()
                      for p in (self.root / arm).iterdir() if p.name.startswith(".")]
        scratch = self.root / ".canary"
        if scratch.is_dir() and not scratch.is_symlink():
            candidates += [p for p in scratch.iterdir() if _newest_mtime(p) < cutoff]
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < cutoff:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink()
                    removed.append(path)
        return removed


def _newest_mtime(path: Path) -> float:
    """The newest modification time of ``path`` and, for a directory, of everything under it
    (links not followed)."""
    newest = os.lstat(path).st_mtime
    if path.is_dir() and not path.is_symlink():
        for directory, names, files in os.walk(path):
            for name in [*names, *files]:
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.lstat(os.path.join(directory, name)).st_mtime)
    return newest


def verify_store(root: Path) -> tuple[int, list[tuple[Path, str]]]:
    """Check every run under ``root``; returns (runs checked, [(run directory, one line)])."""
    checked, problems = 0, []
    for arm in ARM_NAMES:
        directory = Path(root) / arm
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not _RUN_HASH.fullmatch(path.name):
                continue
            checked += 1
            try:
                verify_run(path)
            except IntegrityError as err:
                problems.append((path, IntegrityError.__str__(err)))
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    """``python -m transfer.store verify STORE [--quarantine] [--sweep]``: check every run.

    Prints one line per run that fails its check and exits 2 if there is any (0 otherwise).
    ``--quarantine`` moves each bad run to ``STORE/.quarantine/`` (one rename; the next
    campaign recomputes it); ``--sweep`` removes staging directories, lease leftovers and
    audits' throw-away stores (``STORE/.canary/``) older than a day.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m transfer.store",
                                     description="Check the runs of a w2s-transfer store.")
    parser.add_argument("command", choices=["verify"])
    parser.add_argument("store", type=Path)
    parser.add_argument("--quarantine", action="store_true",
                        help="move bad runs to STORE/.quarantine/ so that they are recomputed")
    parser.add_argument("--sweep", action="store_true",
                        help="remove staging directories, lease leftovers and audits' "
                             "throw-away stores (STORE/.canary/) older than a day")
    args = parser.parse_args(argv)
    if not args.store.is_dir():
        print(f"error: {args.store}: not a directory", file=sys.stderr)
        return 2
    if args.sweep:
        for path in RunStore(args.store).sweep():
            print(f"removed {path}")
    checked, problems = verify_store(args.store)
    for bad, line in problems:
        print(line)
        if args.quarantine:
            target = args.store / ".quarantine" / f"{bad.parent.name}-{bad.name}-{int(time.time())}"
            target.parent.mkdir(exist_ok=True)
            os.rename(bad, target)
            print(f"moved {bad} to {target}")
    print(f"{checked} runs checked, {len(problems)} failed", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
