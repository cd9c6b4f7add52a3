"""What this machine offers the engine: CUDA devices, CPU cores, bf16 support.

Read by the checks before compute (``flows.preflight``) and by the device slots
(``flows.slots``). torch is imported only on a machine with an NVIDIA driver, so a CPU-only
orchestrator does not pay for it.
"""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def has_nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")


def cuda_devices() -> int:
    """CUDA devices visible to this process (``CUDA_VISIBLE_DEVICES`` applies); 0 without one."""
    if not has_nvidia_driver():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def visible_device_ids() -> list[str]:
    """The physical ids behind visible devices 0..n-1: ``CUDA_VISIBLE_DEVICES``' entries when it
    is set, else ``0..n-1``."""
    count = cuda_devices()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip() not in ("", "-1"):
        return [part.strip() for part in listed.split(",") if part.strip()][:count]
    return [str(i) for i in range(count)]


def precision_problem(precision: str) -> str | None:
    """Why the engine cannot train in ``precision`` on this machine, or None.

    Runs train on a CUDA device when there is one, else on the CPU
    (``transfer.engine.dist.current_device``). bf16 needs a GPU with bfloat16 support (compute
    capability 8.0 or later). On the CPU, DeepSpeed's CPU accelerator runs bf16 on any CPU:
    natively with AVX512-BF16/AMX, else emulated by torch (slower, same results).
    """
    if precision == "fp32":
        return None
    if cuda_devices():
        import torch

        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return (f"bf16 needs a GPU with bfloat16 support; {torch.cuda.get_device_name(0)} "
                    "has none; use precision: fp32")
    return None
