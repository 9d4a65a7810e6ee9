"""What every coach policy is: a small registered class that turns signals into decisions.

A policy reads :class:`~attncoach.coach.signals.Signals` and the current
:class:`Knobs`, and returns :class:`Decision` objects, each changing one knob with a
one-line reason. The coach applies and logs them. A policy has three methods:
``observe``, ``state_dict`` and ``load_state_dict``; its parameters are dataclass fields,
checked in ``__post_init__`` (contradictory bounds are refused there).

Example:
    >>> @register_policy("noop")
    ... @dataclass
    ... class Noop(Policy):
    ...     def observe(self, signals, knobs):
    ...         return []
    >>> POLICIES["noop"]().observe(None, Knobs())
    []
    >>> del POLICIES["noop"]
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from attncoach.errors import AttncoachError

# knob names the recipe applies; "rollback" and "stop" are actions rather than values
KNOBS = ("lr_scale", "accumulation", "dropout", "weight_decay", "rollback", "stop")


@dataclass
class Knobs:
    """The hyperparameters the coach may change while a run goes on.

    Attributes:
        lr_scale: multiplies every parameter group's scheduled LR.
        accumulation: micro-batches per optimizer step (the batch grows by this factor).
        dropout: the model's dropout probability (embeddings, residual branches, head).
        weight_decay: AdamW weight decay of the decayed parameter groups.
    """

    lr_scale: float = 1.0
    accumulation: int = 1
    dropout: float = 0.1
    weight_decay: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Decision:
    """One change of one knob, with the signal values that caused it.

    Attributes:
        step: the optimizer step at which it was taken.
        policy: the registered name of the policy.
        knob: one of ``KNOBS``.
        old: the knob's value before.
        new: its value after (for ``rollback``: the step the run goes back to).
        reason: one line a person can read.
        signals: the signal values the policy looked at.
    """

    step: int
    policy: str
    knob: str
    old: Any
    new: Any
    reason: str
    signals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Policy(ABC):
    """Base of every coach policy (subclasses are dataclasses of their parameters).

    A policy declares what it needs measured; the session asks every active policy and
    never looks one up by name.

    Attributes:
        needs: measurements the session takes for this policy: ``gradient_noise`` (half-batch
            gradients), ``updates`` (the weights around an optimizer step, every
            :meth:`update_interval` steps), ``snapshots`` (in-memory states to roll back to,
            refreshed every :meth:`snapshot_interval` steps).
        owns_stopping: the policy decides when the run has stopped improving, so the
            recipe's early stopping stands aside.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    owns_stopping: ClassVar[bool] = False

    @abstractmethod
    def observe(self, signals: Any, knobs: Knobs) -> list[Decision]:
        """Decisions for these signals (often none). Called after every step and evaluation."""

    @property
    def exclusive(self) -> bool:
        """True while the policy holds the run alone (an LR probe: its steps will be undone)."""
        return False

    @property
    def steady(self) -> bool:
        """False while the current state is not one to roll back to (e.g. a probation after a rollback)."""
        return True

    def update_interval(self) -> int | None:
        """Optimizer steps between measured updates, when ``updates`` is among :attr:`needs`."""
        return None

    def snapshot_interval(self) -> int | None:
        """Optimizer steps between periodic snapshots, or None when snapshots are only taken on demand."""
        return None

    def fit_to_run(self, total_steps: int) -> str | None:
        """Adjust to a run of ``total_steps`` optimizer steps; returns a line for the log, if anything changed."""
        return None

    def data_shift(self) -> None:
        """A curriculum changed which examples are trained: forget loss references (default: nothing)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue the same decisions (JSON-ready)."""
        return {k: v for k, v in vars(self).items() if k.startswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        for key, value in state.items():
            setattr(self, key, value)


POLICIES: dict[str, type[Policy]] = {}


def register_policy(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy available as ``coach.policies: [name]``."""

    def add(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        POLICIES[name] = cls
        return cls

    return add


def check_bounds(policy: str, low_name: str, low: float, high_name: str, high: float) -> None:
    """Refuse ``low > high`` with one line naming both parameters."""
    if low > high:
        raise AttncoachError(f"coach policy {policy}: {low_name} ({low:g}) is greater than {high_name} ({high:g})")


def check_positive(policy: str, **values: float) -> None:
    """Refuse non-positive parameters with one line naming the first."""
    for key, value in values.items():
        if not value > 0:
            raise AttncoachError(f"coach policy {policy}: {key} must be positive, got {value!r}")
