"""``w2s-transfer plan-schema [--out FILE]``: export the plan's JSON schema."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._errors import user_errors
from flows.commands._paths import nonempty_path


def register(app: typer.Typer) -> None:
    """Add the ``plan-schema`` command to ``app``."""

    @app.command("plan-schema")
    def plan_schema(
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Write the schema here (default: print it).",
            parser=nonempty_path)] = None,
    ) -> None:
        """Print (or write) the JSON schema of validation plans."""
        with user_errors():
            from flows.plan import plan_json_schema
            from w2s_common.atomic import atomic_write_text

            text = json.dumps(plan_json_schema(), indent=2) + "\n"
            if out is None:
                typer.echo(text, nl=False)
                return
            atomic_write_text(out, text)
        typer.echo(f"plan schema: {out}")
