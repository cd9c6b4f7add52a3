"""A plan entry as the campaign resolved it before any compute (what every later check of the
campaign compares a worker's runs, a group's outcome and the verdict's binding with), and the
checks of the resolved entries together: each results name its own, controls only with a
trusted baseline."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from methods.fingerprint import MethodCode
from w2s_common.names import name_key


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


def check_unique_labels(plan: Any, methods: dict[str, ResolvedMethod]) -> None:
    """Before any compute: each entry's results name (a plugin names itself) is its own, and
    none is an arm name (weak, ceiling): two entries under one name would merge their runs
    into one arm, and two that read alike (``sharpen``, ``Sharpen``; ``w2s_common.names.
    name_key``) could not be told apart in the reports. Nor may a results name read as what
    another method is known by: another entry's reference in the plan, or the name of an
    installed entry point that is not this entry (the
    gate finds an entry by its results name or its reference; a plugin calling itself like a
    rival's reference would stand in for the rival there).

    Raises:
        InputError: naming the plan's file, line and field of the offending entry.
    """
    from methods.registry import _entry_points

    # Compared as a reader reads them (case and separators aside): `Sharpen` beside a rival's
    # `sharpen` was two arms a reader could not tell apart (helper-49).
    references, entry_points = _by_key(methods), _by_key(_entry_points())
    arms = {name_key(arm): arm for arm in ("weak", "ceiling")}
    seen: dict[str, str] = {}
    for index, (name, info) in enumerate(methods.items()):
        label, key = info.label, name_key(info.label)
        loc = ("baseline",) if index == 0 else ("methods", index - 1, "name")
        clash = seen.get(key) or arms.get(key)
        if clash is not None:
            plan._raise(loc, f"method {name!r} names itself {label!r}, which reads as the "
                        f"name of {clash!r} (case and . _ - aside); each method's results name "
                        "must be its own")
        other_reference = references.get(key, set()) - {name}
        other_entry_point = entry_points.get(key, set()) - {name}
        if other_reference or other_entry_point:
            what = "another plan entry" if other_reference else "an installed entry point"
            other = sorted(other_reference or other_entry_point)[0]
            plan._raise(loc, f"method {name!r} names itself {label!r}, which reads as the name "
                        f"of {what} ({other!r}; case and . _ - aside); a results name may not "
                        "be another method's name")
        seen[key] = name


def _by_key(names: Iterable[str]) -> dict[str, set[str]]:
    """Names grouped by what they read as (``w2s_common.names.name_key``)."""
    grouped: dict[str, set[str]] = {}
    for name in names:
        grouped.setdefault(name_key(name), set()).add(name)
    return grouped


def check_controls(plan: Any, methods: dict[str, ResolvedMethod]) -> None:
    """Before any compute: no method may be named like a control (a plugin names itself), and
    controls need a baseline the pipeline trusts (a built-in: they use gold labels).

    Raises:
        InputError: naming the plan's file, line and field.
    """
    from transfer.controls import is_control_label

    for index, (name, info) in enumerate(methods.items()):
        if is_control_label(info.label):
            loc = ("baseline",) if index == 0 else ("methods", index - 1, "name")
            plan._raise(loc, f"method {name!r} names itself {info.label!r}; names starting "
                        "with 'control:' are reserved for controls")
    base = methods[plan.baseline]
    if plan.controls and (base.untrusted or base.jailed_builtin):
        why = ("is a built-in this plan does not trust (jail: {builtins: jail}): use vanilla, "
               "the pipeline's reference" if base.jailed_builtin else
               "runs code the pipeline does not trust; use a built-in baseline")
        plan._raise(("controls", 0, "kind"),
                    f"controls re-run the baseline {plan.baseline!r} with gold labels on the "
                    f"trusted side, and this baseline {why}, or no controls")
