"""What a verdict.json is bound to, and its optional HMAC.

``verdict["binding"]`` names everything the verdict was derived from, so that the gate can check
it (``flows.gate``):

| key | what |
| --- | --- |
| ``format`` | ``w2s-verdict-binding/1`` |
| ``plan_name``, ``plan_hash`` | the plan (``flows.plan.Plan.plan_hash``) |
| ``git_commit`` | the checkout's commit (``+dirty`` with uncommitted changes), or null |
| ``results_sha256`` | sha256 of the bytes of results.parquet beside it |
| ``trainer_fingerprint`` | the trainer's code and package versions every run was made with |
| ``methods`` | per method (the baseline included), by its name in the verdict (below) |
| ``controls`` | only when the plan has controls: per control label, see below |

``methods`` holds, per method: ``reference`` (how the plan names it), ``params``, ``kind``,
``provider`` and the ``fingerprint`` of the code its runs were made with
(``methods.fingerprint``).

``controls`` holds, per control by its label (``control:<kind>:<name>``): ``name``, ``kind``,
``spec`` (its settings), ``baseline`` (the baseline's name in the verdict) and ``fingerprint``:
the baseline's fingerprint plus the spec (``transfer.controls.control_fingerprint``), which the
gate recomputes.

With a key (``W2S_VERDICT_HMAC_KEY``, or a Prefect Secret block named by
``W2S_VERDICT_HMAC_SECRET_BLOCK``), ``verdict["hmac"]`` is HMAC-SHA256 over the canonical JSON of
the rest of the file, for CI systems that pass the file between jobs: the gate, given the same
key, refuses a file without it or with a wrong one.
"""
from __future__ import annotations

import hashlib
import hmac as hmac_lib
import json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from w2s_common.errors import InputError

if TYPE_CHECKING:
    from flows.resolved import ResolvedMethod

BINDING_FORMAT = "w2s-verdict-binding/1"
HMAC_ALGORITHM = "hmac-sha256"
KEY_ENV = "W2S_VERDICT_HMAC_KEY"
KEY_BLOCK_ENV = "W2S_VERDICT_HMAC_SECRET_BLOCK"


def unique_fingerprints(runs: Iterable[Any]) -> tuple[str | None, dict[str, str | None]]:
    """The trainer fingerprint of ``runs`` and each student arm's method fingerprint.

    Raises:
        InputError: the runs were made by more than one version of the trainer or of a method
            (its code changed while the campaign ran): the verdict would mix them.
    """
    trainers: set[str | None] = set()
    methods: dict[str, set[str | None]] = {}
    for run in runs:
        trainers.add(run.spec.trainer_fingerprint)
        if run.spec.arm == "student":
            methods.setdefault(run.spec.label, set()).add(run.spec.method_fingerprint)
    if len(trainers) > 1:
        raise InputError(f"the runs were made by {len(trainers)} versions of the trainer (its "
                         "code or packages changed while the campaign ran); rerun validate")
    for label, found in methods.items():
        if len(found) > 1:
            raise InputError(f"the runs of {label} were made by {len(found)} versions of its "
                             "code (it changed while the campaign ran); rerun validate")
    return (next(iter(trainers)) if trainers else None,
            {label: next(iter(found)) for label, found in methods.items()})


def make_binding(*, plan, methods: Mapping[str, ResolvedMethod], runs: list[Any],
                 results_sha256: str, git_commit: str | None,
                 reuse_check: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``binding`` block of a verdict.

    Args:
        plan: the ``flows.plan.Plan``.
        methods: plan entry name -> its ``flows.resolved.ResolvedMethod`` (``Campaign.methods``).
        runs: the runs the verdict was derived from (their fingerprints are recorded).
        results_sha256: sha256 of results.parquet as written.
        git_commit: ``flows.report.provenance.git_commit()``.
        reuse_check: what the reuse check did (``flows.reuse_check.summary``), so that the gate
            can require it (``gate --min-reuse-check-cells``) and the signature covers it.
    """
    trainer, by_label = unique_fingerprints(runs)
    bound = {}
    for reference, info in methods.items():
        label = info.label
        code = info.code
        found = by_label.get(label)
        if found is not None and found != code.fingerprint:
            # The binding names the code the parent resolved for the entry; runs of any other
            # code under its name (another entry's, or code edited mid-campaign) are refused,
            # never bound (Campaign.check_outcome refuses them first).
            raise InputError(f"the runs of {label} were not made by the code {reference} "
                             "resolved to when the campaign was prepared; rerun validate")
        bound[label] = {"reference": reference, "params": info.params, "kind": code.kind,
                        "provider": code.provider, "fingerprint": code.fingerprint}
    binding = {"format": BINDING_FORMAT, "plan_name": plan.name, "plan_hash": plan.plan_hash,
               "git_commit": git_commit, "results_sha256": results_sha256,
               "trainer_fingerprint": trainer, "methods": bound}
    if plan.controls:
        binding["controls"] = bind_controls(plan, bound[methods[plan.baseline].label],
                                            methods[plan.baseline].label, by_label)
    if reuse_check is not None:
        binding["reuse_check"] = dict(reuse_check)
    return binding


def bind_controls(plan, baseline: Mapping[str, Any], baseline_label: str,
                  by_label: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """The ``controls`` block: each control's spec and the code its runs were made with.

    Raises:
        InputError: a control's runs were made by other code than the baseline's plus its spec
            (the baseline changed while the campaign ran).
    """
    from transfer.controls import control_fingerprint

    out = {}
    for entry in plan.controls:
        spec = entry.spec()
        expected = control_fingerprint(baseline["fingerprint"], spec, baseline["params"])
        found = by_label.get(spec.label)
        if found is not None and found != expected:
            raise InputError(f"the runs of {spec.label} were not made by the baseline's code "
                             "and the control's spec (the baseline changed while the campaign "
                             "ran); rerun validate")
        out[spec.label] = {"name": spec.name, "kind": spec.kind, "spec": spec.as_dict(),
                           "baseline": baseline_label, "fingerprint": expected}
    return out


def canonical(verdict: Mapping[str, Any]) -> bytes:
    """The bytes the HMAC is computed over: the verdict without ``hmac``, as canonical JSON."""
    body = {k: v for k, v in verdict.items() if k != "hmac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=True).encode()


def key_id(key: bytes) -> str:
    """A short public name of a key (so a reader can tell which key signed), not the key."""
    return hashlib.sha256(b"w2s-verdict-key-id\0" + key).hexdigest()[:12]


def sign(verdict: Mapping[str, Any], key: bytes) -> dict[str, str]:
    """The ``hmac`` block for ``verdict``."""
    digest = hmac_lib.new(key, canonical(verdict), hashlib.sha256).hexdigest()
    return {"algorithm": HMAC_ALGORITHM, "key_id": key_id(key), "digest": digest}


def verify_signature(verdict: Mapping[str, Any], key: bytes) -> str | None:
    """Why ``verdict``'s ``hmac`` does not verify with ``key``, or None when it does."""
    block = verdict.get("hmac")
    if block is None:
        return (f"a verdict key is configured ({KEY_ENV} or {KEY_BLOCK_ENV}) but the file has "
                "no hmac: not written by a validate run holding the key")
    if not isinstance(block, Mapping) or block.get("algorithm") != HMAC_ALGORITHM \
            or not isinstance(block.get("digest"), str):
        return f"expected {{algorithm: {HMAC_ALGORITHM}, key_id, digest}}"
    if block.get("key_id") != key_id(key):
        return (f"signed with key {block.get('key_id')!r}, not with the configured key "
                f"{key_id(key)!r}")
    expected = hmac_lib.new(key, canonical(verdict), hashlib.sha256).hexdigest()
    if not hmac_lib.compare_digest(expected, block["digest"]):
        return "the digest does not match the file's content (it changed after signing)"
    return None


def check_key_settings(env: Mapping[str, str] | None = None) -> None:
    """Check the key settings without loading a Prefect block (before any compute).

    Raises:
        InputError: a key variable set but empty, or not UTF-8.
    """
    env = os.environ if env is None else env
    for name in (KEY_ENV, KEY_BLOCK_ENV):
        if name in env and not env[name].strip():
            raise InputError("set but empty; give a value or unset it", field=name)
        if name in env:
            _utf8(env[name], name)


def _utf8(value: str, name: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        # os.environ keeps bytes that are not UTF-8 as lone surrogates (PEP 383): the key would
        # mean different bytes to a signer and a checker that decode it differently.
        raise InputError("not valid UTF-8; give a UTF-8 value or unset it", field=name) from None


def verdict_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """The verdict HMAC key: ``$W2S_VERDICT_HMAC_KEY``, else the Prefect Secret block named by
    ``$W2S_VERDICT_HMAC_SECRET_BLOCK``, else None (no HMAC).

    Raises:
        InputError: a key variable set but empty or not UTF-8, or a named block that cannot be
            loaded.
    """
    env = os.environ if env is None else env
    if KEY_ENV in env:
        value = env[KEY_ENV]
        if not value.strip():
            raise InputError("set but empty; give the key or unset it", field=KEY_ENV)
        return _utf8(value, KEY_ENV)
    block = env.get(KEY_BLOCK_ENV)
    if block is None:
        return None
    if not block.strip():
        raise InputError("set but empty; name a Prefect Secret block or unset it",
                         field=KEY_BLOCK_ENV)
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(block).get()
    except Exception as err:  # noqa: BLE001 - a missing block, an unreachable API: many types
        raise InputError(f"cannot load Prefect Secret block {block!r}: "
                         f"{' '.join(str(err).split())[:200]}", field=KEY_BLOCK_ENV) from None
    text = value if isinstance(value, str) else json.dumps(value)
    if not text.strip():
        raise InputError(f"Prefect Secret block {block!r} is empty", field=KEY_BLOCK_ENV)
    return text.encode()
