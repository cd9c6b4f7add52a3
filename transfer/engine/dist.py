"""The process group: started once per process, shared by every engine run in it.

Under the ``deepspeed`` launcher (or torchrun) the environment already names rank, world size
and master; a plain ``python`` process gets a one-process group on a free local port, so the same
code path (``deepspeed.initialize``) serves both.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import warnings

import torch

from transfer.engine.launch import default_extensions_dir, free_port

# DeepSpeed's shared-memory collective op on the CPU. Only `inference_all_reduce` (tensor-parallel
# inference) uses it; training all-reduces through torch.distributed (gloo). DeepSpeed builds it
# whenever its comm backend starts, a 60-150 s compile on a fresh machine, so it is switched off.
_SHM_COMM_OP = "deepspeed_shm_comm"


def prepare_environment() -> None:
    """Set the variables DeepSpeed needs before it is imported or initialised.

    Fills ``TORCH_EXTENSIONS_DIR`` and, for a process not started by a launcher, the
    single-process rendezvous (``RANK=0``, ``WORLD_SIZE=1``, ``MASTER_ADDR=127.0.0.1``, a free
    ``MASTER_PORT``); without them DeepSpeed falls back to MPI discovery (mpi4py).
    """
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(default_extensions_dir()))
    if "RANK" not in os.environ:
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                           "LOCAL_WORLD_SIZE": "1"})
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())


def import_deepspeed():
    """``deepspeed``, with its log on stderr. Its logger writes to the stdout it found when it
    was imported, and it warns on every CPU import ("Setting accelerator to CPU"): that went
    into the data on stdout of commands like ``audit`` (new-user review, 2026-12-06)."""
    if "deepspeed" not in sys.modules:
        with contextlib.redirect_stdout(sys.stderr):
            import deepspeed  # noqa: F401
    for handler in logging.getLogger("DeepSpeed").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)  # imported earlier by someone else
    return sys.modules["deepspeed"]


def _quiet_deepspeed() -> None:
    # DeepSpeed logs every initialize at INFO; dozens of arms per process would drown the output.
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    logging.getLogger("deepspeed").setLevel(logging.WARNING)
    # ZeRO calls torch collectives that torch 2.13 marks deprecated, once per step.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated",
                            category=FutureWarning)


def _skip_unused_ops() -> None:
    # DeepSpeed reads op compatibility from this dict (probed once, ~0.3 s; edits persist) before
    # it builds the shared-memory op; marked unavailable, it falls back to torch.distributed.
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__[_SHM_COMM_OP] = False


def ensure_process_group() -> tuple[int, int]:
    """Start the process group once (``nccl`` on CUDA, else ``gloo``); later calls reuse it.

    Returns:
        ``(rank, world_size)``.
    """
    import torch.distributed as dist

    started = dist.is_initialized()
    if not started:
        prepare_environment()
    deepspeed = import_deepspeed()

    _quiet_deepspeed()
    # Before DeepSpeed's comm backend starts: below, or in deepspeed.initialize when another
    # library started the torch process group.
    _skip_unused_ops()
    if not started:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if os.environ.get("WORLD_SIZE", "1") == "1":
            # One process needs no rendezvous: an in-memory store instead of a TCP port, which
            # another process could take between choosing it and listening on it (EADDRINUSE).
            # DeepSpeed then adopts the started group.
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        # A group left to the interpreter's exit can abort the process there ("terminate called
        # without an active exception", exit -6: gloo's threads destroyed while running; seen
        # once in a 2-process ZeRO-2 self-check after it had written its result).
        atexit.register(_destroy_process_group)
    return dist.get_rank(), dist.get_world_size()


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def current_device() -> torch.device:
    """The device this process trains on: its local GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(local: torch.Tensor, local_index: torch.Tensor, total: int) -> torch.Tensor:
    """Assemble per-process rows into one ``(total, ...)`` tensor on every process.

    Args:
        local: this process's rows (any device), shape ``(n_local, ...)``.
        local_index: the global row index of each local row, ``(n_local,)``.
        total: the number of global rows; every index in ``0..total-1`` must come from exactly
            one process.

    Returns:
        the full tensor on the CPU, rows in global index order.
    """
    import torch.distributed as dist

    if dist.get_world_size() == 1:
        out = torch.empty((total, *local.shape[1:]), dtype=local.dtype)
        out[local_index.cpu()] = local.cpu()
        return out
    # all_gather_object tolerates shards of different length (gloo and nccl alike).
    shards: list = [None] * dist.get_world_size()
    dist.all_gather_object(shards, (local.cpu(), local_index.cpu()))
    out = torch.empty((total, *local.shape[1:]), dtype=local.dtype)
    for values, index in shards:
        out[index] = values
    return out
