"""Regularisation: more dropout and weight decay when the generalisation gap widens.

The gap is val loss - train loss (EMA). Its level depends on label smoothing and dropout,
so the policy follows its *trend* between evaluations: when it widens by more than
``widen`` the model is starting to overfit, and dropout rises by ``dropout_step`` and
weight decay by ``weight_decay_factor``; when it closes by as much, both come back down.
Both stay within their bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_bounds, check_positive, register_policy
from attncoach.errors import AttncoachError


@register_policy("regularisation")
@dataclass
class Regularisation(Policy):
    """Follow the generalisation gap with dropout and weight decay.

    Args:
        widen: the change of the gap between evaluations that triggers a move.
        dropout_step: how much dropout moves per decision.
        dropout_min, dropout_max: bounds of dropout, within [0, 1).
        weight_decay_factor: multiplier (raise) or divisor (lower) of weight decay, > 1.
        weight_decay_min, weight_decay_max: bounds of weight decay.
    """

    widen: float = 0.02
    dropout_step: float = 0.05
    dropout_min: float = 0.0
    dropout_max: float = 0.4
    weight_decay_factor: float = 2.0
    weight_decay_min: float = 1e-4
    weight_decay_max: float = 0.2

    def __post_init__(self) -> None:
        check_positive(
            self.name, widen=self.widen, dropout_step=self.dropout_step, weight_decay_min=self.weight_decay_min
        )
        check_bounds(self.name, "dropout_min", self.dropout_min, "dropout_max", self.dropout_max)
        check_bounds(self.name, "weight_decay_min", self.weight_decay_min, "weight_decay_max", self.weight_decay_max)
        if not (0 <= self.dropout_min and self.dropout_max < 1):
            raise AttncoachError(f"coach policy {self.name}: dropout bounds must be within [0, 1)")
        if not self.weight_decay_factor > 1:
            raise AttncoachError(f"coach policy {self.name}: weight_decay_factor must be > 1")
        self._last_gap: float | None = None

    def data_shift(self) -> None:
        """The curriculum changed the examples: the last gap is no reference for the next."""
        self._last_gap = None

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        gap = signals.gap
        if not signals.evaluated or gap is None:
            return []
        last, self._last_gap = self._last_gap, gap
        if last is None or abs(gap - last) <= self.widen:
            return []
        raise_it = gap > last
        verb = "widened" if raise_it else "closed"
        why = f"generalisation gap {verb} from {last:.3f} to {gap:.3f}"
        seen = signals.values("gap", "val_loss", "loss_ema")
        decisions = []
        dropout = knobs.dropout + (self.dropout_step if raise_it else -self.dropout_step)
        dropout = round(min(self.dropout_max, max(self.dropout_min, dropout)), 6)
        if dropout != knobs.dropout:
            decisions.append(Decision(signals.step, self.name, "dropout", knobs.dropout, dropout, why, seen))
            knobs.dropout = dropout
        factor = self.weight_decay_factor if raise_it else 1 / self.weight_decay_factor
        decay = min(self.weight_decay_max, max(self.weight_decay_min, knobs.weight_decay * factor))
        if decay != knobs.weight_decay:
            decisions.append(
                Decision(signals.step, self.name, "weight_decay", knobs.weight_decay, round(decay, 8), why, seen)
            )
            knobs.weight_decay = round(decay, 8)
        return decisions
