"""Read a user's YAML file: the parsed data and its node tree (for line numbers), or InputError."""
from __future__ import annotations

import re
import sys
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


# A plan is a few hundred nodes; aliases make a few bytes stand for exponentially many (a
# "billion laughs" plan of 1 KB hung validation for hours), so the expanded tree is bounded.
MAX_EXPANDED_NODES = 100_000
_BOOL_1_2 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true/false. YAML 1.1 also reads
    yes/no/on/off as booleans, so ``jail: {mode: off}`` arrived as ``mode: false`` and was
    refused with "expected 'required' or 'off'"."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more than 4300 digits (Python's int conversion limit)
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters; expected at most "
                f"{sys.get_int_max_str_digits()} digits", node.start_mark) from None


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_1_2, list("tTfF"))
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# YAML 1.2's floats with an exponent: YAML 1.1 (PyYAML) needs a dot and a signed exponent, so
# ``sesoi: 1e-2`` and ``lr: 1.5e3`` arrived as strings, refused by a strict plan as "not a
# valid number" and accepted by a lax model (review 2026-12-05, helper-44).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


def parse_yaml(text: str, path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse YAML ``text`` that is (or will be) the file ``path``; returns ``(data, root_node)``.

    YAML 1.2 booleans (``off`` is a string) and floats (``1e-2`` is a number); no key twice in
    a mapping; aliases are allowed while the tree they expand to has at most
    ``MAX_EXPANDED_NODES`` nodes.

    Raises:
        InputError: invalid YAML, a duplicate key, nested too deeply or expanding too far,
            located at ``path`` and the line of the problem.
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expansion(root, path)
        _check_duplicate_keys(root, path)
        return loader.construct_document(root), root
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise InputError(f"invalid YAML: {err.problem or err}", path=path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise InputError(f"invalid YAML: {err}", path=path) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", path=path) from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, path: str | Path) -> None:
    """Refuse a tree whose aliases expand to more than ``MAX_EXPANDED_NODES`` nodes (counted
    once per distinct node, children first, without expanding anything)."""
    size: dict[int, int] = {}
    order, stack, seen = [], [root], set()
    while stack:  # every distinct node, parents before children
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        size[id(node)] = 1 + sum(size.get(id(child), 1) for child in _children(node))
        if size[id(node)] > MAX_EXPANDED_NODES:
            raise InputError(f"invalid YAML: its aliases expand to more than "
                             f"{MAX_EXPANDED_NODES} nodes", path=path,
                             line=node.start_mark.line + 1)


def _check_duplicate_keys(root: yaml.Node, path: str | Path) -> None:
    """Refuse a mapping that names one key twice (PyYAML keeps the last silently), in every file
    read here: plans, ladders, sweep registries and templates, gate exclusions."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    seen_nodes: set[int] = set()
    while stack:
        node, where = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                field = f"{where}.{key}" if where else str(key)
                if key in keys and key != "<<":
                    raise InputError(f"duplicate key {key!r}", path=path,
                                     line=key_node.start_mark.line + 1, field=field)
                keys.add(key)
                stack.append((value_node, field))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node.value))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
