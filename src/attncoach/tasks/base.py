"""What every task is: a small registered class that builds its data, scores a batch and evaluates a split.

The recipe and the pillars (coach, curriculum, elastic) know a task only through this
interface, so the one place where a step's loss is computed is :meth:`Task.step` of the
task chosen by ``task: <name>`` in the config.

Example:
    >>> @register_task("echo")  # doctest: +SKIP
    ... class Echo(Task):
    ...     primary = "accuracy"
    ...     def build(self, cfg, backbone=None, model_dir=None): ...
    ...     def step(self, model, batch): ...
    ...     def evaluate(self, model, split, data): ...
    >>> TASKS["text_classification"].primary
    'macro_f1'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
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
        margin: per-example margin of a class label, ``(B,)``, detached: the gold class's logit minus
            the largest other logit (the learning record's area under the margin), or None.
    """

    loss: Tensor
    losses: Tensor
    correct: Tensor
    outputs: Tensor
    hidden: Tensor | None = None
    mask: Tensor | None = None
    predicted: Tensor | None = None
    margin: Tensor | None = None


@dataclass
class TaskData:
    """The data a task built: splits, and what the recipe and the pillars need to know of it.

    Every split has ``len()``, ``ids`` (the input sequence of each example), ``lengths``
    and ``batch(indices) -> dict`` with at least ``input_ids`` (the model's input: token ids
    ``(B, T)``, or an image task's pixels ``(B, C, H, W)``) and ``attention_mask`` ``(B, T)``; the
    train split also has ``labels`` (what the learning record calls the gold answer),
    ``texts`` (how it names each example), ``lines`` and ``subset(indices)``.

    Attributes:
        splits: ``train``, ``val`` and ``test``.
        strata: per training example, the group a curriculum keeps in proportion (the class).
        chance_loss: the training loss of guessing (the best constant prediction), or None.
        label_names: the name of each value of the train split's ``labels`` (learning record).
        max_length: the longest input sequence the model takes.
        new_model: builds a freshly initialised model from the model config section (and the
            pretrained backbone, when there is one).
        save: writes the task's own files (tokenizer, labels, item vocabulary...) into a model directory.
        prepared: the task's own prepared data (labels, tokenizer...).
        stats: counts for the run's report (``data_stats.json``).
    """

    splits: dict[str, Any]
    strata: np.ndarray
    chance_loss: float | None
    label_names: list[str]
    max_length: int
    new_model: Callable[..., Any]
    save: Callable[[Path], None]
    prepared: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A task: data from config, the loss of a batch, the metrics of a split.

    Attributes:
        name: the registered name (``task:`` in the config).
        primary: the metric that selects checkpoints and ranks sub-nets (higher is better).
        tracked: the val metrics kept in the history and shown, the primary one first.
        corpus: the built-in corpus of a config that names no data.
        keys: the task-specific config keys this task reads; a key of another task's set left
            at a non-default value is refused (see :func:`task_keys`).
        embedded_inputs: the model looks its inputs up in an embedding table
            (``model.encoder.embeddings.word``) that adversarial training (``robust.method``) perturbs.
        class_probabilities: whether :meth:`step`'s ``outputs`` are the logits ``(B, C)`` of a softmax
            over classes, the gold class being the batch's ``labels``: its probabilities can be
            calibrated (``train.calibrate``); a ranking task's scores are not. Such a task's
            training examples each have one class label (the train split's ``labels``): label
            noise can be injected (``data.label_noise``), and the curriculum's noisy-label
            switches and the record's margins apply.
        trains_on_texts: its training examples are raw texts encoded by a tokenizer (``augment:``
            perturbs and re-encodes them; a task without texts refuses ``augment.p`` > 0).
    """

    name: ClassVar[str] = ""
    primary: ClassVar[str] = ""
    tracked: ClassVar[tuple[str, ...]] = ()
    corpus: ClassVar[str] = ""  # the built-in corpus a config with neither data.builtin nor data.path trains on
    keys: ClassVar[frozenset[str]] = frozenset()
    embedded_inputs: ClassVar[bool] = False
    class_probabilities: ClassVar[bool] = False
    trains_on_texts: ClassVar[bool] = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing
        # small-loss selection (curriculum.small_loss): the fraction of a batch, smallest losses first,
        # that the training loss averages; the curriculum sets it step by step (1 = every example)
        self.keep_smallest = 1.0

    @abstractmethod
    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        """Read, split and encode the data of the run config ``cfg``.

        Args:
            cfg: the whole run configuration (its ``data``, ``model`` and ``train.seed``).
            backbone: the loaded pretrained backbone, or None for a model from scratch.
            model_dir: a model directory written by ``TaskData.save``: encode exactly as it
                did (a resumed run, ``eval``, ``subnets``), instead of learning the encoding anew.
        """

    @abstractmethod
    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        """Forward ``batch`` (already on the model's device) through ``model``; the loss and per-example outcomes."""

    @abstractmethod
    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        """Metrics of ``model`` on ``split``, with ``loss`` and the :attr:`primary` metric among them."""


def encoder_config(m: Any, **fixed: Any) -> Any:
    """The :class:`EncoderConfig` of the ``model`` config section ``m``; ``fixed``: what the data sets
    (``vocab_size``, ``max_position``, ``pad_id``...)."""
    from attncoach.models.encoder import EncoderConfig

    return EncoderConfig(
        dim=m.dim,
        layers=m.layers,
        heads=m.heads,
        ffn_dim=m.ffn_dim,
        dropout=m.dropout,
        attention_dropout=m.attention_dropout,
        activation=m.activation,
        norm_first=m.norm_first,
        **fixed,
    )


def task_keys() -> dict[str, set[str]]:
    """Every task-specific config key and the tasks that read it."""
    owners: dict[str, set[str]] = {}
    for name, cls in TASKS.items():
        for key in cls.keys:
            owners.setdefault(key, set()).add(name)
    return owners


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: register a task under ``name``."""

    def add(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        cls.name = name
        TASKS[name] = cls
        return cls

    return add


def class_step(
    logits: Tensor,
    gold: Tensor,
    label_smoothing: float,
    hidden: Tensor,
    mask: Tensor,
    weights: Tensor | None = None,
    keep_smallest: float = 1.0,
) -> StepOut:
    """The :class:`StepOut` of one label per example: the (smoothed) cross-entropy of ``logits`` ``(B, C)``
    against ``gold`` ``(B,)``, each example's own unsmoothed loss, whether its top class is the gold one,
    and its margin (the gold logit minus the largest other one).

    A batch's ``weights`` ``(B,)`` (the curriculum's noisy-label switches) make the loss their weighted
    mean; ``keep_smallest`` < 1 averages only that fraction of the batch, the examples of smallest loss
    (small-loss selection, Han et al. 2018): the weights of the others are set to 0.
    """
    with torch.no_grad():
        nll = F.cross_entropy(logits, gold, reduction="none")  # (B,), unsmoothed: the example's own loss
        predicted = logits.argmax(dim=-1)
        margin = label_margin(logits, gold)
    weights = loss_weights(nll, weights, keep_smallest)
    if weights is None:
        loss = F.cross_entropy(logits, gold, label_smoothing=label_smoothing)
    else:
        per_example = F.cross_entropy(logits, gold, label_smoothing=label_smoothing, reduction="none")
        loss = (per_example * weights).sum() / weights.sum().clamp_min(1e-12)
    return StepOut(
        loss=loss,
        losses=nll,
        correct=predicted == gold,
        outputs=logits,
        hidden=hidden,
        mask=mask,
        predicted=predicted,
        margin=margin,
    )


def label_margin(logits: Tensor, gold: Tensor) -> Tensor:
    """The gold class's logit minus the largest other logit, ``(B,)`` (Pleiss et al. 2020's margin).

    Example:
        >>> label_margin(torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]), torch.tensor([0, 0])).tolist()
        [1.0, -3.0]
    """
    gold_logit = logits.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
    others = logits.masked_fill(F.one_hot(gold, logits.shape[-1]).to(torch.bool), float("-inf"))
    return gold_logit - others.max(dim=-1).values


def loss_weights(losses: Tensor, weights: Tensor | None, keep_smallest: float) -> Tensor | None:
    """Each example's weight in the batch's loss: ``weights`` (or 1), 0 outside the ``keep_smallest``
    fraction of smallest ``losses`` (at least one example is kept); None when every weight is 1.

    Example:
        >>> loss_weights(torch.tensor([0.1, 2.0, 0.5, 0.3]), None, 0.5).tolist()
        [1.0, 0.0, 0.0, 1.0]
    """
    if keep_smallest >= 1:
        return None if weights is None else weights.to(losses.dtype)
    kept = max(1, int(round(keep_smallest * losses.shape[0])))
    chosen = torch.zeros_like(losses)
    chosen[torch.argsort(losses, stable=True)[:kept]] = 1.0
    return chosen if weights is None else chosen * weights.to(losses.dtype)
