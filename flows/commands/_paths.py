"""Path options that refuse an empty value: typer turns ``--out ""`` into ``Path(".")``, so
``run-arm --out ""`` wrote into the working directory (review 2026-12-05, helper-44)."""
from __future__ import annotations

from pathlib import Path

import typer


def nonempty_path(value: str | Path) -> Path:
    """The ``parser`` of a path option: the path, or a usage error (one line, exit 2) when the
    value is empty or blank. Defaults (already paths) pass unchanged."""
    if isinstance(value, Path):
        return value
    if not value.strip():
        raise typer.BadParameter("empty; expected a path")
    return Path(value)
