"""Noise-robust training: the curriculum's switches for training on labels that are partly wrong.

- ``curriculum.suspects`` (:class:`SuspectFilter`): after a warm-up of ``after_epochs`` epochs,
  the ``fraction`` of training examples the learning record finds most suspect (by ``score``,
  :mod:`attncoach.curriculum.mislabel`; by default the highest mean loss so far) get
  weight 0 (``action: drop``) or ``weight`` (``downweight``) in the loss; the choice is made
  again every epoch from the record, which keeps scoring every example, suspects included (they
  still go forward), so an example wrongly suspected can come back.
- ``curriculum.small_loss`` (:class:`SmallLossSchedule`): each batch's loss averages only its
  ``1 - forget_rate`` fraction of smallest-loss examples, ``forget_rate`` growing linearly from 0
  over the first ``ramp_epochs`` epochs: the selection of Co-teaching (Han et al. 2018) with one
  network, which picks its own small-loss examples instead of its peer's (Co-teaching's second
  network guards against the first one's selection errors; here the warm-up ramp does).

Example:
    >>> schedule = SmallLossSchedule(forget_rate=0.2, ramp_steps=100)
    >>> schedule.keep(0), schedule.keep(50), schedule.keep(500)
    (1.0, 0.9, 0.8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attncoach.curriculum.mislabel import RecordColumns, suspect_order


class SmallLossSchedule:
    """The fraction of each batch kept, smallest losses first, at a step (a pure function of the step).

    Args:
        forget_rate: the fraction left out once the ramp is over.
        ramp_steps: steps over which the fraction left out grows from 0 (0: from the first step).
    """

    def __init__(self, forget_rate: float, ramp_steps: int) -> None:
        self.forget_rate, self.ramp_steps = forget_rate, ramp_steps

    def keep(self, step: int) -> float:
        ramp = 1.0 if self.ramp_steps <= 0 else min(1.0, step / self.ramp_steps)
        return 1.0 - self.forget_rate * ramp


class SuspectFilter:
    """Which training examples are suspects now, and their weight in the loss.

    Args:
        size: training examples.
        fraction: the share of them that are suspects.
        weight: a suspect's weight in the loss (0: dropped).
        score: the suspicion score that ranks them (:data:`~attncoach.curriculum.mislabel.SUSPICION_SCORES`).
        start_step: the first step with suspects (the warm-up's end).
        every: steps between two choices (an epoch).

    Example:
        >>> from attncoach.curriculum.record import LearningRecord
        >>> record = LearningRecord(4)
        >>> record.update(np.arange(4), np.ones(4), np.zeros(4), np.full(4, 0.5), np.zeros(4),
        ...               margins=np.array([2.0, -1.0, 0.5, 1.0]))
        >>> chooser = SuspectFilter(4, fraction=0.25, weight=0.0, score="aum", start_step=10, every=10)
        >>> chooser.due(9), chooser.due(10)
        (False, True)
        >>> chooser.choose(10, record); chooser.weights(np.array([0, 1, 2])).tolist()
        [1.0, 0.0, 1.0]
    """

    def __init__(self, size: int, fraction: float, weight: float, score: str, start_step: int, every: int) -> None:
        self.size, self.fraction, self.weight, self.score = size, fraction, weight, score
        self.start_step, self.every = start_step, max(1, every)
        self.suspects = np.zeros(size, dtype=bool)
        self.chosen_at: int | None = None  # the step of the last choice; None before the warm-up ends

    def due(self, step: int) -> bool:
        """Whether the suspects are (re)chosen before ``step``."""
        if step < self.start_step:
            return False
        return self.chosen_at is None or step - self.chosen_at >= self.every

    def choose(self, step: int, record: Any) -> None:
        """The ``fraction`` most suspect of the learning record, as it stands."""
        count = int(round(self.fraction * self.size))
        chosen = suspect_order(RecordColumns.of_record(record), self.score)[:count]
        self.suspects[:] = False
        self.suspects[chosen] = True
        self.chosen_at = step

    def weights(self, index: np.ndarray) -> np.ndarray | None:
        """The weight of the examples ``index`` in the loss (None before the first choice)."""
        if self.chosen_at is None:
            return None
        return np.where(self.suspects[np.asarray(index, dtype=np.int64)], self.weight, 1.0)

    @property
    def count(self) -> int:
        return int(self.suspects.sum())

    def state_dict(self) -> dict[str, Any]:
        return {"suspects": np.flatnonzero(self.suspects).tolist(), "chosen_at": self.chosen_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.suspects[:] = False
        self.suspects[np.asarray(state["suspects"], dtype=np.int64)] = True
        self.chosen_at = state["chosen_at"]


def suspect_filter(cfg: Any, size: int, steps_per_epoch: int) -> SuspectFilter:
    """The :class:`SuspectFilter` of the ``curriculum.suspects`` section ``cfg``."""
    return SuspectFilter(
        size,
        cfg.fraction,
        0.0 if cfg.action == "drop" else cfg.weight,
        cfg.score,
        math.ceil(cfg.after_epochs * steps_per_epoch),
        steps_per_epoch,
    )


def small_loss_schedule(cfg: Any, steps_per_epoch: int) -> SmallLossSchedule:
    """The :class:`SmallLossSchedule` of the ``curriculum.small_loss`` section ``cfg``."""
    return SmallLossSchedule(cfg.forget_rate, math.ceil(cfg.ramp_epochs * steps_per_epoch))
