"""Turn bad-input exceptions into one line on stderr and exit code 2 (never a traceback)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer


def _user_error_types() -> tuple[type[BaseException], ...]:
    from pydantic import ValidationError

    from w2s_common.errors import InputError

    # Every OSError: a missing or unreadable file, a full disk, a read-only mount, a refused
    # connection are problems of the input or the machine, not of the code.
    return (InputError, ValidationError, OSError)


def _one_line(err: BaseException) -> str:
    from pydantic import ValidationError

    from w2s_common.validation import first_error

    if isinstance(err, ValidationError):
        first = first_error(err)
        return f"{first.dotted(default='input')}: {first.message}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    return " ".join(str(err).split())


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Wrap a command body: user errors become ``error: <one line>`` on stderr and exit 2.

    A worker that failed said why in one line (the last line of its log, which also holds any
    traceback): that line, exit 2 when the worker failed on bad input or the machine (it exited
    2), else 1. Ctrl-C ends the command with ``interrupted`` and exit 130.
    """
    from flows.execute import BAD_INPUT_EXIT, GroupFailed
    from flows.slots import ShutdownInProgress

    try:
        yield
    except _user_error_types() as err:
        raise fail(_one_line(err)) from None
    except GroupFailed as err:
        raise fail(_one_line(err), 2 if err.returncode == BAD_INPUT_EXIT else 1) from None
    except (KeyboardInterrupt, ShutdownInProgress):
        raise fail("interrupted", INTERRUPTED_EXIT) from None
