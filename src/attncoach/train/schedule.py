"""Learning-rate schedules: warmup, then a decay, as a factor of the base LR per step."""

from __future__ import annotations

import math
from collections.abc import Callable

# name -> f(progress in [0, 1] after warmup) -> factor in [0, 1]
DECAYS: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "constant": lambda p: 1.0,
}


def lr_factor(step: int, total_steps: int, warmup_steps: int, decay: str) -> float:
    """The LR multiplier for optimizer step ``step`` (0-based).

    Linear warmup from ``1/(warmup+1)`` to 1 over ``warmup_steps``, then ``decay``
    down to 0 at ``total_steps``.

    Example:
        >>> [round(lr_factor(s, 10, 2, "linear"), 2) for s in (0, 1, 2, 6, 10)]
        [0.33, 0.67, 1.0, 0.5, 0.0]
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(1, total_steps - warmup_steps)
    return DECAYS[decay](min(1.0, (step - warmup_steps) / span))
