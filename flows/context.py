"""Build the objects every entry point needs (ladder, task, store, engine config) from options."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s_common.validation import validation_input_error


def engine_config(ladder, overrides: dict[str, Any] | None = None):
    """The ladder's training defaults with ``overrides`` on top, validated."""
    from pydantic import ValidationError

    from transfer.engine import EngineConfig

    settings = {**ladder.training, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        return EngineConfig(**settings)
    except ValidationError as err:
        raise validation_input_error(err) from None


def arm_context(ladder: str | Path, data: str | Path | None, store: str | Path | None,
                overrides: dict[str, Any] | None = None, data_seed: int = 0,
                pins: dict[str, str] | None = None):
    """An `ArmContext` for one (ladder, dataset): shared backends, one store (holding the
    caller's ``pins``: run hash -> the content digest a reused copy must have)."""
    from transfer.arms import ArmContext
    from transfer.ladder import load_ladder
    from transfer.store import RunStore

    ladder_obj = load_ladder(ladder)
    task = load_dataset(data, data_seed)
    return ArmContext(ladder=ladder_obj, task=task, store=RunStore(store, pins=pins),
                      engine_config=engine_config(ladder_obj, overrides))


def load_dataset(path: str | Path | None, data_seed: int = 0):
    """A task by path; ``None`` or ``"synthetic"`` is the built-in synthetic task."""
    from transfer.data import load_task

    if path is not None and str(path) == "synthetic":
        path = None
    return load_task(path, seed=data_seed)
