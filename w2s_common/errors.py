"""User-facing input errors: one line, naming where the problem is and what was expected.

The one error type of every room (stats, transfer, methods, flows): the CLI prints ``str(err)``
and exits 2."""
from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input (a file, a config, an argument). The CLI prints ``str(err)`` and exits 2.

    ``str()`` renders as ``path:line: field: message`` with the parts that are known.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line is not None else "")
        parts = [p for p in (where, self.field) if p]
        return ": ".join(parts + [self.message])


# A JSON or YAML integer longer than Python converts (sys.get_int_max_str_digits, 4300 by
# default): json.loads raises a bare ValueError, which readers that caught only JSONDecodeError
# let through as a traceback (review 2026-12-05, helper-44).
TOO_LONG_NUMBER = "a number of more than 4300 digits; expected a JSON value Python can read"
