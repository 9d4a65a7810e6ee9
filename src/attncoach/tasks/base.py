"""What every task is: a small registered class that builds its data, scores a batch and evaluates a split.

The recipe and the pillars (coach, curriculum, elastic) know a task only through this
interface, so the one place where a step's loss is computed is :meth:`Task.step` of the
task chosen by ``task: <name>`` in the config.

Example:
    >>> @register_task("echo")  # doctest: +SKIP
    ... class Echo(Task):
    ...     primary = "accuracy"
    ...     def build(self, cfg, **context): ...
    ...     def step(self, model, batch): ...
    ...     def evaluate(self, model, split, data): ...
    >>> TASKS["text_classification"].primary
    'macro_f1'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

TASKS: dict[str, type[Task]] = {}


@dataclass
class StepOut:
    """What one forward pass of a batch gives the recipe and the pillars.

    Attributes:
        loss: the mean training loss of the batch (differentiable).
        losses: per-example loss, ``(B,)``, detached, float32 (curriculum, learning record).
        correct: per-example correctness, ``(B,)`` bool (learning record, forgetting).
        outputs: what distillation matches between sub-nets, e.g. logits ``(B, C)``.
        hidden: the final hidden states ``(B, T, D)`` (hidden-state distillation).
        mask: the padding mask of ``hidden``, ``(B, T)``, True on real tokens.
        predicted: per-example prediction, ``(B,)`` (learning record), or None.
    """

    loss: Tensor
    losses: Tensor
    correct: Tensor
    outputs: Tensor
    hidden: Tensor | None = None
    mask: Tensor | None = None
    predicted: Tensor | None = None


@dataclass
class TaskData:
    """The data a task built: splits, and what the recipe and the pillars need to know of it.

    Attributes:
        splits: ``train``, ``val`` and ``test`` (each with ``ids``, ``lengths`` and ``batch(indices)``).
        strata: per training example, the group a curriculum keeps in proportion (the class).
        chance_loss: the training loss of guessing (the best constant prediction), or None.
        prepared: the task's own prepared data (labels, tokenizer...).
    """

    splits: dict[str, Any]
    strata: np.ndarray
    chance_loss: float | None
    prepared: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A task: data from config, the loss of a batch, the metrics of a split.

    Attributes:
        name: the registered name (``task:`` in the config).
        primary: the metric that selects checkpoints and ranks sub-nets (higher is better).
    """

    name: ClassVar[str] = ""
    primary: ClassVar[str] = ""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    @abstractmethod
    def build(self, cfg: Any, **context: Any) -> TaskData:
        """Read, split and encode the configured data (``context``: tokenizer, labels of a resumed run...)."""

    @abstractmethod
    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        """Forward ``batch`` (already on the model's device) through ``model``; the loss and per-example outcomes."""

    @abstractmethod
    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        """Metrics of ``model`` on ``split``, with ``loss`` and the :attr:`primary` metric among them."""


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: register a task under ``name``."""

    def add(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        cls.name = name
        TASKS[name] = cls
        return cls

    return add
