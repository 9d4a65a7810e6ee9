"""Hypergradient LR: learn the learning rate from the gradients themselves.

Baydin et al. 2018 ("Online learning rate adaptation with hypergradient descent"): the
derivative of the loss with respect to the LR is ``-g_t . d_{t-1}``, the dot product of the
current gradient with the previous update direction. Adam-HD uses Adam's update as that
direction, which is what we measure (the weights' actual change). We use the
multiplicative, normalised form ``scale *= 1 + beta * cos(g_t, -update_{t-1})``: the step
is bounded by ``beta`` whatever the gradient's size, and this policy's own accumulated
change is clipped to ``[min_scale, max_scale]`` (of the LR it found when it started, so
after an LR probe it adjusts the probe's choice), so the LR can neither go negative nor
run away (the failure users of the additive form report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_bounds, check_positive, register_policy


@register_policy("hypergradient_lr")
@dataclass
class HypergradientLR(Policy):
    """Scale the LR up while successive steps agree, down while they undo each other.

    Args:
        beta: relative LR change per measurement at full agreement (cosine 1).
        every: measure the hypergradient every this many optimizer steps (it needs a
            copy of the weights around one step: measuring every step costs ~10 % of a
            small model's step time, every 8th about an eighth of that). With ``beta``
            per measurement, the LR's expected drift per step is ``beta / every``.
        min_scale: lower bound of this policy's own change of the LR (a factor).
        max_scale: upper bound.
        log_change: log a decision when the scale has moved this much (relative) since
            the last logged one; the knob itself moves every step.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"updates"})

    def update_interval(self) -> int | None:
        return self.every

    beta: float = 0.016
    every: int = 8
    min_scale: float = 0.1
    max_scale: float = 10.0
    log_change: float = 0.25

    def __post_init__(self) -> None:
        check_positive(
            self.name, beta=self.beta, every=self.every, min_scale=self.min_scale, log_change=self.log_change
        )
        check_bounds(self.name, "min_scale", self.min_scale, "max_scale", self.max_scale)
        self._moved = 1.0  # this policy's own change of the scale since its last logged decision
        self._own = 1.0  # its own change of the scale since the start, within [min_scale, max_scale]

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        cos = signals.hypergradient
        if signals.evaluated or cos is None:
            return []
        old = knobs.lr_scale
        own = min(self.max_scale, max(self.min_scale, self._own * (1.0 + self.beta * cos)))
        new = old * own / self._own
        knobs.lr_scale = new  # every step; logged only once it has moved notably (other policies' moves excluded)
        self._moved *= own / self._own
        at_bound = own != self._own and own in (self.min_scale, self.max_scale)
        self._own = own
        if abs(self._moved - 1.0) < self.log_change and not at_bound:
            return []
        before, self._moved = new / self._moved, 1.0
        trend = "agree" if new > before else "undo each other"
        bound = " (at its bound)" if at_bound else ""
        return [
            Decision(
                signals.step,
                self.name,
                "lr_scale",
                round(before, 6),
                round(new, 6),
                f"successive updates {trend} (hypergradient cos {cos:+.3f}){bound}",
                signals.values("hypergradient", "loss_ema"),
            )
        ]
