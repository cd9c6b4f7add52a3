"""Control arms: the baseline re-run with a known change, to test the pipeline on real compute.

A control is never a method and never promoted. It is built here, on the trusted side, from the
baseline's own procedure, so a plan can ask "with these seeds, at this rung, does the pipeline
detect a gain of this size?" (a spike-in) and "does it call a gain of zero REAL?" (a null
control), and get the answer from real training runs instead of a model of the noise.

Every control is an *independent replicate* of the baseline: the baseline method run on the same
weak labels (the same weak run, so the pairing by seed holds) with its own training randomness
(:func:`replicate_seed`: the trainer's and the data's seed are derived from the run's seed and
the control's label). What each kind changes:

- ``null``: nothing is changed; its true gain over the baseline is exactly 0.
- ``spike_in``: a seeded ``gold_fraction`` of the weak soft labels of the student split is
  replaced by the gold labels before the baseline's procedure trains on them; a legitimate
  improvement of unknown size, bounded by ceiling - baseline (measured, not known).
- ``synthetic_spike_in``: after the replicate has predicted, ``round(gain * n_test)`` of its
  wrong test predictions (a seeded choice) are set to the gold label; exactly ``k / n_test`` per
  seed on top of a null replicate.

Controls are built on the trusted side only: every kind needs a built-in baseline, which runs in
this process (:func:`check_trusted`), so a control never runs code the pipeline does not trust and
never enters a jail; gold labels are mixed into the targets (``spike_in``) or correct predictions
after the baseline's procedure has returned (``synthetic_spike_in``, like scoring), both here.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from w2s_common.errors import InputError

ControlKind = Literal["null", "spike_in", "synthetic_spike_in"]
CONTROL_KINDS: tuple[str, ...] = ("null", "spike_in", "synthetic_spike_in")
# Every control's arm label starts with this; no method may be named so (flows.plan, campaign).
CONTROL_PREFIX = "control:"
# verdict.json's ``control.kind``: the two markers (a synthetic spike-in is a spike-in;
# ``control.variant`` says which).
MARKER = {"null": "null", "spike_in": "spike_in", "synthetic_spike_in": "spike_in"}


@dataclass(frozen=True)
class ControlSpec:
    """One control of a plan: its kind, name and size.

    Attributes:
        kind: ``null``, ``spike_in`` or ``synthetic_spike_in``.
        name: the plan's name for it (letters, digits, ``_.-``); the arm label is
            ``control:<kind>:<name>``.
        gold_fraction: ``spike_in`` only: the fraction of weak labels replaced by gold ones.
        gain: ``synthetic_spike_in`` only: the accuracy added (fraction; 0.02 = 2 points).
    """

    kind: ControlKind
    name: str
    gold_fraction: float | None = None
    gain: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise InputError(f"unknown control kind {self.kind!r}; expected one of "
                             f"{', '.join(CONTROL_KINDS)}", field="kind")
        wants = {"null": (), "spike_in": ("gold_fraction",),
                 "synthetic_spike_in": ("gain",)}[self.kind]
        for key in ("gold_fraction", "gain"):
            value = getattr(self, key)
            if key in wants and value is None:
                raise InputError(f"a {self.kind} control needs {key}", field=key)
            if key not in wants and value is not None:
                raise InputError(f"{key} is not a setting of a {self.kind} control", field=key)
        if self.gold_fraction is not None and not 0 <= self.gold_fraction <= 1:
            raise InputError(f"expected a fraction in [0, 1], got {self.gold_fraction}",
                             field="gold_fraction")
        if self.gain is not None and not 0 < self.gain < 1:
            raise InputError(f"expected an accuracy gain in (0, 1), got {self.gain}",
                             field="gain")

    @property
    def label(self) -> str:
        """The control's arm name in results tables and verdict.json."""
        return f"{CONTROL_PREFIX}{self.kind}:{self.name}"

    @property
    def marker(self) -> str:
        """``spike_in`` or ``null`` (verdict.json's ``control``)."""
        return MARKER[self.kind]

    def as_dict(self) -> dict[str, Any]:
        """The settings that define the control (unset sizes left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def injected_gain(self) -> float | None:
        """The true gain over the baseline by construction: 0 for a null control, ``gain`` for a
        synthetic spike-in, None for a gold-label spike-in (real, but not known in advance)."""
        return {"null": 0.0, "synthetic_spike_in": self.gain}.get(self.kind)

    def verdict_entry(self) -> dict[str, Any]:
        """verdict.json's ``control_details`` of this control's entry (its ``control`` is
        :attr:`marker`, ``spike_in`` or ``null``): ``variant`` (the plan's kind), ``name``,
        ``injected_gain`` (accuracy, None when unknown) and ``spec`` (its settings)."""
        return {"variant": self.kind, "name": self.name, "injected_gain": self.injected_gain,
                "spec": self.as_dict()}


def is_control_label(label: str) -> bool:
    """Whether an arm label names a control (the reserved prefix)."""
    return str(label).startswith(CONTROL_PREFIX)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def control_fingerprint(baseline_fingerprint: str, control: ControlSpec,
                        baseline_params: dict[str, Any] | None = None) -> str:
    """The code of a control run: the baseline's code, its params and the control's spec.

    (The code that builds controls, this module, is in the trainer's fingerprint, which every
    run's key also holds.)
    """
    from transfer.fingerprint import combine

    return combine("control", baseline_fingerprint, _canonical(baseline_params or {}),
                   _canonical(control.as_dict()))


def _stream(seed: int, control: ControlSpec, purpose: str) -> np.random.Generator:
    """A random stream of its own for (seed, control, purpose)."""
    digest = hashlib.sha256(f"w2s-control\0{control.label}\0{seed}\0{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def replicate_seed(seed: int, control: ControlSpec) -> int:
    """The training seed of a control run: independent of the baseline's (``seed``) and of other
    controls', fixed by the run's seed and the control's label."""
    return int(_stream(seed, control, "train").integers(1_000_000, 2**31 - 1))


def check_trusted(method_fn: Any, control: ControlSpec, baseline: str) -> None:
    """Refuse a control whose baseline procedure is not trusted code of this process.

    ``method_fn.runs_untrusted_code`` must be exactly False (``methods.resolve.method_function``
    sets it; a plain callable handed to ``run_arm`` must set it too): fail closed; and
    ``method_fn.jailed_builtin`` must not be True (a built-in the plan jails, ``jail: {builtins:
    jail}``, is code the plan does not trust: handed gold labels, it could tell a control's runs
    apart and behave well only there; attacker review, 2026-12-05). Controls use gold labels, so
    they are built only where the pipeline trusts every line that runs.

    Raises:
        InputError: the baseline runs plugin or external code, or is a jailed built-in.
    """
    if getattr(method_fn, "runs_untrusted_code", True) is not False \
            or getattr(method_fn, "jailed_builtin", False) is not False:
        raise InputError(f"control {control.name!r} ({control.kind}) re-runs the baseline "
                         f"{baseline!r}, which runs code the pipeline does not trust; controls "
                         "use gold labels, so they need a trusted built-in baseline (vanilla, "
                         "or any built-in without jail: {builtins: jail})", field="controls")


def mixed_targets(weak_probs: np.ndarray, gold: np.ndarray, seed: int, control: ControlSpec
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weak soft labels with a seeded ``gold_fraction`` of them replaced by the gold labels.

    Returns:
        ``(targets, replaced)``: the new P(label 1) per example and the indices replaced
        (``round(gold_fraction * N)`` of them, drawn without replacement).
    """
    weak = np.asarray(weak_probs, dtype=np.float64)
    count = int(round((control.gold_fraction or 0.0) * len(weak)))
    replaced = np.sort(_stream(seed, control, "gold").choice(len(weak), size=count,
                                                             replace=False))
    targets = weak.copy()
    targets[replaced] = np.asarray(gold, dtype=np.float64)[replaced]
    return targets, replaced


def corrected_predictions(probs: np.ndarray, gold: np.ndarray, seed: int, control: ControlSpec
                          ) -> tuple[np.ndarray, int]:
    """The replicate's test probabilities with ``round(gain * n)`` wrong ones set to gold.

    Raises:
        InputError: fewer wrong predictions than the gain asks to correct.

    Returns:
        ``(probs, corrected)``: the new probabilities and how many were corrected.
    """
    probs = np.asarray(probs, dtype=np.float64).copy()
    gold = np.asarray(gold)
    wrong = np.flatnonzero((probs > 0.5).astype(np.int64) != gold)
    count = int(round((control.gain or 0.0) * len(probs)))
    if count > len(wrong):
        raise InputError(f"control {control.name}: gain {control.gain} asks to correct {count} "
                         f"test predictions but the replicate got only {len(wrong)} wrong; "
                         "lower the gain", field="controls")
    chosen = _stream(seed, control, "correct").choice(wrong, size=count, replace=False)
    probs[chosen] = gold[chosen].astype(np.float64)
    return probs, count
