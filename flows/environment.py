"""The environment variables a validation reads, checked before any compute.

A run reads some settings from the environment, in the flow process, in its workers and at
the very end (the summary's timeout). A bad value found late costs the whole run; here every
one is parsed up front and a bad one is an ``InputError`` naming the variable and what was
expected (exit 2, one line). The parsers are the ones the run itself uses where one exists.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from w2s_common.errors import InputError


def _seconds(name: str, upper: float) -> Callable[[str], None]:
    def check(raw: str) -> None:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= upper):
            raise InputError(f"expected a number of seconds in (0, {upper:g}], got {raw!r}",
                             field=name)
    return check


def _lease_ttl(raw: str) -> None:
    from transfer.leases import lease_ttl

    lease_ttl()  # the parser the leases use; it reads the variable and names it


def _device_slots(raw: str) -> None:
    from flows.slots import parse_slot_setting

    parse_slot_setting(raw)


def _jail_uid(raw: str) -> None:
    try:
        uid = int(raw)
    except ValueError:
        uid = 0
    if not 0 < uid < 2**31 - 1:
        raise InputError(f"expected a non-root numeric uid (1 to {2**31 - 2}), got {raw!r}",
                         field="W2S_JAIL_UID")


def _jail_builder(raw: str) -> None:
    if raw not in ("bwrap", "unshare"):
        raise InputError(f"expected 'bwrap' or 'unshare' (or unset: the first that works), "
                         f"got {raw!r}", field="W2S_JAIL_BUILDER")


def _warm_start(raw: str) -> None:
    from flows.warm_start import warm_setting

    warm_setting()  # the parser the executor uses; it reads the variable and names it


def _cache_dir(raw: str) -> None:
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"expected a directory, got {raw!r} (a file)", field="W2S_CACHE_DIR")


def _plugin_path(raw: str) -> None:
    for entry in (e for e in raw.split(os.pathsep) if e):
        if not Path(entry).is_dir():
            # A typo left every plugin of the directory unknown, silently (helper-44).
            raise InputError(f"expected directories (pip install --target DIR), got {entry!r}, "
                             "which is not one", field="W2S_PLUGIN_PATH")


# Variable -> check of a non-empty value. Unset or empty means the default everywhere.
CHECKS: dict[str, Callable[[str], None]] = {
    "W2S_CACHE_DIR": _cache_dir,
    "W2S_LEASE_TTL_S": _lease_ttl,
    "W2S_DEVICE_SLOTS": _device_slots,
    "W2S_SUMMARY_TIMEOUT_S": _seconds("W2S_SUMMARY_TIMEOUT_S", 3600),
    "W2S_JAIL_UID": _jail_uid,
    "W2S_JAIL_BUILDER": _jail_builder,
    "W2S_WARM_START": _warm_start,
    "W2S_PLUGIN_PATH": _plugin_path,
}


def check_environment() -> None:
    """Check every variable of :data:`CHECKS` set in this process's environment (workers
    inherit it); raise the first problem.

    Raises:
        InputError: ``W2S_...: expected ..., got '...'``.
    """
    for name, check in CHECKS.items():
        raw = os.environ.get(name)
        if raw:
            check(raw)
