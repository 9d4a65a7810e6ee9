"""Pacing functions: how much of the data, easiest first, a curriculum may draw from.

A pacing function maps training progress ``t`` in [0, 1] (examples seen divided by the
pacing horizon) to the *competence* ``c`` in (0, 1]: the fraction of the training set,
ordered from easiest to hardest, that batches are drawn from. Competence starts at
``start`` (c0) and reaches 1 at the horizon.

The linear and square-root shapes are those of competence-based curriculum learning
(Platanios et al., 2019, "Competence-based Curriculum Learning for Neural Machine
Translation"): c_linear(t) = min(1, t (1 - c0) + c0) and
c_sqrt(t) = min(1, sqrt(t (1 - c0^2) + c0^2)). The square root gives more time to the
first, easiest examples and quickly widens after. ``step`` widens in equal jumps (the
"baby steps" of Bengio et al., 2009).

Example:
    >>> round(PACINGS["sqrt"](0.5, start=0.1, steps=4), 4)
    0.7106
    >>> round(PACINGS["step"](0.5, start=0.2, steps=4), 4)
    0.6
"""

from __future__ import annotations

import math
from collections.abc import Callable

Pacing = Callable[..., float]
PACINGS: dict[str, Pacing] = {}


def register_pacing(name: str) -> Callable[[Pacing], Pacing]:
    """Register a pacing function ``f(t, start, steps) -> competence`` under ``name``."""

    def wrap(fn: Pacing) -> Pacing:
        PACINGS[name] = fn
        return fn

    return wrap


@register_pacing("linear")
def linear(t: float, start: float, steps: int) -> float:
    """Competence grows at a constant rate from ``start`` to 1."""
    return min(1.0, max(0.0, t) * (1.0 - start) + start)


@register_pacing("sqrt")
def sqrt(t: float, start: float, steps: int) -> float:
    """Competence grows fast at first and slower later (equal new examples per unit of squared competence)."""
    return min(1.0, math.sqrt(max(0.0, t) * (1.0 - start * start) + start * start))


@register_pacing("step")
def step(t: float, start: float, steps: int) -> float:
    """Competence jumps ``steps`` times, in equal parts, from ``start`` to 1."""
    done = min(steps, math.floor(max(0.0, t) * steps + 1e-9))
    return start + (1.0 - start) * done / steps
