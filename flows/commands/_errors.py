"""Turn bad-input exceptions into one line on stderr and exit code 2 (never a traceback)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer


def _user_error_types() -> tuple[type[BaseException], ...]:
    from pydantic import ValidationError

    from stats.errors import StatsInputError
    from transfer.errors import InputError

    return (InputError, StatsInputError, ValidationError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError)


def _one_line(err: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        first = err.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "input"
        return f"{field}: {first.get('msg', 'invalid value')}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    return " ".join(str(err).split())


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Wrap a command body: user errors become ``error: <one line>`` on stderr and exit 2."""
    from flows.execute import BAD_INPUT_EXIT, GroupFailed

    try:
        yield
    except _user_error_types() as err:
        raise fail(_one_line(err)) from None
    except GroupFailed as err:
        # A worker that exited on bad input (e.g. a stored run failing its integrity check)
        # already said why in one line; anything else is a crash and keeps its traceback.
        if err.returncode != BAD_INPUT_EXIT:
            raise
        raise fail(_one_line(err)) from None
