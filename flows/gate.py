"""The promotion gate: may a method be promoted, according to a verdict.json?

Exit codes (used by ``w2s-transfer gate`` and CI): 0 promote, 1 do not promote, 2 bad input
(unreadable/truncated/invalid verdict file, unknown method, unknown required verdict).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flows.report.verdict import VERDICTS, load_verdict
from transfer.errors import InputError

PROMOTE, BLOCK = 0, 1


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one method."""

    method: str
    verdict: str
    promote: bool
    required: tuple[str, ...]
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the method may be promoted under the requirement."""
        return self.promote and (not self.required or self.verdict in self.required)

    @property
    def exit_code(self) -> int:
        """0 when passed, 1 otherwise."""
        return PROMOTE if self.passed else BLOCK

    def describe(self) -> str:
        """Human-readable lines: the decision, the verdict and the reasons."""
        head = (f"{self.method}: {'PROMOTE' if self.passed else 'DO NOT PROMOTE'} "
                f"(verdict {self.verdict}, promote={str(self.promote).lower()}")
        head += f", required {'|'.join(self.required)})" if self.required else ")"
        lines = [head]
        if self.promote and self.required and self.verdict not in self.required:
            lines.append(f"  verdict {self.verdict} is not in the required set "
                         f"{{{', '.join(self.required)}}}")
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def parse_required(values: Iterable[str] | None) -> tuple[str, ...]:
    """Normalise ``--require`` values (repeatable, comma-separated, any case).

    Raises:
        InputError: an unknown verdict name.
    """
    required: list[str] = []
    for value in values or ():
        for name in value.split(","):
            name = name.strip().upper()
            if not name:
                continue
            if name not in VERDICTS:
                raise InputError(f"unknown verdict {name!r}; expected one of {list(VERDICTS)}",
                                 field="--require")
            if name not in required:
                required.append(name)
    return tuple(required)


def check_promotion(verdict_path: str | Path, method: str,
                    require: Iterable[str] | None = None) -> GateDecision:
    """Decide whether ``method`` may be promoted according to ``verdict_path``.

    Args:
        verdict_path: a verdict.json (schema_version 1).
        method: the method's name.
        require: verdicts that are acceptable (e.g. ``["REAL"]``); empty means ``promote`` alone
            decides.

    Returns:
        A :class:`GateDecision` (``exit_code`` 0 or 1).

    Raises:
        InputError: unreadable, truncated or invalid file, unknown method or verdict name.
    """
    required = parse_required(require)
    verdict, _ = load_verdict(verdict_path)
    decision = verdict.methods.get(method)
    if decision is None:
        raise InputError(f"unknown method {method!r}; the file has {sorted(verdict.methods)}",
                         path=verdict_path, field="methods")
    return GateDecision(method=method, verdict=decision.verdict, promote=decision.promote,
                        required=required, reasons=list(decision.reasons))
