"""Curriculum schedulers: which training examples make up each round of batches.

Training runs in *rounds*. A round is a list of batches (example indices into the training
split) that the recipe trains on one after the other; for the ``uniform`` scheduler a round
is an epoch, exactly the order of :class:`~attncoach.data.batching.LengthBucketBatchSampler`.
Other schedulers make rounds of the examples they choose, so the run's budget — steps times
batch size, i.e. examples seen — is the same whatever the scheduler, and comparisons between
them are fair.

Every scheduler has the same small interface:

- ``batches(round, measure)``: the batches of a round, chosen once when the round starts
  (``measure(indices)`` gives the current model's loss on examples, for schedulers that
  need it) and the same if asked again;
- ``update(indices, losses, correct)``: what happened when a batch was trained on;
- ``state_dict()`` / ``load_state_dict()``: JSON-ready state, checkpointed with the run, so
  a resumed run continues the very same schedule.

| name | round | source |
|---|---|---|
| ``uniform`` | every example once, shuffled | the baseline |
| ``competence`` | a window drawn from the easiest c(t) of the data, c growing with a pacing function | Platanios et al. 2019 |
| ``anti`` | the same from the hardest end | anti-curriculum (e.g. Kocmi & Bojar 2017) |
| ``self_paced`` | the examples whose current loss is below a threshold that rises to include all | Kumar et al. 2010 |
| ``leitner`` | the examples whose Leitner box is due: box i every 2^i rounds; right → up a box, wrong → box 0 | Leitner; Amiri et al. 2017 |

Example:
    >>> import numpy as np
    >>> settings = SchedulerSettings(batch_size=2, bucket_size=1, seed=0, total_examples=40)
    >>> leitner = SCHEDULERS["leitner"](np.array([3, 4, 5, 6]), np.array([0, 1, 0, 1]), None, settings)
    >>> sorted(i for b in leitner.batches(0) for i in b)
    [0, 1, 2, 3]
    >>> leitner.update(np.array([0, 1, 2]), np.array([0.1, 0.2, 1.5]), np.array([True, True, False]))
    >>> leitner.boxes.tolist()
    [1, 1, 0, 0]
    >>> sorted(i for b in leitner.batches(1) for i in b)  # box 1 rests on odd rounds
    [2, 3]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from attncoach.curriculum.pacing import PACINGS
from attncoach.data.batching import bucket_batches

Measure = Callable[[np.ndarray], np.ndarray]  # example indices -> loss under the current model
SCHEDULERS: dict[str, type[CurriculumScheduler]] = {}


def register_scheduler(name: str) -> Callable[[type[CurriculumScheduler]], type[CurriculumScheduler]]:
    """Class decorator: register a scheduler under ``name`` (selectable as ``curriculum.scheduler``)."""

    def wrap(cls: type[CurriculumScheduler]) -> type[CurriculumScheduler]:
        cls.name = name
        SCHEDULERS[name] = cls
        return cls

    return wrap


@dataclass
class SchedulerSettings:
    """What a scheduler needs to know about the run (built from ``curriculum:`` and ``train:``).

    Attributes:
        batch_size, bucket_size, seed: as in ``train:``.
        total_examples: the run's budget in examples seen.
        pacing, start, pacing_steps: the pacing function, its c0 and its jumps (``step``).
        horizon_examples: examples seen until competence reaches 1 (None = half the budget).
        boxes: Leitner boxes.
        refresh: self-paced: fraction of the examples left out of a round that are re-measured
            at the next round's start.
        window_batches: batches per competence round.
    """

    batch_size: int
    bucket_size: int
    seed: int
    total_examples: int
    pacing: str = "sqrt"
    start: float = 0.1
    pacing_steps: int = 4
    horizon_examples: Optional[int] = None
    boxes: int = 5
    refresh: float = 0.25
    window_batches: int = 16
    repeat: bool = False

    @property
    def horizon(self) -> int:
        return max(1, self.horizon_examples or self.total_examples // 2)


class CurriculumScheduler(ABC):
    """Chooses each round's batches; subclasses implement :meth:`plan`.

    Args:
        lengths: token count per training example (for length-bucketed batches).
        labels: class id per example: curricula pace each class alike, so that the first,
            easiest examples are not all of one class.
        scores: difficulty per example (higher = harder) for schedulers with
            ``needs_scores``; None otherwise.
        settings: see :class:`SchedulerSettings`.
    """

    name: ClassVar[str] = ""
    needs_scores: ClassVar[bool] = False
    stateless: ClassVar[bool] = False  # rounds are a pure function of (seed, round): nothing to store
    paced: ClassVar[bool] = False  # follows a pacing function (reads start, pacing and horizon)
    abrupt: ClassVar[bool] = False  # a new round can change the training loss level at once (tells the coach)

    def __init__(
        self, lengths: np.ndarray, labels: np.ndarray, scores: Optional[np.ndarray], settings: SchedulerSettings
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(self.lengths):
            raise ValueError("one label per example is needed")
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.settings = settings
        self.seen = 0  # examples trained on so far
        self.round: int | None = None
        self.current: list[list[int]] = []

    def batches(self, round_no: int, measure: Optional[Measure] = None) -> list[list[int]]:
        """The batches of round ``round_no``, chosen when it is first asked for."""
        if round_no != self.round:
            self.current = self.plan(round_no, measure)
            self.round = round_no
        return self.current

    @property
    def representative(self) -> bool:
        """Whether the current round is the whole training set once (its loss is the data's loss)."""
        shown = [i for batch in self.current for i in batch]
        return len(shown) == len(self.lengths) and len(set(shown)) == len(shown)

    @abstractmethod
    def plan(self, round_no: int, measure: Optional[Measure]) -> list[list[int]]:
        """Choose the batches of a new round from the current state."""

    def update(self, indices: np.ndarray, losses: np.ndarray, correct: np.ndarray) -> None:
        """Learn from a trained batch: its examples, their losses and whether they were answered right."""
        self.seen += len(indices)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name, "seen": self.seen, "round": self.round}
        if not self.stateless:
            state["batches"] = self.current
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds a {state.get('name')} scheduler, the run uses {self.name}")
        self.seen = int(state["seen"])
        self.round = state["round"]
        self.current = (
            [list(map(int, b)) for b in state["batches"]]
            if not self.stateless
            else (self.plan(self.round, None) if self.round is not None else [])
        )

    # helpers for subclasses
    def _rng(self, round_no: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed % 2**32, round_no % 2**32, salt])

    def _bucketed(self, chosen: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
        s = self.settings
        return bucket_batches(
            rng.permutation(np.asarray(chosen, dtype=np.int64)), self.lengths, s.batch_size, s.bucket_size, rng
        )

    def competence(self) -> float:
        """The pacing function at the current progress (examples seen / horizon)."""
        s = self.settings
        return PACINGS[s.pacing](self.seen / s.horizon, start=s.start, steps=s.pacing_steps)

    def progress(self) -> dict[str, float]:
        """Scalars that show where the curriculum stands (logged as the ``curriculum`` group): the
        competence of a paced scheduler; none for the others unless they add their own."""
        return {"competence": self.competence()} if self.paced else {}


@register_scheduler("uniform")
class UniformScheduler(CurriculumScheduler):
    """Every example once per round, shuffled into length buckets: plain epochs."""

    stateless = True

    def plan(self, round_no: int, measure: Optional[Measure]) -> list[list[int]]:
        # the very order of LengthBucketBatchSampler(lengths, batch, seed, bucket).batches(round_no)
        rng = np.random.default_rng([self.settings.seed % 2**32, round_no % 2**32])
        s = self.settings
        return bucket_batches(rng.permutation(len(self.lengths)), self.lengths, s.batch_size, s.bucket_size, rng)


@register_scheduler("competence")
class CompetenceScheduler(CurriculumScheduler):
    """Competence-based curriculum: each round is a window of examples drawn from the easiest c(t).

    Examples are ranked by difficulty score within their class; with competence c, a round
    draws ``window_batches`` batches at random from the easiest ``ceil(c * N)`` — the
    easiest fraction c of every class. With ``repeat`` (Platanios et al.) any example of
    the pool may be drawn again in a later round; without it (the default) an example is
    drawn once per pass over the data, so the curriculum orders a pass instead of
    repeating the easy examples (when the pool is used up before c grows, the next easiest
    examples follow). Once c reaches 1, rounds are whole shuffled epochs as in ``uniform``.
    """

    needs_scores = True
    paced = True
    descending = False  # anti-curriculum ranks from the hardest

    def __init__(
        self, lengths: np.ndarray, labels: np.ndarray, scores: Optional[np.ndarray], settings: SchedulerSettings
    ) -> None:
        super().__init__(lengths, labels, scores, settings)
        if self.scores is None or len(self.scores) != len(self.lengths):
            raise ValueError(f"the {self.name} scheduler needs one difficulty score per example")
        key = -self.scores if self.descending else self.scores
        # easiest (or hardest) first, classes interleaved: ordered by rank within the example's class
        self.ranking = np.argsort(within_class_rank(key, self.labels), kind="stable")
        self.drawn = np.zeros(len(self.lengths), dtype=bool)  # drawn in the current pass (repeat: false)

    def plan(self, round_no: int, measure: Optional[Measure]) -> list[list[int]]:
        rng = self._rng(round_no, 1)
        n = len(self.lengths)
        c = self.competence()
        window = self.settings.batch_size * self.settings.window_batches
        if not self.settings.repeat:
            return self._bucketed(self._draw_once(c, window, rng), rng)
        if c >= 1.0:
            return self._bucketed(np.arange(n), rng)
        pool = self.ranking[: min(n, max(self.settings.batch_size, math.ceil(c * n)))]
        chosen = pool if len(pool) <= window else rng.choice(pool, size=window, replace=False)
        return self._bucketed(chosen, rng)

    def _draw_once(self, c: float, window: int, rng: np.random.Generator) -> np.ndarray:
        """A window from the pool's examples not drawn yet in this pass over the data."""
        n = len(self.lengths)
        if self.drawn.all():
            self.drawn[:] = False  # a new pass
        if c >= 1.0 and not self.drawn.any():
            self.drawn[:] = True
            return np.arange(n)  # a whole shuffled epoch, as uniform
        pool = self.ranking[: math.ceil(c * n)]
        pool = pool[~self.drawn[pool]]
        if len(pool) == 0:  # the pool is used up before competence grew: the next easiest examples
            undrawn = self.ranking[~self.drawn[self.ranking]]
            pool = undrawn[: self.settings.batch_size]
        chosen = pool if len(pool) <= window else rng.choice(pool, size=window, replace=False)
        self.drawn[chosen] = True
        return chosen

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "drawn": np.flatnonzero(self.drawn).tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.drawn = np.zeros(len(self.lengths), dtype=bool)
        self.drawn[np.asarray(state["drawn"], dtype=np.int64)] = True


@register_scheduler("anti")
class AntiCurriculumScheduler(CompetenceScheduler):
    """The competence schedule from the other end: hardest examples first."""

    descending = True


@register_scheduler("self_paced")
class SelfPacedScheduler(CurriculumScheduler):
    """Self-paced learning: a round trains the examples the current model finds easy enough.

    Each example's loss is the one measured when it was last trained on; at a round's start
    the examples never measured, and a ``refresh`` fraction of those left out of the last
    round, are measured afresh with ``measure`` (forward passes only, counted by the
    recipe). The round keeps the examples whose loss is at most the c(t)-quantile of their
    class's losses: a loss threshold, per class, that the pacing function anneals until every
    example is in. (Per class, because under a barely trained model the lowest losses all
    belong to the class it happens to favour.)
    """

    paced = True
    abrupt = True

    def __init__(
        self, lengths: np.ndarray, labels: np.ndarray, scores: Optional[np.ndarray], settings: SchedulerSettings
    ) -> None:
        super().__init__(lengths, labels, scores, settings)
        self.loss = np.full(len(self.lengths), np.nan)
        self.trained_round = np.full(len(self.lengths), -1, dtype=np.int64)

    def plan(self, round_no: int, measure: Optional[Measure]) -> list[list[int]]:
        rng = self._rng(round_no, 2)
        n = len(self.lengths)
        c = self.competence()
        if c >= 1.0:
            return self._bucketed(np.arange(n), rng)
        if measure is None:
            raise RuntimeError("the self_paced scheduler needs a measure function to start a round")
        unknown = np.flatnonzero(np.isnan(self.loss))
        left_out = np.flatnonzero(~np.isnan(self.loss) & (self.trained_round < round_no - 1))
        refresh = rng.choice(left_out, size=round_half(self.settings.refresh * len(left_out)), replace=False)
        ask = np.concatenate([unknown, np.sort(refresh)])
        if len(ask):
            self.loss[ask] = measure(ask)
        keep = min(n, max(self.settings.batch_size, math.ceil(c * n)))
        ranking = np.argsort(within_class_rank(self.loss, self.labels), kind="stable")
        return self._bucketed(np.sort(ranking[:keep]), rng)

    def update(self, indices: np.ndarray, losses: np.ndarray, correct: np.ndarray) -> None:
        super().update(indices, losses, correct)
        self.loss[indices] = losses
        self.trained_round[indices] = self.round if self.round is not None else 0

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "loss": [None if np.isnan(v) else v for v in self.loss.tolist()],
            "trained_round": self.trained_round.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.loss = np.array([np.nan if v is None else v for v in state["loss"]], dtype=np.float64)
        self.trained_round = np.asarray(state["trained_round"], dtype=np.int64)


@register_scheduler("leitner")
class LeitnerScheduler(CurriculumScheduler):
    """Spaced repetition with Leitner boxes (Amiri et al. 2017, "Repeat before Forgetting").

    Every example starts in box 0. Round r trains the examples whose box i is due
    (r is a multiple of 2**i). An example answered right (the training forward pass
    predicted its label) moves up one box, so it comes back half as often; one answered
    wrong goes back to box 0, reviewed every round.

    A round keeps the class proportions of the training set: when the due examples
    over-represent a class (the examples answered wrong are rarely spread like the data),
    a random part of that class's due examples waits (a round of one class's mistakes would
    teach the model that class's prior, not its examples).
    """

    abrupt = True

    def __init__(
        self, lengths: np.ndarray, labels: np.ndarray, scores: Optional[np.ndarray], settings: SchedulerSettings
    ) -> None:
        super().__init__(lengths, labels, scores, settings)
        if settings.boxes < 1:
            raise ValueError("the leitner scheduler needs at least one box")
        self.boxes = np.zeros(len(self.lengths), dtype=np.int64)

    def plan(self, round_no: int, measure: Optional[Measure]) -> list[list[int]]:
        rng = self._rng(round_no, 3)
        due = np.flatnonzero(round_no % (2**self.boxes) == 0)
        return self._bucketed(in_proportion(due, self.labels, rng), rng)

    def update(self, indices: np.ndarray, losses: np.ndarray, correct: np.ndarray) -> None:
        super().update(indices, losses, correct)
        top = self.settings.boxes - 1
        self.boxes[indices] = np.where(correct, np.minimum(self.boxes[indices] + 1, top), 0)

    def progress(self) -> dict[str, float]:
        """How many examples each Leitner box holds (``box_0`` = the ones last answered wrong or never seen)."""
        counts = np.bincount(self.boxes, minlength=self.settings.boxes)
        return {f"box_{box}": float(count) for box, count in enumerate(counts)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "boxes": self.boxes.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.boxes = np.asarray(state["boxes"], dtype=np.int64)


def in_proportion(chosen: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random part of ``chosen`` whose class proportions come close to those of ``labels``.

    Each class keeps at most its share of the round; the round is sized by the class that
    is shortest of its share, but never below half of ``chosen`` (a class short of its share
    then keeps all of its examples). Classes with nothing chosen are left out.

    Example:
        >>> labels = np.array([0] * 6 + [1] * 6)
        >>> kept = in_proportion(np.arange(10), labels, np.random.default_rng(0))  # 6 of class 0, 4 of class 1
        >>> np.bincount(labels[kept]).tolist()
        [4, 4]
    """
    if len(chosen) == 0:
        return chosen
    classes, totals = np.unique(labels, return_counts=True)
    share = totals / totals.sum()
    due = np.array([np.count_nonzero(labels[chosen] == k) for k in classes])
    present = due > 0
    size = max(float(np.min(due[present] / share[present])), 0.5 * len(chosen))
    keep = [
        rng.permutation(chosen[labels[chosen] == k])[: math.ceil(size * share[j] - 1e-9)]
        for j, k in enumerate(classes)
        if due[j] > 0
    ]
    return np.sort(np.concatenate(keep))


def within_class_rank(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each example's rank by ``values`` within its class, as a fraction in (0, 1] (ties: lower index first).

    Example:
        >>> within_class_rank(np.array([3.0, 1.0, 2.0, 5.0]), np.array([0, 0, 1, 1])).tolist()
        [1.0, 0.5, 0.5, 1.0]
    """
    out = np.zeros(len(values), dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[np.argsort(values[members], kind="stable")]
        out[order] = np.arange(1, len(order) + 1) / len(order)
    return out


def round_half(x: float) -> int:
    """Round half up (Python's round is half-to-even)."""
    return math.floor(x + 0.5)


def make_scheduler(
    name: str, lengths: np.ndarray, labels: np.ndarray, scores: Optional[np.ndarray], settings: SchedulerSettings
) -> CurriculumScheduler:
    """The registered scheduler ``name`` (unknown names are refused by the config check)."""
    return SCHEDULERS[name](lengths, labels, scores, settings)
