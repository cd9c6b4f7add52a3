"""Training and prediction through ``deepspeed.initialize`` (contract in docs/architecture.md).

Public API: `train`, `predict`, `EngineConfig`, `TrainHooks`, `soft_cross_entropy`,
`launch_module`. Importing this package does not import DeepSpeed; the first `train` does.
"""
from __future__ import annotations

from transfer.engine.config import DS_CONFIG_DIR, EngineConfig, build_ds_config, load_ds_file
from transfer.engine.core import predict, train
from transfer.engine.hooks import TrainHooks, soft_cross_entropy
from transfer.engine.launch import launch_module, launcher_command

__all__ = ["DS_CONFIG_DIR", "EngineConfig", "TrainHooks", "build_ds_config", "launch_module",
           "launcher_command", "load_ds_file", "predict", "soft_cross_entropy", "train"]
