"""A Typer app holding only the product-layer commands, for CLI tests independent of other rooms."""
from __future__ import annotations

import typer

from flows.commands import gate, plan_schema, report


def product_app() -> typer.Typer:
    """``gate``, ``report`` and ``plan-schema`` registered exactly as flows/cli.py does."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _group() -> None:
        """Forces sub-command mode even with few commands."""

    for module in (gate, report, plan_schema):
        module.register(app)
    return app
