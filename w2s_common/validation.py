"""The first problem pydantic found, as one line: its location, its message and an InputError."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s_common.errors import InputError
from w2s_common.yamlio import node_line

if TYPE_CHECKING:
    import yaml
    from pydantic import ValidationError


@dataclass(frozen=True)
class FirstError:
    """The first error of a pydantic ``ValidationError``.

    ``loc`` is where (keys and list indices), ``message`` pydantic's text, ``kind`` its error
    type (``missing``, ``extra_forbidden``...), ``context`` its ``ctx`` (the original exception
    of a validator under ``error``)."""

    loc: tuple[str | int, ...]
    message: str
    kind: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def dotted(self, prefix: tuple[str | int, ...] = (), default: str | None = None) -> str | None:
        """``prefix + loc`` joined with dots (``rungs.0.weak``), or ``default`` when empty."""
        return ".".join(str(part) for part in prefix + self.loc) or default


def first_error(err: ValidationError) -> FirstError:
    """The first of ``err.errors()``."""
    first = err.errors()[0]
    return FirstError(loc=tuple(first.get("loc", ())), message=first.get("msg", "invalid value"),
                      kind=first.get("type"), context=dict(first.get("ctx") or {}))


def validation_input_error(err: ValidationError, *, path: str | Path | None = None,
                           root: yaml.Node | None = None, prefix: tuple[str | int, ...] = (),
                           drop: tuple[str, ...] = ()) -> InputError:
    """An `InputError` for the first problem in ``err``: pydantic's message, the file, the line of
    the field in the YAML node tree ``root`` (when given) and the dotted field.

    Args:
        err: what pydantic raised.
        path: the file the data came from.
        root: that file's YAML node tree (`w2s_common.yamlio.read_yaml`), for the line.
        prefix: where the validated data sits in the file (``("training",)``).
        drop: location parts that are not keys of the file (a tagged union's tag).
    """
    first = first_error(err)
    loc = prefix + tuple(part for part in first.loc if part not in drop)
    return InputError(first.message, path=path, line=node_line(root, loc),
                      field=".".join(str(part) for part in loc) or None)
