"""Read a user's YAML file: the parsed data and its node tree (for line numbers), or InputError."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from w2s_common.errors import InputError


def read_yaml(path: str | Path, what: str = "file") -> tuple[Any, yaml.Node | None]:
    """Parse ``path``; returns ``(data, root_node)``.

    Raises:
        InputError: missing or unreadable file, or invalid YAML (with the line of the problem).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {what} ({err})", path=path) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse YAML ``text`` that is (or will be) the file ``path``; returns ``(data, root_node)``.

    Raises:
        InputError: invalid YAML, located at ``path`` and the line of the problem.
    """
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise InputError(f"invalid YAML: {err.problem or err}", path=path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise InputError(f"invalid YAML: {err}", path=path) from None


def node_line(node: yaml.Node | None, loc: tuple) -> int | None:
    """Best-effort 1-based line of the YAML node at ``loc`` (keys and list indices), or of its
    closest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line
