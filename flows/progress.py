"""Progress events of a validation campaign, for whoever shows them (the CLI's rich bar, the
flow's Prefect logs and progress artifact).

Orchestrator-agnostic and thread-safe: the campaign and the group runner ``emit`` events; a
listener subscribed for the duration of a command or flow receives them.

Events: ``plan`` (total_groups, looks), ``group_done`` (rung, seeds, executed, seconds),
``look`` (look, seeds, undecided, done_groups, total_groups), ``analysis``.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_LISTENERS: list[Listener] = []
_LOCK = threading.Lock()


def emit(event: str, **data: Any) -> None:
    with _LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        listener(event, data)


@contextlib.contextmanager
def subscribed(listener: Listener) -> Iterator[None]:
    with _LOCK:
        _LISTENERS.append(listener)
    try:
        yield
    finally:
        with _LOCK:
            _LISTENERS.remove(listener)


@contextlib.contextmanager
def rich_bar(title: str) -> Iterator[None]:
    """A rich progress bar over the campaign's arm groups, on stderr when it is a terminal,
    while the block runs (cleared if the block fails, so the error is the last word)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        # A log file or a pipe: a live bar only adds its final frame; errors stay one line.
        yield
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[note]}"),
                        console=console, transient=False)
    task = progress.add_task(title, total=None, note="checking the plan")

    def listener(event: str, data: dict[str, Any]) -> None:
        if event == "plan":
            progress.update(task, total=data["total_groups"], note="running arm groups")
        elif event == "group_done":
            progress.update(task, advance=1, note=f"{data['rung']} seeds {data['seeds']}: "
                                                  f"{data['executed']} arms run")
        elif event == "look":
            progress.update(task, total=data.get("total_groups"),
                            note=f"look {data['look']}: {len(data['undecided'])} method(s) "
                                 "still undecided")
        elif event == "analysis":
            progress.update(task, note="statistics and report")

    with progress, subscribed(listener):
        try:
            yield
        except BaseException:
            # A failed command ends with its one-line error, not with a half-filled bar.
            progress.live.transient = True
            raise
