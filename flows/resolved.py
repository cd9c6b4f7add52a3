"""A plan entry as the campaign resolved it before any compute: what every later check of the
campaign compares a worker's runs, a group's outcome and the verdict's binding with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.fingerprint import MethodCode


@dataclass(frozen=True)
class ResolvedMethod:
    """One plan entry (the baseline or a candidate), resolved by ``methods.resolve``.

    Attributes:
        label: its results name (a plugin names itself).
        params: its params as the method validated them (JSON values).
        code: the code its runs are keyed by (``methods.fingerprint.MethodCode``).
        untrusted: it runs code the pipeline does not trust (a plugin, an external command).
        jailed_builtin: a built-in the plan runs in a jail of its own (``builtins: jail``).
    """

    label: str
    params: dict[str, Any]
    code: MethodCode
    untrusted: bool
    jailed_builtin: bool = False
