"""Divergence guard: a non-finite or exploding loss rolls the run back instead of ending it.

When the loss or the gradient is NaN/inf, the loss jumps above ``spike_factor`` x its
EMA, or a short loss average (the last few steps) climbs above ``trend_factor`` x the long
one (a classifier that falls apart under a too-large LR drifts to the loss of guessing, a
rise that no single batch makes dramatic), or recent losses are back at the loss of
guessing (``collapse`` x the loss of the best constant prediction, when the signals carry
it) for 10 steps in a row after the average had been well below it, the step is not taken: the model and optimizer go back to the last good snapshot
(kept in memory by the coach every ``snapshot_every`` steps), the LR scale is multiplied
by ``lr_factor``, and the batch is skipped. The loss average of the restored state becomes
the reference for a probation of ``recovery`` steps: recent losses above
``probation_factor`` x that reference roll back again (a cause that persists, such as a
too-large LR, keeps the loss elevated without ever spiking against an average it has
already pulled up), and no snapshot is taken while on probation, so the run always goes
back to a state from before the divergence. Dropout and weight decay move the level of the
training loss: when either changes during a probation (or shortly before the divergence, so that
the snapshot may predate it), the restored state's average was measured under other settings and
is no reference; that probation goes on with the spike, trend and collapse checks only.
Once the run has been stable for ``recovery``
steps, the rollbacks' LR reductions are undone in full, so a passing spike does not leave
the run crawling; if the run diverges again within ``recovery`` steps of that, the LR it
came back to is itself too high, and from then on the LR comes back one notch
(``/ lr_factor``) per stable period.
After ``max_rollbacks`` rollbacks with no stable period between them (each rollback within
``recovery`` steps of the one before) the guard stops the run with a clear reason rather than
looping; a run that recovers starts counting afresh, so a long healthy run with a divergence
now and then is never stopped by the sum of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_positive, register_policy
from attncoach.errors import AttncoachError

GUESSING_STEPS = 10  # steps in a row at the loss of guessing that count as a collapse (noise is shorter)


@register_policy("divergence_guard")
@dataclass
class DivergenceGuard(Policy):
    """Roll back to the last good state on a NaN or a loss spike, with a lower LR.

    Args:
        spike_factor: a loss above this many times its EMA counts as divergence (> 1).
        lr_factor: LR scale multiplier after a rollback, in (0, 1].
        snapshot_every: optimizer steps between in-memory snapshots of the good state.
        trend_factor: a short loss EMA above this many times the long one counts as
            divergence too (> 1).
        warmup: steps before loss spikes count (the EMA needs to settle); NaN always counts.
        max_rollbacks: rollbacks in a row (no stable ``recovery`` steps between them) before
            the run is stopped.
        recovery: stable steps after which the LR reductions are undone (0 = never); also
            the length of the probation after a rollback (``snapshot_every`` when 0).
        probation_factor: on probation, recent losses above this many times the restored
            state's average roll back again (> 1).
        collapse: recent losses at or above this fraction of the loss of guessing (the
            best constant prediction, from the class frequencies) for 10 steps in a row,
            after the average had been at least 15 % below that loss, count as divergence:
            the model has forgotten what it learned. In [0, 1); 0 turns the check off. On
            probation it is checked only if the state rolled back to was below that level.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"snapshots"})

    def snapshot_interval(self) -> int | None:
        return self.snapshot_every

    spike_factor: float = 5.0
    trend_factor: float = 1.5
    lr_factor: float = 0.5
    snapshot_every: int = 50
    warmup: int = 50
    max_rollbacks: int = 20
    recovery: int = 50
    probation_factor: float = 1.25
    collapse: float = 0.95

    def __post_init__(self) -> None:
        check_positive(self.name, snapshot_every=self.snapshot_every, max_rollbacks=self.max_rollbacks)
        if not (self.spike_factor > 1 and self.trend_factor > 1 and self.probation_factor > 1):
            raise AttncoachError(
                f"coach policy {self.name}: spike_factor, trend_factor and probation_factor must be > 1"
            )
        if not 0 < self.lr_factor <= 1:
            raise AttncoachError(f"coach policy {self.name}: lr_factor must be in (0, 1], got {self.lr_factor!r}")
        if not 0 <= self.collapse < 1:
            raise AttncoachError(f"coach policy {self.name}: collapse must be in [0, 1), got {self.collapse!r}")
        if self.recovery < 0:
            raise AttncoachError(f"coach policy {self.name}: recovery must be >= 0, got {self.recovery!r}")
        self._rollbacks = 0  # since the run was last stable (the probation's end)
        self._total = 0  # over the whole run
        self._short: float | None = None  # EMA of the last few losses (weight 0.3 on the newest)
        self._owed = 1.0  # LR reductions not yet undone
        self._last_event = 0  # step of the last rollback or recovery
        self._restored_at: int | None = None  # step the LR was last given back in full
        self._gentle = False  # True once a divergence followed a full give-back: one notch at a time
        self._rolled_at: int | None = None  # step of the last rollback while on probation
        self._reference: float | None = None  # on probation: the restored state's loss average
        self._lowest: float | None = None  # the lowest loss average of healthy steps after warmup
        self._guessing = 0  # consecutive steps with recent losses at the loss of guessing
        self._level: list[float] | None = None  # dropout and weight decay when last seen
        self._level_step: int | None = None  # the step they last changed at
        self._unreferenced = False  # this probation has no reference: the loss level moved
        self._fresh = False  # the next step starts from the restored (or shifted) state

    def data_shift(self) -> None:
        """The curriculum changed the examples: loss averages from before are no reference."""
        self._short = self._lowest = None
        self._guessing = 0
        if self._rolled_at is not None:
            self._reference = None  # re-taken from the next step's average
            self._fresh = True

    @property
    def steady(self) -> bool:
        """False while on probation after a rollback (the coach takes no snapshot then)."""
        return self._rolled_at is None

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        if signals.evaluated:
            return []
        loss, ema = signals.loss, signals.loss_ema
        self._follow_level(signals.step, knobs)
        if self._fresh:  # first step after a rollback: the restored average
            self._short, self._fresh = ema, False
            self._reference = None if self._unreferenced else ema
        if loss is not None and math.isfinite(loss):
            self._short = loss if self._short is None else 0.7 * self._short + 0.3 * loss
        settled = ema is not None and signals.step > self.warmup
        reference, chance, lowest = self._reference, signals.chance_loss, self._lowest
        learned = bool(self.collapse and chance and lowest is not None and lowest < 0.85 * chance)
        at_chance = learned and self._short is not None and self._short >= self.collapse * chance
        # on probation only when the state rolled back to was below the loss of guessing itself
        # (a rollback to an untrained snapshot starts there)
        trained_reference = reference is None or (chance is not None and reference < self.collapse * chance)
        self._guessing = self._guessing + 1 if at_chance and trained_reference else 0
        if signals.nonfinite or loss is None or not math.isfinite(loss):
            why = "non-finite loss or gradient"
        elif settled and loss > self.spike_factor * ema:
            why = f"loss {loss:.3g} is above {self.spike_factor:g}x its average {ema:.3g}"
        elif settled and self._short is not None and self._short > self.trend_factor * ema:
            why = f"recent losses ({self._short:.3g}) climbed above {self.trend_factor:g}x the average {ema:.3g}"
        elif settled and reference is not None and self._short > self.probation_factor * reference:
            why = (
                f"recent losses ({self._short:.3g}) stay above {self.probation_factor:g}x the "
                f"{reference:.3g} of the state rolled back to"
            )
        elif settled and self._guessing >= GUESSING_STEPS:
            why = (
                f"recent losses ({self._short:.3g}) are back at the loss of guessing ({chance:.3g}) after "
                f"the average had reached {lowest:.3g}: the model forgot what it learned"
            )
        else:
            if settled:
                self._lowest = ema if lowest is None else min(lowest, ema)
            probation = self.recovery or self.snapshot_every
            if self._rolled_at is not None and signals.step - self._rolled_at >= probation:
                self._rolled_at = self._reference = None  # the cause has passed
                self._unreferenced = False
                self._rollbacks = 0  # a later divergence is a new one
            return self._recover(signals, knobs)
        seen = signals.values("loss", "loss_ema", "grad_norm", "nonfinite")
        self._rollbacks += 1
        self._total += 1
        self._owed /= self.lr_factor
        if self._restored_at is not None and signals.step - self._restored_at < max(1, self.recovery):
            self._gentle = True  # the LR it came back to is itself too high
        self._last_event = self._rolled_at = signals.step
        self._reference, self._fresh = None, True  # taken from the restored state at the next step
        if self._level_step is not None and signals.step - self._level_step <= 2 * self.snapshot_every:
            self._unreferenced = True  # the snapshot rolled back to may predate the change
        self._guessing = 0
        if self._rollbacks > self.max_rollbacks:
            return [
                Decision(
                    signals.step,
                    self.name,
                    "stop",
                    False,
                    True,
                    f"{why}, and {self.max_rollbacks} rollbacks in a row did not help "
                    f"({self._total} in the run): the run cannot continue",
                    seen,
                )
            ]
        old = knobs.lr_scale
        knobs.lr_scale = old * self.lr_factor
        return [
            Decision(
                signals.step,
                self.name,
                "rollback",
                signals.step,
                None,
                f"{why}: back to the last good state, batch skipped",
                seen,
            ),
            Decision(
                signals.step,
                self.name,
                "lr_scale",
                round(old, 6),
                round(knobs.lr_scale, 6),
                f"{why}: lower LR after the rollback",
                seen,
            ),
        ]

    def _follow_level(self, step: int, knobs: Knobs) -> None:
        """Note a change of dropout or weight decay; on probation it leaves the reference stale."""
        level = [knobs.dropout, knobs.weight_decay]
        if level == self._level:
            return
        if self._level is not None:
            self._level_step = step
            if self._rolled_at is not None:
                self._unreferenced, self._reference = True, None
        self._level = level

    def _recover(self, signals, knobs: Knobs) -> list[Decision]:
        if self._owed <= 1.0 + 1e-9 or not self.recovery or signals.step - self._last_event < self.recovery:
            return []
        factor = min(self._owed, 1.0 / self.lr_factor) if self._gentle else self._owed
        self._owed /= factor
        self._last_event = signals.step
        if not self._gentle:
            self._restored_at = signals.step
        old = knobs.lr_scale
        knobs.lr_scale = old * factor
        how = "LR back up one notch" if self._gentle else "the cause has passed: LR given back in full"
        return [
            Decision(
                signals.step,
                self.name,
                "lr_scale",
                round(old, 6),
                round(knobs.lr_scale, 6),
                f"stable for {self.recovery} steps since the last rollback: {how}",
                signals.values("loss", "loss_ema"),
            )
        ]
