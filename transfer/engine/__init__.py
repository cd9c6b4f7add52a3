"""Training and prediction through ``deepspeed.initialize`` (contract in docs/architecture.md).

Public API: `train`, `predict`, `EngineConfig`, `TrainHooks`, `soft_cross_entropy`,
`launch_module`. Importing this package imports neither DeepSpeed nor torch: each name is
loaded from its module on first use (PEP 562), so a process that only starts workers
(``transfer.engine.launch``) does not pay torch's 2-3 s of import; the first `train` imports
DeepSpeed.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_MODULE_OF = {
    "DS_CONFIG_DIR": "config", "EngineConfig": "config", "build_ds_config": "config",
    "load_ds_file": "config", "predict": "core", "train": "core", "TrainHooks": "hooks",
    "soft_cross_entropy": "hooks", "launch_module": "launch", "launcher_command": "launch",
}

__all__ = ["DS_CONFIG_DIR", "EngineConfig", "TrainHooks", "build_ds_config", "launch_module",
           "launcher_command", "load_ds_file", "predict", "soft_cross_entropy", "train"]

if TYPE_CHECKING:
    from transfer.engine.config import DS_CONFIG_DIR, EngineConfig, build_ds_config, load_ds_file
    from transfer.engine.core import predict, train
    from transfer.engine.hooks import TrainHooks, soft_cross_entropy
    from transfer.engine.launch import launch_module, launcher_command


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'transfer.engine' has no attribute {name!r}")
    value = getattr(import_module(f"transfer.engine.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
