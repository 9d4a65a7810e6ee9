"""Plateau: lower the LR (or restart it) when the val metric stalls.

The rule of ReduceLROnPlateau (PyTorch, Lightning, HF Trainer): after ``patience``
evaluations without a gain of ``min_delta``, multiply the LR by ``factor``. After
``max_decays`` decays, an optional warm restart puts the LR scale back to 1 once (SGDR,
Loshchilov & Hutter 2017); when nothing is left to try and the metric still stalls, the
policy says so with a ``stop`` decision, and the run ends with its best value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from attncoach.coach.policies.base import Decision, Knobs, Policy, check_positive, register_policy
from attncoach.errors import AttncoachError


@register_policy("plateau")
@dataclass
class Plateau(Policy):
    """Decay the LR scale after ``patience`` evaluations without improvement.

    Args:
        patience: evaluations without a gain before acting.
        factor: LR multiplier per decay, in (0, 1).
        min_delta: the gain in the val metric that counts as progress.
        max_decays: decays before the policy has nothing left (then restart or stop).
        restart: one warm restart (scale back to 1) after the decays.
    """

    owns_stopping: ClassVar[bool] = True  # it decays first and stops when it has nothing left to try

    patience: int = 2
    factor: float = 0.5
    min_delta: float = 0.001
    max_decays: int = 3
    restart: bool = False

    def __post_init__(self) -> None:
        check_positive(self.name, patience=self.patience)
        if not 0 < self.factor < 1:
            raise AttncoachError(f"coach policy {self.name}: factor must be in (0, 1), got {self.factor!r}")
        if self.max_decays < 0 or self.min_delta < 0:
            raise AttncoachError(f"coach policy {self.name}: max_decays and min_delta must be >= 0")
        self._best: float | None = None
        self._stalled = 0
        self._decays = 0
        self._restarted = False
        self._stopped = False

    def observe(self, signals, knobs: Knobs) -> list[Decision]:
        metric = signals.val_metric
        if not signals.evaluated or metric is None or self._stopped:
            return []
        if self._best is None or metric > self._best + self.min_delta:
            self._best, self._stalled = metric, 0
            return []
        self._stalled += 1
        if self._stalled < self.patience:
            return []
        self._stalled = 0
        seen = signals.values("val_metric", "best_val_metric", "val_loss")
        why = f"val metric stalled for {self.patience} evaluations (best {self._best:.4f})"
        if self._decays < self.max_decays:
            self._decays += 1
            old = knobs.lr_scale
            knobs.lr_scale = old * self.factor
            return [
                Decision(
                    signals.step,
                    self.name,
                    "lr_scale",
                    round(old, 6),
                    round(knobs.lr_scale, 6),
                    f"{why}: decay {self._decays} of {self.max_decays}",
                    seen,
                )
            ]
        if self.restart and not self._restarted:
            self._restarted = True
            old = knobs.lr_scale
            knobs.lr_scale = 1.0
            return [Decision(signals.step, self.name, "lr_scale", round(old, 6), 1.0, f"{why}: warm restart", seen)]
        self._stopped = True
        return [
            Decision(
                signals.step,
                self.name,
                "stop",
                False,
                True,
                f"{why} after {self._decays} decays{' and a restart' if self._restarted else ''}: nothing left to try",
                seen,
            )
        ]
