"""Learning-rate multipliers: linear warm-up, then cosine, constant or linear decay."""
from __future__ import annotations

import math
from collections.abc import Callable


def lr_multiplier(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The factor on the peak learning rate at each optimizer step (for ``LambdaLR``).

    Warm-up: ``(step + 1) / (warmup_steps + 1)`` for ``step < warmup_steps`` (never 0, so the
    first step learns). After it, with ``t = (step - warmup) / (total - warmup)`` in ``[0, 1)``:
    cosine ``0.5 * (1 + cos(pi * t))`` (Loshchilov & Hutter 2017, SGDR, without restarts),
    linear ``1 - t``, constant ``1``.

    Args:
        schedule: ``cosine``, ``constant`` or ``linear``.
        total_steps: optimizer steps in the whole run (>= 1).
        warmup_steps: steps of linear warm-up (< total_steps).
    """
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        t = min(1.0, (step - warmup_steps) / decay_steps)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if schedule == "linear":
            return 1.0 - t
        if schedule == "constant":
            return 1.0
        raise ValueError(f"unknown schedule {schedule!r}")

    return factor
