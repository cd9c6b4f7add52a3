"""Engine settings (`EngineConfig`) and the DeepSpeed config built from them.

ZeRO stage and optimizer type come from a JSON file shipped in ``transfer/engine/ds_configs/``
(package data, so an installed package finds them too) or a user path;
everything that depends on the run (batch sizes, learning rate, schedule, clipping, precision)
comes from `EngineConfig` and is written over the file's values, so one file serves every arm.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from w2s_common.errors import TOO_LONG_NUMBER, InputError

# Package data beside this module: found the same way in a checkout and in an installed wheel.
DS_CONFIG_DIR = Path(__file__).resolve().with_name("ds_configs")

# Keys the engine owns; a config file that sets them would be silently overridden, so it is an
# error instead (the user meant something the file cannot express).
_ENGINE_OWNED_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu",
                      "gradient_accumulation_steps", "gradient_clipping", "bf16", "fp16",
                      "scheduler")


class EngineConfig(BaseModel):
    """Hyperparameters of one training run through the engine.

    Attributes:
        epochs: passes over the (non-zero-weight) training rows.
        lr: peak learning rate.
        batch_size: global batch size (summed over data-parallel processes).
        weight_decay: decoupled weight decay of AdamW.
        warmup_ratio: fraction of the total steps with a linear warm-up from 0 to ``lr``.
        schedule: learning-rate shape after warm-up: ``cosine`` (to 0), ``constant`` or
            ``linear`` (to 0).
        grad_clip: maximum global gradient norm; 0 disables clipping.
        precision: ``fp32`` or ``bf16`` (DeepSpeed's bf16 mode: bf16 weights, fp32 master copy).
        ds_config: a name in ``transfer/engine/ds_configs/`` (``zero0``, ``zero2``, ``zero3``,
            ``zero3_offload``) or a path to a DeepSpeed JSON file.
        seed: seeds initialisation-free randomness of the engine (shuffling, dropout).
        predict_batch_size: rows per forward pass in `predict` (per process).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    grad_clip: float = Field(1.0, ge=0)
    precision: Literal["fp32", "bf16"] = "fp32"
    ds_config: str = "zero0"
    seed: int = Field(0, ge=0)
    predict_batch_size: int = Field(256, ge=1)


def resolve_ds_config_path(name_or_path: str) -> Path:
    """Map a config name (``zero2``) or a path to an existing JSON file.

    Raises:
        InputError: neither a known name nor an existing file.
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.is_file():
        if not candidate.is_file():
            raise InputError("DeepSpeed config file not found", path=candidate, field="ds_config")
        return candidate
    named = DS_CONFIG_DIR / f"{name_or_path}.json"
    if named.is_file():
        return named
    known = sorted(p.stem for p in DS_CONFIG_DIR.glob("*.json"))
    raise InputError(f"unknown DeepSpeed config {name_or_path!r}; expected one of {known} "
                     "or a path to a .json file", field="ds_config")


def load_ds_file(name_or_path: str) -> dict[str, Any]:
    """Read and check a DeepSpeed JSON config file.

    Returns:
        the parsed dict.

    Raises:
        InputError: unreadable or malformed JSON, not an object, a bad ``zero_optimization`` or
            ``optimizer`` section, or a key the engine sets itself (batch sizes, clipping,
            precision, scheduler).
    """
    path = resolve_ds_config_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", path=path) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"malformed JSON: {err.msg} (column {err.colno})", path=path,
                         line=err.lineno) from None
    except ValueError:  # an integer past Python's conversion limit
        raise InputError(TOO_LONG_NUMBER, path=path) from None
    except RecursionError:
        raise InputError("JSON nested too deeply (expected a DeepSpeed config object)",
                         path=path) from None
    if not isinstance(raw, dict):
        raise InputError("expected a JSON object at the top level", path=path)
    for key in _ENGINE_OWNED_KEYS:
        if key in raw:
            raise InputError("set by the engine from EngineConfig; remove it from the file",
                             path=path, field=key)
    zero = raw.get("zero_optimization", {"stage": 0})
    if not isinstance(zero, dict) or zero.get("stage", 0) not in (0, 1, 2, 3):
        raise InputError("expected an object with 'stage' in 0, 1, 2, 3", path=path,
                         field="zero_optimization")
    optimizer = raw.get("optimizer")
    if optimizer is not None and (not isinstance(optimizer, dict)
                                  or not isinstance(optimizer.get("type"), str)
                                  or not isinstance(optimizer.get("params", {}), dict)):
        raise InputError("expected an object with a string 'type' and an object 'params'",
                         path=path, field="optimizer")
    return raw


def zero_stage(ds_config: dict[str, Any]) -> int:
    """The ZeRO stage of a DeepSpeed config dict (0 when absent)."""
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))


def build_ds_config(config: EngineConfig, world_size: int) -> dict[str, Any]:
    """The full DeepSpeed config for one run: the file's sections plus the engine's settings.

    The global batch is split evenly over ``world_size`` processes (the micro batch is rounded
    up; the engine feeds its own batches, DeepSpeed's batch sizes are only checked for
    consistency). ``lr`` and ``weight_decay`` go into the optimizer's params.

    Returns:
        a dict ready for ``deepspeed.initialize(config=...)``.
    """
    ds = json.loads(json.dumps(load_ds_file(config.ds_config)))  # deep copy
    micro = math.ceil(config.batch_size / world_size)
    ds["train_micro_batch_size_per_gpu"] = micro
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = micro * world_size
    ds["gradient_clipping"] = float(config.grad_clip)
    ds["bf16"] = {"enabled": config.precision == "bf16"}
    ds.setdefault("steps_per_print", 10**9)
    ds.setdefault("wall_clock_breakdown", False)
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {"torch_adam": True}})
    params = optimizer.setdefault("params", {})
    params["lr"] = float(config.lr)
    params["weight_decay"] = float(config.weight_decay)
    return ds
