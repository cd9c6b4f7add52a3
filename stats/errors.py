"""The name stats/ raises its user-input errors under: the one `InputError` of every room
(``w2s_common.errors``), so a caller catches one class."""
from __future__ import annotations

from w2s_common.errors import InputError

StatsInputError = InputError

__all__ = ["StatsInputError"]
