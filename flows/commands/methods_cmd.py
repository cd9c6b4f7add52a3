"""`w2s-transfer methods [--json]`: the W2S methods available, with their source and params."""
from __future__ import annotations

import json
import re
from typing import Any

import typer

from flows.commands._errors import user_errors

_TRAILING_SOURCE = re.compile(r"\(([^()]*)\)\s*$")


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name and not getattr(annotation, "__args__", None):
        return name
    return str(annotation).replace("typing.", "")


def _params(params_model: Any) -> list[dict[str, Any]]:
    from pydantic_core import PydanticUndefined

    rows = []
    for name, info in params_model.model_fields.items():
        required = info.default is PydanticUndefined and info.default_factory is None
        rows.append({"name": name, "type": _type_name(info.annotation), "required": required,
                     "default": None if required else info.get_default(call_default_factory=True),
                     "description": info.description or ""})
    return rows


# JSON schema types under the names the in-process built-ins' rows use.
JSON_TYPES = {"number": "float", "integer": "int", "string": "str", "boolean": "bool",
              "array": "list", "object": "dict", "null": "None"}


def _params_from_schema(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Params rows of a plugin or a jailed built-in, from the JSON schema its jailed
    ``describe`` returned."""
    from methods.jail import printable

    required = set(schema.get("required") or [])
    rows = []
    for name, field in (schema.get("properties") or {}).items():
        field = field if isinstance(field, dict) else {}
        kinds = [field.get("type")] + [option.get("type") for option in field.get("anyOf", [])
                                       if isinstance(option, dict)]
        kind = "|".join(JSON_TYPES.get(str(k), str(k)) for k in kinds if k) or "any"
        # The schema comes from plugin code (described in the jail): shown, never obeyed.
        rows.append({"name": printable(str(name)), "type": printable(kind),
                     "required": name in required,
                     "default": None if name in required else field.get("default"),
                     "description": printable(str(field.get("description", "")))})
    return rows


def methods_as_list() -> list[dict[str, Any]]:
    """Every built-in and entry-point method as a JSON-able dict.

    Returns:
        dicts with ``name, description, source`` (the description's trailing parenthetical,
        else the provider), ``origin`` (builtin / entry-point), ``provider``, ``params``
        (``name, type, required, default, description``), and ``error`` for plugins that
        failed to load.
    """
    from methods.registry import list_methods

    listed = []
    for item in list_methods():
        if isinstance(item, tuple):
            name, error = item
            listed.append({"name": name, "description": "", "source": "", "origin": "entry-point",
                           "provider": "", "params": [], "error": error})
            continue
        method = item.method
        match = _TRAILING_SOURCE.search(method.description)
        listed.append({"name": method.name, "description": method.description,
                       "source": match.group(1) if match else item.provider,
                       "origin": item.origin, "provider": item.provider,
                       "params": (_params_from_schema(method.params_schema)
                                  if hasattr(method, "params_schema") else
                                  _params(method.Params))})
    return listed


def _param_text(param: dict[str, Any]) -> str:
    if param["required"]:
        return f"{param['name']}: {param['type']} (required)"
    return f"{param['name']}: {param['type']} = {json.dumps(param['default'])}"


def _without_source(description: str) -> str:
    return _TRAILING_SOURCE.sub("", description).rstrip()


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods(as_json: bool = typer.Option(False, "--json", help="print JSON for machines")
                ) -> None:
        """List W2S methods (built-ins and plugins) with their source and parameters."""
        with user_errors():
            listed = methods_as_list()
        if as_json:
            print(json.dumps(listed, indent=2, default=str))
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table("method", "description", "source", "origin", "params", show_lines=True)
        for entry in listed:
            if "error" in entry:
                table.add_row(escape(entry["name"]),
                              f"[red]failed to load: {escape(entry['error'])}[/red]", "",
                              entry["origin"], "")
                continue
            table.add_row(escape(entry["name"]), escape(_without_source(entry["description"])),
                          escape(entry["source"]), entry["origin"],
                          escape("\n".join(_param_text(p) for p in entry["params"]) or "-"))
        Console(width=160).print(table)
