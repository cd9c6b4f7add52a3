"""Run a group of arms in one process: ``python -m flows.worker GROUP.json``.

A group is one (ladder, dataset, rung) and a batch of seeds: for each seed the weak and ceiling
arms, then every method's student arm. Running a group in one process pays the torch import once
and shares the pretrained bodies' features across its arms. The flow starts each group as a
subprocess (its own process group, so cancelling the flow kills it) with its log in a file.

The worker writes ``RESULT.json`` (``group["result"]``) atomically: which run hashes it executed
and which it found complete in the store.

A worker started by the flow (``W2S_ORCHESTRATOR`` set) watches the flow process and kills its
own process group when that process is gone, so even a flow killed outright (SIGKILL, the OOM
killer), which runs no handler, leaves no training behind.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.plan import MethodRef
from methods.policy import JailSettings

# "<pid>:<start time>" of the process that started this worker (see process_token).
ORCHESTRATOR_ENV = "W2S_ORCHESTRATOR"


def process_token(pid: int) -> str:
    """``"<pid>:<start time in clock ticks>"``: names one process even after its pid is reused.

    The start time is field 22 of ``/proc/<pid>/stat`` (proc(5)); without /proc it is empty and
    only the pid is compared.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"{pid}:"
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def _alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    if started:
        try:
            return process_token(int(pid)) == token
        except (ValueError, IndexError):
            return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_orchestrator(token: str | None = None, poll_s: float = 0.5) -> threading.Thread | None:
    """Kill this process group once the orchestrator named by ``token`` has exited.

    Args:
        token: a :func:`process_token`; default ``$W2S_ORCHESTRATOR`` (no watch when unset).
        poll_s: seconds between checks.

    Returns:
        The daemon thread watching, or None when there is nothing to watch.
    """
    token = token if token is not None else os.environ.get(ORCHESTRATOR_ENV)
    if not token:
        return None

    def watch() -> None:
        while _alive(token):
            time.sleep(poll_s)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="w2s-orchestrator-watch", daemon=True)
    thread.start()
    return thread


class GroupMethod(MethodRef):
    """A method of a group as the parent resolved it when the campaign was prepared: the name
    its runs are filed under (``label``), its validated params (``resolved``) and its code's
    fingerprint. The worker runs it only if its own resolution gives the same three, so a
    plugin that describes itself differently on the worker (it can tell a worker's jail from
    the parent's) never has its runs filed under a name the parent gave another entry's code.
    Unset fields are not checked (a group written by hand); ``Campaign.check_outcome`` checks
    the stored runs against the parent's resolution in any case."""

    label: str | None = None
    resolved: dict[str, Any] | None = None
    fingerprint: str | None = None

    def check(self, label: str, params: dict[str, Any], fingerprint: str) -> None:
        """Raise ``InputError`` unless the worker's resolution is the parent's."""
        from w2s_common.errors import InputError

        if self.label is not None and label != self.label:
            raise InputError(f"method {self.name} names itself {label!r} on this worker, not "
                             f"{self.label!r} as when the campaign was prepared; refused",
                             field="methods")
        if self.resolved is not None and canonical_json(params) != canonical_json(self.resolved):
            raise InputError(f"method {self.name} resolves its params to {canonical_json(params)} "
                             f"on this worker, not {canonical_json(self.resolved)} as when the "
                             "campaign was prepared; refused", field="methods")
        if self.fingerprint is not None and fingerprint != self.fingerprint:
            raise InputError(f"method {self.name}'s code on this worker (fingerprint "
                             f"{fingerprint[:12]}) is not the code the campaign was prepared "
                             f"with ({self.fingerprint[:12]}): install the same code on every "
                             "worker, or it changed while the campaign ran", field="methods")


def canonical_json(value: Any) -> str:
    """Sorted-key JSON: ``True``, ``1`` and ``1.0`` stay three different values (Python's
    ``==`` makes them one)."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


class ControlRef(BaseModel):
    """A control of ``baseline`` (``transfer.controls.ControlSpec``): run as a student arm of
    the baseline's procedure, stored under ``control:<kind>:<name>``."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    name: str
    gold_fraction: float | None = None
    gain: float | None = None
    baseline: MethodRef

    def spec(self):
        from transfer.controls import ControlSpec

        return ControlSpec(kind=self.kind, name=self.name, gold_fraction=self.gold_fraction,
                           gain=self.gain)


class Canary(BaseModel):
    """A label-leak audit of one method in this group (``flows.plan.Audit``): the method's
    stored student run at ``seed`` is rerun under the gold-label permutations
    ``permutations`` and compared (``run_canary``)."""

    model_config = ConfigDict(extra="forbid")
    method: str  # the plan entry's name, one of the group's methods
    seed: int
    permutations: tuple[int, int]
    check_determinism: bool = False
    rule: Literal["auto", "exact", "follows_labels"] = "auto"
    alpha: float = 0.001


class GroupEngine(BaseModel):
    """The plan's engine settings a group's runs train with (``compute.ds_config``,
    ``compute.precision``), on top of the ladder's ``training`` defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ds_config: str | None = None
    precision: Literal["fp32", "bf16"] | None = None

    def overrides(self) -> dict[str, Any]:
        """The settings given, as ``flows.context.engine_config`` takes them."""
        return self.model_dump(exclude_none=True)


class ArmGroup(BaseModel):
    """One unit of work the flow hands to a worker process."""

    model_config = ConfigDict(extra="forbid")

    ladder: str
    rung: str
    data: str | None = None
    store: str
    seeds: list[int]
    methods: list[GroupMethod]
    controls: list[ControlRef] = Field(default_factory=list)
    canaries: list[Canary] = Field(default_factory=list)
    engine: GroupEngine = Field(default_factory=GroupEngine)
    jail: JailSettings = Field(default_factory=JailSettings)
    # A reuse check (``flows.reuse_check``): the arms are computed into this empty throw-away
    # store instead of ``store`` (which still names the shared store for outcomes and leases).
    rerun_into: str | None = None
    # Run hash -> content digest of every run earlier groups of the campaign used: a copy of one
    # of them that changed since is refused, not reused (``transfer.store.RunStore`` pins).
    pinned: dict[str, str] = Field(default_factory=dict)
    result: str

    def key(self) -> str:
        """A stable identity of the group's work (names its group, log and result files)."""
        import hashlib

        # A group without controls or canaries keeps the key it had before they existed.
        exclude = {"result", "store", "pinned"} | {
            name for name in ("controls", "canaries", "rerun_into") if not getattr(self, name)}
        payload = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def run_group(group: ArmGroup, log=print) -> dict[str, Any]:
    """Run every arm of ``group`` (reusing complete runs) and return the executed/reused lists.

    A reuse check's group (``rerun_into``) also builds its model and feature cache entries
    afresh, in a private directory of this machine (``transfer.cache.private_entries``): the
    shared cache may have the same writers as the store."""
    if group.rerun_into:
        import tempfile

        from transfer.cache import private_entries

        with tempfile.TemporaryDirectory(prefix="w2s-reuse-entries-") as entries, \
                private_entries(Path(entries)):
            return _run_group(group, log)
    return _run_group(group, log)


def _run_group(group: ArmGroup, log=print) -> dict[str, Any]:
    from flows.context import arm_context
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.cache import shared_entries_built, shared_entries_found

    # A reuse check computes into its own empty store: the campaign's pins are of the shared one.
    ctx = arm_context(group.ladder, group.data, group.rerun_into or group.store,
                      group.engine.overrides(),
                      pins=None if group.rerun_into else group.pinned)
    resolved = [method_function(m.name, m.params, jail=group.jail) for m in group.methods]
    for method, (label, params, fn) in zip(group.methods, resolved, strict=True):
        method.check(label, params, fn.fingerprint)
    by_ref = {(m.name, json.dumps(m.params, sort_keys=True)): r
              for m, r in zip(group.methods, resolved)}
    controls = []
    for control in group.controls:
        ref = (control.baseline.name, json.dumps(control.baseline.params, sort_keys=True))
        if ref not in by_ref:
            by_ref[ref] = method_function(control.baseline.name, control.baseline.params,
                                          jail=group.jail)
        controls.append((control.spec(), by_ref[ref]))
    runs, contents, before = [], {}, len(ctx.store.executed)
    for seed in group.seeds:
        for arm in ("weak", "ceiling"):
            record = run_arm(ctx, group.rung, arm, seed)
            if arm == "weak":  # every student of the seed learns from this record (review R3 F1)
                weak = record
            runs.append(record.spec.run_hash())
            contents[runs[-1]] = record.content_digest()
            log(f"{group.rung} seed={seed} {arm}: acc={record.metrics['accuracy']:.4f}")
        for name, params, fn in resolved:
            record = run_arm(ctx, group.rung, "student", seed, method=name, method_params=params,
                             method_fn=fn, weak=weak)
            runs.append(record.spec.run_hash())
            contents[runs[-1]] = record.content_digest()
            log(f"{group.rung} seed={seed} {name}: acc={record.metrics['accuracy']:.4f}")
        for spec, (name, params, fn) in controls:
            record = run_arm(ctx, group.rung, "student", seed, method=name, method_params=params,
                             method_fn=fn, control=spec, weak=weak)
            runs.append(record.spec.run_hash())
            contents[runs[-1]] = record.content_digest()
            log(f"{group.rung} seed={seed} {spec.label}: "
                f"acc={record.metrics['accuracy']:.4f}")
    executed = [s.run_hash() for s in ctx.store.executed[before:]]
    by_entry = {m.name: m for m in group.methods}
    audits = [run_canary(ctx, group, canary, by_entry[canary.method], log)
              for canary in group.canaries]
    discarded = {s.run_hash() for s in ctx.store.discarded}
    outcome = {"runs": runs, "executed": executed,
               "executed_arms": [s.label for s in ctx.store.executed[before:]],
               # computed here but another copy was there first: the run used is not ours
               "discarded": [h for h in executed if h in discarded],
               # the content digest of each run as this worker used it (the parent pins these)
               "contents": contents,
               # the shared cache entries this process used without building them, and those
               # it built (the parent tells a sibling group's entries from anyone else's); a
               # group of several ranks adds "*", an entry no one built: only rank 0 reports,
               # and another rank may have found what rank 0 built, replaced meanwhile
               # (helper-41 F3)
               "cache_found": shared_entries_found()
               + (["*"] if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else []),
               "cache_built": shared_entries_built(),
               "gpu": any(Path("/dev").glob("nvidia[0-9]*"))}
    if group.rerun_into:  # "executed" means published in the run store; these were not
        outcome.update(executed=[], executed_arms=[], recomputed=executed)
    if group.canaries:
        outcome["audits"] = audits
    return outcome


def run_canary(ctx, group: ArmGroup, canary: Canary, method: GroupMethod,
               log=print) -> dict[str, Any]:
    """The label-leak audit of ``method`` at ``canary.seed`` on this group's rung: its student
    arm again under two gold-label permutations (``transfer.canary.run_with_permuted_gold``:
    the real store never sees those runs), the method resolved afresh each time, exactly as
    for a real run, compared with each other and with the method's real run of that seed,
    which must already be in the store (the campaign asks for an audit only after the real
    runs are stored, so no method can know during its real run whether it will be audited).
    Returns the outcome the parent records (``flows.campaign``)."""
    from methods.audit import audit_label_leak
    from methods.resolve import method_function
    from transfer.arms import run_arm
    from transfer.canary import audit_labels, run_with_permuted_gold
    from transfer.student import TEST_SPLIT
    from w2s_common.errors import InputError

    if canary.method not in {m.name for m in group.methods}:
        raise InputError(f"canary of {canary.method} is not of this group's methods",
                         field="canaries")
    isolations: list[str] = []
    label = method.label or method.name
    shared = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    label_now, params, fn = method_function(method.name, method.params, jail=group.jail)
    method.check(label_now, params, fn.fingerprint)
    before = len(ctx.store.executed)
    real = run_arm(ctx, group.rung, "student", canary.seed, method=label_now,
                   method_params=params, method_fn=fn)
    if len(ctx.store.executed) > before:
        raise InputError(f"the real run of {label} at seed {canary.seed} on rung {group.rung} "
                         "was not in the store before its audit", field="canaries")
    runs = iter(range(1, 100))

    def permuted_run(permutation_seed: int):
        label_now, params, fn = method_function(method.name, method.params, jail=group.jail)
        method.check(label_now, params, fn.fingerprint)
        # The ranks of a multi-process group publish and wait for each run in one store, so
        # their throw-away store is one directory of the (shared) run store, left there; one
        # per run (a determinism rerun must not find the first run there).
        scratch = canary_scratch(group, canary, permutation_seed, next(runs)) if shared \
            else None
        probs = run_with_permuted_gold(ctx, group.rung, canary.seed, fn, permutation_seed,
                                       method=label_now, method_params=params, scratch=scratch)
        isolations.extend(fn.isolation)
        return probs

    rule, labels_for = audit_labels(ctx.task, canary.rule)
    result = audit_label_leak(
        permuted_run, permutation_seeds=canary.permutations,
        check_determinism=canary.check_determinism, labels_for=labels_for, alpha=canary.alpha,
        real=real.predictions()["prob"].to_numpy(dtype="float64"),
        real_labels=ctx.task.splits[TEST_SPLIT].labels)
    log(f"{group.rung} seed={canary.seed} {label} audit: "
        f"{'clean' if result.clean else 'FLAGGED'}")
    return {"method": canary.method, "label": label, "seed": canary.seed,
            "clean": result.clean, "evidence": result.evidence, "rule": rule,
            "isolation": sorted(set(isolations))}


# Exit statuses of a worker; the flow retries only TRANSIENT_EXIT and deaths by a signal.
PERMANENT_EXIT = 2  # bad input, an unsupported method, a failed integrity check, a full disk
TRANSIENT_EXIT = 75  # EX_TEMPFAIL: an OS error that may pass (a stale NFS handle, a time-out)

# OS errors a retry may get past; every other one (ENOSPC, EDQUOT, EROFS, EACCES, EIO, ...)
# fails the same way again and only wastes the retries' time.
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE,
                              errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED,
                              errno.ENETUNREACH, errno.EHOSTUNREACH})


def canary_scratch(group: ArmGroup, canary: Canary, permutation_seed: int, run: int) -> Path:
    """``STORE/.canary/<digest>``: the throw-away store of the ``run``-th permuted run of a
    canary in a multi-process group, the same path on every rank (and for a rerun of the
    group, which reuses it)."""
    import hashlib

    identity = json.dumps([group.key(), canary.method, canary.seed, permutation_seed, run])
    return Path(group.store) / ".canary" / hashlib.sha256(identity.encode()).hexdigest()[:24]


def os_error_line(err: OSError) -> str:
    """``path: No space left on device`` (the file when known, the errno's text)."""
    where = err.filename if err.filename is not None else None
    text = err.strerror or str(err)
    return f"{where}: {text}" if where is not None else " ".join(text.split())


def read_group(path: Path) -> ArmGroup:
    """The group file, or one ``InputError`` line: a file this worker's version cannot read
    (a pool worker whose installed w2s-transfer differs from the parent's) says so, no
    traceback."""
    from pydantic import ValidationError

    from w2s_common.validation import validation_input_error

    try:
        return ArmGroup.model_validate_json(path.read_text())
    except ValidationError as err:
        problem = validation_input_error(err, path=path)
        raise type(problem)(f"{problem.message} (is this worker's w2s-transfer the parent's "
                            "version?)", path=problem.path, field=problem.field) from None


def main(argv: list[str] | None = None) -> int:
    from transfer.sealed import MethodUnsupported
    from w2s_common.atomic import atomic_write_json
    from w2s_common.errors import InputError

    argv = sys.argv[1:] if argv is None else argv
    watch_orchestrator()
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:  # which rank of which world this process is, for the group's log
        print(f"w2s worker: rank {os.environ.get('RANK', '0')} of {world} "
              f"(local rank {os.environ.get('LOCAL_RANK', '0')})", flush=True)
    start = time.perf_counter()
    try:
        group = read_group(Path(argv[0]))
        outcome = run_group(group, log=lambda line: print(line, flush=True))
        outcome["seconds"] = round(time.perf_counter() - start, 3)
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(Path(group.result), outcome)
    except (InputError, MethodUnsupported) as err:
        # Bad input or a method this rung cannot run: one line, and an exit status the flow
        # does not retry (it would fail the same way again).
        print(f"error: {err}", file=sys.stderr, flush=True)
        return PERMANENT_EXIT
    except OSError as err:
        # The machine, not the code: a full disk, a read-only or vanished mount, a permission.
        print(f"error: {os_error_line(err)}", file=sys.stderr, flush=True)
        return TRANSIENT_EXIT if err.errno in TRANSIENT_ERRNOS else PERMANENT_EXIT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
