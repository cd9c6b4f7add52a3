"""Every label route at once, as a plugin: what a method running in the plugin jail (with the
sealed data and the trainer in hand, and ``/w2s/code`` beside it) can find.

Runs, in order: the objects it was handed and everything the garbage collector reaches from
them (the route of an in-process method), then ``disk_hunter``, ``code_copies``,
``network_thief`` and ``proc_thief``. Params: ``roots`` (directories worth a look), ``urls``
(addresses, ``@name`` for abstract sockets), ``pid`` (a process to read; None: all it sees).
"""
from __future__ import annotations

import gc
import inspect

import numpy as np
from pydantic import Field

from attacks import _ext, code_copies, disk_hunter, network_thief, proc_thief
from methods.base import MethodBase, MethodParams


class OmnivoreParams(MethodParams):
    roots: list[str] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)
    pid: int | None = None


def objects_route(data, trainer, wanted: set[str]) -> dict[str, int]:
    """Labels of any task-like object the gc reaches (``splits`` of examples with labels)."""
    found: dict[str, int] = {}
    for obj in gc.get_objects():
        try:
            splits = inspect.getattr_static(obj, "splits", None)
            if not isinstance(splits, dict):
                continue
            for split in splits.values():
                for example in getattr(split, "examples", ()):
                    if example.id in wanted:
                        found[example.id] = int(example.label)
        except Exception:  # noqa: BLE001 - a hostile object: try the next
            continue
    return found


class Omnivore(MethodBase):
    name = "attack_omnivore"
    description = "Attack: every label route at once (objects, disk, code, network, processes)"
    Params = OmnivoreParams

    def run(self, data, trainer, params):
        wanted = set(data.test_ids)
        found: dict[str, int] = {}
        routes = (lambda: objects_route(data, trainer, wanted),
                  lambda: disk_hunter.find(list(params.roots), wanted),
                  lambda: code_copies.find(list(params.roots), list(data.test_texts),
                                           list(data.test_ids)),
                  lambda: network_thief.find(list(params.urls), wanted)[0],
                  lambda: proc_thief.find(wanted, params.pid))
        for route in routes:
            if len(found) == len(wanted):
                break
            try:
                for key, value in route().items():
                    found.setdefault(key, value)
            except Exception:  # noqa: BLE001 - a closed route: try the next
                continue
        return np.array(_ext.predictions(data.test_ids, found))
