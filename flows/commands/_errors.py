"""Turn bad-input exceptions into one line on stderr and exit code 2 (never a traceback)."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperGroup

try:  # recent Typer carries its own copy of click (typer._click); older Typer used click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors


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
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: the reader of stdout went away
# sysexits.h EX_SOFTWARE: a bug in this program. Apart from 1 so that no crash reads as an
# answer: for `gate`, 1 means "not promotable".
INTERNAL_ERROR_EXIT = 70


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
    except BrokenPipeError as err:
        if stdout_gone():
            raise  # the reader of stdout went away (`| head`): ``_internal_errors``
        raise fail(_one_line(err)) from None  # another pipe: the machine's problem, one line
    except _user_error_types() as err:
        raise fail(_one_line(err)) from None
    except GroupFailed as err:
        raise fail(_one_line(err), 2 if err.returncode == BAD_INPUT_EXIT else 1) from None
    except (KeyboardInterrupt, ShutdownInProgress):
        raise fail("interrupted", INTERRUPTED_EXIT) from None


def stdout_gone() -> bool:
    """Whether this process's stdout is a pipe whose reader has gone (poll reports an error on
    its write end): only then is a BrokenPipeError the reader's doing, not another pipe's
    (helper-47: a child's pipe had become a silent exit 141)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def usage_line(err: click_errors.UsageError) -> str:
    """A usage error (bad option value, unknown option, missing argument) as one line:
    ``<option>: <message>`` where the error names an option or argument."""
    if isinstance(err, click_errors.NoSuchOption):
        hint = (f" (did you mean {', '.join(sorted(err.possibilities))}?)"
                if err.possibilities else "")
        return f"{err.option_name}: no such option{hint}"
    name = _parameter_name(err) if isinstance(err, click_errors.BadParameter) else None
    if name is None:
        return " ".join(err.format_message().split())
    if isinstance(err, click_errors.MissingParameter):
        kind = err.param_type or (err.param.param_type_name if err.param else "option")
        return f"{name}: required {kind} is missing"
    return f"{name}: {' '.join(err.message.split())}"


def _parameter_name(err: click_errors.BadParameter) -> str | None:
    if isinstance(err.param_hint, str):
        return err.param_hint
    if err.param is None:
        return None
    if err.param.param_type_name == "option":
        # The long form names it best (--method, not -m).
        return next((o for o in err.param.opts if o.startswith("--")), err.param.opts[0])
    return (err.param.name or "argument").upper()  # as --help shows an argument: PLAN


def _exits_and_usage_errors() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [typer.Exit, typer.Abort, click_errors.ClickException]
    try:  # click itself, where a command or a library raises its exceptions
        from click import exceptions as click_own
    except ImportError:  # pragma: no cover - depends on the installed Typer
        return tuple(kinds)
    return (*kinds, click_own.Exit, click_own.Abort, click_own.ClickException)


@contextlib.contextmanager
def _internal_errors() -> Iterator[None]:
    """An exception no command turned into an answer or a user error is a bug: its traceback
    (for the report), then ``error: internal error ...`` as the last line, and exit 70."""
    try:
        yield
    except _exits_and_usage_errors():
        raise
    except BrokenPipeError as err:
        if not stdout_gone():
            raise fail(f"internal error (a bug in w2s-transfer, not a verdict): {err}",
                       INTERNAL_ERROR_EXIT) from None
        # `w2s-transfer methods --json | head`: the reader closed the pipe. As other tools do,
        # stop quietly with 128 + SIGPIPE; stdout goes to /dev/null so that the interpreter's
        # last flush does not fail again (helper-46 saw a traceback and exit 70).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(BROKEN_PIPE_EXIT) from None
    except Exception as err:  # noqa: BLE001 - the CLI's last resort, re-raised as an exit code
        import traceback

        traceback.print_exc(file=sys.stderr)
        summary = " ".join(f"{type(err).__name__}: {err}".split())[:500]
        raise fail(f"internal error (a bug in w2s-transfer, not a verdict): {summary}",
                   INTERNAL_ERROR_EXIT) from None


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except click_errors.NoArgsIsHelpError:
        raise  # the command alone, without arguments: its help, as before
    except click_errors.UsageError as err:
        raise fail(usage_line(err), err.exit_code) from None


class OneLineUsageGroup(TyperGroup):
    """The CLI's command group: a usage error of any command is ``error: <option>: <message>``
    and exit 2, like every other bad input (click prints a multi-line box); ``--help`` is
    unchanged. A crash of any command exits 70 (``INTERNAL_ERROR_EXIT``), never 1.

    The group's own options are parsed in ``make_context``; the command's name, its options
    and its body run in ``invoke``: both are covered.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors(), _internal_errors():
            return super().invoke(ctx)
