"""LR probe: find the learning rate from the run's own losses, then start again from the beginning.

The LR range test (Smith 2017, "Cyclical learning rates for training neural networks",
section 3.3): for ``steps`` optimizer steps the LR grows geometrically from ``low`` to
``high`` times the configured LR while the training loss is smoothed (EMA ``smoothing``,
bias-corrected). The loss first falls faster as the LR grows, then stops falling and
blows up; the probe stops early once the smoothed loss exceeds ``blowup`` x its minimum
or turns non-finite. The chosen LR is the one at the smoothed minimum divided by
``divisor`` (the minimum itself sits at the edge of instability), bounded to
``[low, high]``; the model and optimizer then roll back to the state before the probe, so
the probe's reckless steps leave nothing behind but the choice. A probe whose smoothed
loss never fell 2 % below the first loss keeps the configured LR. The configured LR only
has to be within a few decades of a good one.

While it probes, the probe is the only policy that acts (``exclusive``): a loss spike is
what it is looking for, not a divergence to roll back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_bounds, check_positive, register_policy
from attncoach.errors import AttncoachError


@register_policy("lr_probe")
@dataclass
class LRProbe(Policy):
    """An LR range test over the first optimizer steps; the run restarts with the LR it found.

    Args:
        steps: optimizer steps of the probe (they count towards the run's steps).
        low: the probe's first LR, times the configured LR.
        high: its last LR, times the configured LR.
        divisor: the chosen LR is the one at the smoothed loss minimum divided by this.
        smoothing: EMA weight of the old value in the smoothed loss, in [0, 1) (lowered
            to ``1 - 5 / steps`` for a short probe).
        blowup: the probe ends once the smoothed loss exceeds this many times its minimum.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"snapshots"})  # it rolls back to the start

    def fit_to_run(self, total_steps: int) -> str | None:
        cap = max(1, total_steps // 10)
        if self.steps <= cap:
            return None
        self.steps = cap
        return f"coach: the LR probe takes {cap} steps, a tenth of the run"

    steps: int = 100
    low: float = 1e-3
    high: float = 1e3
    divisor: float = 10.0
    smoothing: float = 0.9
    blowup: float = 4.0

    def __post_init__(self) -> None:
        check_positive(
            self.name, steps=self.steps, low=self.low, high=self.high, divisor=self.divisor, blowup=self.blowup
        )
        check_bounds(self.name, "low", self.low, "high", self.high)
        if not 0 <= self.smoothing < 1:
            raise AttncoachError(f"coach policy {self.name}: smoothing must be in [0, 1), got {self.smoothing!r}")
        self._done = False
        self._taken = 0  # probe steps taken
        self._seen = 0  # finite losses smoothed
        self._avg = 0.0  # EMA of the losses, before bias correction
        self._first: float | None = None  # the first loss, before any probe step
        self._best: tuple[float, float] | None = None  # (smoothed loss, LR multiple that led to it)
        self._last: float | None = None  # the LR multiple of the step just taken

    @property
    def _smoothing(self) -> float:
        """The EMA weight, lowered for a short probe (its memory at most a fifth of the probe)."""
        return min(self.smoothing, max(0.0, 1 - 5 / self.steps))

    @property
    def exclusive(self) -> bool:
        """True while probing: the other policies wait."""
        return not self._done

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        if self._done or signals.evaluated:
            return []
        loss = signals.loss
        finite = loss is not None and math.isfinite(loss) and not signals.nonfinite
        smoothed = None
        if finite:
            self._seen += 1
            self._first = loss if self._first is None else self._first
            self._avg = self._smoothing * self._avg + (1 - self._smoothing) * loss
            smoothed = self._avg / (1 - self._smoothing**self._seen)
            if self._last is not None and (self._best is None or smoothed < self._best[0]):
                self._best = (smoothed, self._last)
        blew_up = not finite or (self._best is not None and smoothed > self.blowup * self._best[0])
        if blew_up or self._taken >= self.steps:
            return self._finish(signals, knobs, "the loss blew up" if blew_up else "the ramp ended")
        multiple = self.low * (self.high / self.low) ** (self._taken / max(1, self.steps - 1))
        schedule = signals.lr_schedule if signals.lr_schedule else 1.0
        knobs.lr_scale = multiple / schedule  # the scheduled warmup must not bend the ramp
        self._last = multiple
        self._taken += 1
        if self._taken == 1:
            return [
                Decision(
                    signals.step,
                    self.name,
                    "lr_scale",
                    1.0,
                    round(knobs.lr_scale, 6),
                    f"LR range test: {self.steps} steps from {self.low:g}x to {self.high:g}x the "
                    f"configured LR, then back to this state",
                    signals.values("loss"),
                )
            ]
        return []

    def _finish(self, signals, knobs: Knobs, why: str) -> list[Decision]:
        self._done = True
        seen = signals.values("loss", "lr_schedule")
        old = knobs.lr_scale
        if self._best is None or self._best[0] > 0.98 * self._first:
            knobs.lr_scale = 1.0
            what = "before the loss could be read" if self._best is None else "and the loss never fell"
            reason = f"LR range test ({self._taken} steps): {why} {what}; keeping the configured LR"
        else:
            knobs.lr_scale = min(self.high, max(self.low, self._best[1] / self.divisor))
            seen["probe_min_loss"] = round(self._best[0], 6)
            reason = (
                f"LR range test ({self._taken} steps, {why}): the smoothed loss was lowest "
                f"({self._best[0]:.3g}) at {self._best[1]:.3g}x the configured LR; "
                f"training restarts at 1/{self.divisor:g} of that"
            )
        return [
            Decision(
                signals.step,
                self.name,
                "rollback",
                signals.step,
                None,
                "LR range test over: back to the state before it",
                seen,
            ),
            Decision(signals.step, self.name, "lr_scale", round(old, 6), round(knobs.lr_scale, 6), reason, seen),
        ]
