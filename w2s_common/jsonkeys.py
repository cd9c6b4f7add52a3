"""A ``json.loads`` hook that refuses a key named twice in one object.

``json`` keeps a repeated key's last value; a reader that takes the first would see another
file (a verdict whose second ``promote`` reads ``true``, a dataset row with two labels)."""
from __future__ import annotations

from typing import Any


class RepeatedKey(ValueError):
    """A JSON object names one key twice."""


def one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or :class:`RepeatedKey`."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise RepeatedKey(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen
