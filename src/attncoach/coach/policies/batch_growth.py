"""Batch growth: a larger batch when the gradient noise says the batch is too small.

McCandlish et al. 2018: the gradient noise scale ``B_simple = tr(Sigma) / |G|^2``
predicts the critical batch size; below it, a larger batch makes each step more useful
at almost no loss of sample efficiency. Smith et al. 2018 ("Don't decay the learning
rate, increase the batch size"): growing the batch during training does what decaying
the LR does. The policy multiplies the gradient accumulation (micro-batches per optimizer
step) by ``factor`` when the noise scale exceeds ``threshold`` x the current batch, at
most every ``cooldown`` steps, up to ``max_accumulation``. The schedule and every budget
count examples, so a grown batch changes the number of optimizer steps, not the data seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_positive, register_policy
from attncoach.errors import AttncoachError


@register_policy("batch_growth")
@dataclass
class BatchGrowth(Policy):
    """Multiply the accumulation when the noise scale is above the batch size.

    Args:
        factor: accumulation multiplier per growth (an integer >= 2).
        max_accumulation: the largest accumulation allowed.
        threshold: grow when ``noise_scale > threshold * batch``.
        cooldown: optimizer steps between two growths (the noise EMA needs time to settle).
    """

    needs: ClassVar[frozenset[str]] = frozenset({"gradient_noise"})

    factor: int = 2
    max_accumulation: int = 8
    threshold: float = 1.0
    cooldown: int = 200

    def __post_init__(self) -> None:
        check_positive(
            self.name, threshold=self.threshold, cooldown=self.cooldown, max_accumulation=self.max_accumulation
        )
        if not isinstance(self.factor, int) or self.factor < 2:
            raise AttncoachError(f"coach policy {self.name}: factor must be an integer >= 2, got {self.factor!r}")
        self._last_growth = 0

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        noise, batch = signals.noise_scale, signals.batch_size
        if signals.evaluated or noise is None or batch is None:
            return []
        if signals.step - self._last_growth < self.cooldown or knobs.accumulation * self.factor > self.max_accumulation:
            return []
        if noise <= self.threshold * batch:
            return []
        self._last_growth = signals.step
        old = knobs.accumulation
        knobs.accumulation = old * self.factor
        return [
            Decision(
                signals.step,
                self.name,
                "accumulation",
                old,
                knobs.accumulation,
                f"gradient noise scale {noise:.0f} is above the batch of {batch}: "
                f"batch x{self.factor} (to {batch * self.factor} examples per step)",
                signals.values("noise_scale", "batch_size", "loss_ema"),
            )
        ]
