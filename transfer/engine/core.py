"""`train` and `predict`: soft-target classification through ``deepspeed.initialize``.

Data parallelism is done by the engine itself rather than a DataLoader: every process draws
the same permutation from the seed, cuts the same global batches, and takes its contiguous share
of each; the loss is rescaled so that DeepSpeed's gradient averaging over processes yields the
gradient of the global batch mean. One process and N processes therefore train on the same
batches in the same order.
"""
from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from transfer.engine.config import EngineConfig, build_ds_config, load_ds_file, zero_stage
from transfer.engine.dist import (
    current_device,
    ensure_process_group,
    gather_rows,
    import_deepspeed,
)
from transfer.engine.hooks import TrainHooks
from transfer.engine.schedule import lr_multiplier
from w2s_common.errors import InputError


def _row_count(inputs: Mapping[str, Tensor]) -> int:
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    counts = {name: int(t.shape[0]) for name, t in inputs.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"inputs must have equal lengths, got {counts}")
    return next(iter(counts.values()))


def _check_targets(targets: Tensor, weights: Tensor, n_rows: int, where: str) -> None:
    if targets.ndim != 2 or targets.shape != (n_rows, 2):
        raise ValueError(f"{where}: targets must have shape ({n_rows}, 2), got "
                         f"{tuple(targets.shape)}")
    if weights.shape != (n_rows,):
        raise ValueError(f"{where}: weights must have shape ({n_rows},), got "
                         f"{tuple(weights.shape)}")
    if not torch.isfinite(targets).all() or not torch.isfinite(weights).all():
        raise ValueError(f"{where}: targets and weights must be finite")
    if (weights < 0).any():
        raise ValueError(f"{where}: weights must be non-negative")


def _logits_of(output: object) -> Tensor:
    # Hugging Face models return an output object; plain modules return the logits tensor.
    logits = getattr(output, "logits", output)
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[1] != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"model(**batch) must return logits of shape (B, 2), got {shape}")
    return logits


def _param_dtype(model: nn.Module) -> torch.dtype:
    for param in model.parameters():
        return param.dtype
    return torch.float32


def _batch(inputs: Mapping[str, Tensor], index: Tensor, device: torch.device,
           float_dtype: torch.dtype) -> dict[str, Tensor]:
    batch = {}
    for name, tensor in inputs.items():
        rows = tensor[index]
        if rows.is_floating_point() and rows.dtype != float_dtype:
            rows = rows.to(float_dtype)  # features follow the model's precision (bf16 runs)
        batch[name] = rows.to(device, non_blocking=True)
    return batch


def _own_attributes(model: nn.Module) -> dict[int, set[str]]:
    return {id(p): set(vars(p)) for p in model.parameters()}


def _unpartition(model: nn.Module, before: dict[int, set[str]]) -> None:
    """Give ZeRO-3-partitioned parameters their full tensors back and strip DeepSpeed's
    per-parameter attributes, so the module is a plain module again (for `predict` and for a
    later `train` of the same module)."""
    deepspeed = import_deepspeed()

    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        full = [p.data.detach().clone() for p in params]
    for param, data in zip(params, full):
        param.data = data
        for attr in set(vars(param)) - before.get(id(param), set()):
            delattr(param, attr)


@dataclass
class EngineSession:
    """A live DeepSpeed engine and how its steps clip gradients.

    Attributes:
        engine: the ``deepspeed.DeepSpeedEngine``.
        local_clip: ``(parameters, max_norm)`` when `train_step` clips (one process, ZeRO-0,
            fp32), else None (DeepSpeed clips from its ``gradient_clipping``).
    """

    engine: Any
    local_clip: tuple[list[nn.Parameter], float] | None = None


# Parameters above which an engine's memory is worth a full garbage collection on release.
_COLLECT_ABOVE_PARAMS = 10_000_000


@contextlib.contextmanager
def engine_session(model: nn.Module, config: EngineConfig,
                   total_steps: int) -> Iterator[EngineSession]:
    """A DeepSpeed engine around ``model`` for ``total_steps`` optimizer steps; freed on exit.

    Only parameters with ``requires_grad`` go to the optimizer. The learning-rate schedule
    (`lr_multiplier`) is stepped by the engine. On exit a ZeRO-3 model gets its full parameters
    back and loses DeepSpeed's per-parameter attributes, so it is a plain module again.

    In one process with ZeRO-0 in fp32, DeepSpeed's gradient all-reduce and its clipping (which
    all-reduces the norm) are collectives over a single rank: no-ops that cost more than a
    linear probe's whole step on gloo. There the all-reduce is switched off and the same
    clipping (``g *= max_norm / (norm + 1e-6)`` when below 1) is done by
    ``torch.nn.utils.clip_grad_norm_`` instead.

    Args:
        model: the module to train (moved to this process's device).
        config: the run's `EngineConfig`.
        total_steps: optimizer steps planned (sets the schedule's length).

    Yields:
        an `EngineSession` for `train_step`.
    """
    deepspeed = import_deepspeed()

    _, world = ensure_process_group()
    ds_config = build_ds_config(config, world)
    warmup_steps = min(total_steps - 1, round(config.warmup_ratio * total_steps))
    multiplier = lr_multiplier(config.schedule, total_steps, warmup_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    single_plain = world == 1 and zero_stage(ds_config) == 0 and config.precision == "fp32"
    local_clip = None
    if single_plain and config.grad_clip > 0:
        ds_config["gradient_clipping"] = 0.0
        local_clip = (trainable, float(config.grad_clip))
    attributes_before = _own_attributes(model)
    model.to(current_device())
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=trainable, config=ds_config, dist_init_required=False,
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier))
    if single_plain:
        engine.enable_backward_allreduce = False
    try:
        engine.train()
        yield EngineSession(engine, local_clip)
        if zero_stage(ds_config) == 3:
            _unpartition(engine.module, attributes_before)
    finally:
        engine.destroy()
        del engine
        # A full collection takes ~0.25 s with transformers loaded: only worth it for big models.
        if sum(p.numel() for p in trainable) > _COLLECT_ABOVE_PARAMS:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def train_step(session: EngineSession, batch: Mapping[str, Tensor], targets: Tensor,
               weights: Tensor, *, hooks: TrainHooks, progress: float,
               scale: float = 1.0) -> Tensor:
    """One optimizer step: forward, ``hooks.loss`` times ``scale``, backward, clip, step.

    Returns:
        the unscaled loss (detached).
    """
    engine = session.engine
    logits = _logits_of(engine(**batch))
    loss = hooks.loss(logits, targets, weights, progress)
    engine.backward(loss * scale if scale != 1.0 else loss)
    if session.local_clip is not None:
        torch.nn.utils.clip_grad_norm_(session.local_clip[0], session.local_clip[1])
    engine.step()
    return loss.detach()


def train(model: nn.Module, inputs: Mapping[str, Tensor], targets: Tensor, *,
          weights: Tensor | None = None, hooks: TrainHooks | None = None,
          config: EngineConfig) -> nn.Module:
    """Train ``model`` on soft targets with DeepSpeed; return the same module, trained.

    Args:
        model: ``model(**batch)`` returns logits ``(B, 2)`` (or an object with ``.logits``).
            Parameters with ``requires_grad=False`` stay frozen and are not optimised.
        inputs: equal-length tensors (on the CPU), indexed by row and passed as keywords.
        targets: ``(N, 2)`` probabilities.
        weights: ``(N,)`` non-negative row weights; all ones when None.
        hooks: `TrainHooks` whose ``prepare`` runs once (rows of weight 0 are then dropped)
            and whose ``loss`` runs every step; the default is the weighted soft cross-entropy.
        config: `EngineConfig` (epochs, lr, global batch size, schedule, DeepSpeed config).

    Returns:
        ``model`` with trained weights (bf16 weights when ``config.precision == "bf16"``), on
        this process's device, in eval mode, usable as a plain module.

    Raises:
        InputError: a bad DeepSpeed config file, or no row with a non-zero weight.
        ValueError: tensors of inconsistent shapes (a caller bug).
    """
    hooks = hooks if hooks is not None else TrainHooks()
    n_rows = _row_count(inputs)
    targets = targets.detach().float().cpu().clone()
    weights = (torch.ones(n_rows) if weights is None
               else weights.detach().float().cpu().clone())
    _check_targets(targets, weights, n_rows, "train")
    targets, weights = hooks.prepare(targets, weights)
    targets, weights = targets.detach().float().cpu(), weights.detach().float().cpu()
    _check_targets(targets, weights, n_rows, "TrainHooks.prepare")
    kept = torch.nonzero(weights != 0).flatten()
    if kept.numel() == 0:
        raise InputError("no training row has a non-zero weight", field="weights")

    load_ds_file(config.ds_config)  # a bad file fails here, before any DeepSpeed set-up
    rank, world = ensure_process_group()
    device = current_device()
    batch_size = config.batch_size
    steps_per_epoch = math.ceil(kept.numel() / batch_size)
    total_steps = config.epochs * steps_per_epoch

    torch.manual_seed(config.seed)  # dropout masks and any hook randomness
    with engine_session(model, config, total_steps) as session:
        float_dtype = _param_dtype(session.engine.module)
        shuffler = torch.Generator().manual_seed(config.seed)
        step = 0
        for _ in range(config.epochs):
            order = kept[torch.randperm(kept.numel(), generator=shuffler)]
            for start in range(0, order.numel(), batch_size):
                global_rows = order[start:start + batch_size]
                local_rows = torch.tensor_split(global_rows, world)[rank]
                # Mean-over-rows losses: scale so the average over processes is the global mean.
                scale = local_rows.numel() * world / global_rows.numel()
                if local_rows.numel() == 0:  # a short last batch; still join the collectives
                    local_rows, scale = global_rows[:1], 0.0
                train_step(session, _batch(inputs, local_rows, device, float_dtype),
                           targets[local_rows].to(device), weights[local_rows].to(device),
                           hooks=hooks, progress=step / total_steps, scale=scale)
                step += 1
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, inputs: Mapping[str, Tensor], *, config: EngineConfig) -> np.ndarray:
    """P(label 1) for every row: softmax of the model's ``(B, 2)`` logits, column 1.

    Under several processes each predicts a contiguous share of the rows and the results are
    gathered back in the original row order on every process.

    Args:
        model: as for `train` (a plain module, e.g. the one `train` returned).
        inputs: equal-length tensors passed as keywords.
        config: uses ``predict_batch_size``.

    Returns:
        ``(N,)`` float64 array of probabilities.
    """
    n_rows = _row_count(inputs)
    rank, world = ensure_process_group()
    device = current_device()
    model.to(device)
    was_training = model.training
    model.eval()
    float_dtype = _param_dtype(model)
    local_index = torch.tensor_split(torch.arange(n_rows), world)[rank]
    chunks = []
    for start in range(0, local_index.numel(), config.predict_batch_size):
        rows = local_index[start:start + config.predict_batch_size]
        logits = _logits_of(model(**_batch(inputs, rows, device, float_dtype)))
        chunks.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu())
    local = torch.cat(chunks) if chunks else torch.empty(0)
    model.train(was_training)
    return gather_rows(local, local_index, n_rows).double().numpy()
