"""`w2s-transfer ladders [--json]`: the built-in model ladders and their rungs, smallest first."""
from __future__ import annotations

import json

import typer

from flows.commands._errors import user_errors


def ladders_as_dict(names: list[str] | None = None) -> dict[str, list[dict]]:
    from transfer.ladder import builtin_ladder_names, load_ladder, model_params

    out: dict[str, list[dict]] = {}
    for name in names or builtin_ladder_names():
        ladder = load_ladder(name)
        out[ladder.name] = [
            {"name": rung.name, "weak": rung.weak.name, "strong": rung.strong.name,
             "weak_params": model_params(rung.weak),
             "strong_params": model_params(rung.strong)}
            for rung in ladder.rungs
        ]
    return out


def register(app: typer.Typer) -> None:
    @app.command("ladders")
    def ladders(
        as_json: bool = typer.Option(False, "--json", help="print JSON for machines"),
        ladder: list[str] = typer.Option(None, "--ladder", help="a ladder name or YAML path"),
    ) -> None:
        """List model ladders and their (weak, strong) rungs in order of size."""
        with user_errors():
            data = ladders_as_dict(ladder or None)
        if as_json:
            print(json.dumps(data, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("ladder", "rung", "weak", "weak params", "strong", "strong params")
        for name, rungs in data.items():
            for rung in rungs:
                table.add_row(name, rung["name"], rung["weak"], _fmt(rung["weak_params"]),
                              rung["strong"], _fmt(rung["strong_params"]))
        console = Console()
        console.width = max(console.width, 120)  # model names are what one looks up here
        console.print(table)


def _fmt(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
