"""The files a user hands a command (a verdict.json, a provenance.json, a plan, a results
table): only a regular file is read, and JSON that does not parse is one ``InputError`` naming
the file (and the line, where the parser knows it)."""
from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from w2s_common.errors import TOO_LONG_NUMBER, InputError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def require_regular_file(path: Path, what: str) -> None:
    """Refuse a path that is missing or not a regular file.

    A FIFO or a device would block the read forever or never end (``analyze`` refuses them the
    same way, with ``Path.is_file``).

    Raises:
        InputError: ``<path>: <what> not found`` or ``cannot read <what>: a FIFO, ...``.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except OSError as err:
        raise InputError(f"cannot read {what} ({err.strerror or err})", path=path) from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise InputError(f"cannot read {what}: {kind}, expected a regular file", path=path)


def read_user_text(path: Path, what: str) -> str:
    """The UTF-8 text of a regular file (:func:`require_regular_file`).

    Raises:
        InputError: missing, not a regular file, unreadable or not UTF-8.
    """
    require_regular_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {what} ({err})", path=path) from None


def parse_json(text: str, path: Path, *,
               object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
               parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads`` with its failures as one line naming ``path``.

    Exceptions the hooks raise pass through unchanged (they must be subclasses of
    ``ValueError``, not ``ValueError`` itself, which is how json reports an integer of more than
    4300 digits).

    Raises:
        InputError: invalid or truncated JSON (with its line and column), or JSON nested deeper
            than Python's parser can follow (``RecursionError``, a few thousand levels).
    """
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook,
                          parse_constant=parse_constant)
    except json.JSONDecodeError as err:
        raise InputError(f"invalid or truncated JSON: {err.msg} (column {err.colno})",
                         path=path, line=err.lineno) from None
    except ValueError as err:
        if type(err) is not ValueError:
            raise  # a hook's own error (a subclass): passed through, as documented
        # json.loads' only plain ValueError: an integer past Python's conversion limit
        raise InputError(TOO_LONG_NUMBER, path=path) from None
    except RecursionError:
        raise InputError("JSON nested too deeply (expected arrays and objects less than about "
                         "1000 levels deep)", path=path) from None


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A regular file holding one JSON object.

    Raises:
        InputError: as :func:`read_user_text` and :func:`parse_json`, or not a JSON object.
    """
    data = parse_json(read_user_text(path, what), path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object ({what})", path=path, line=1)
    return data
