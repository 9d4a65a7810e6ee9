"""Task ``text_classification``: one label per text, cross-entropy, macro-F1 as the primary metric.

Example:
    >>> task = TASKS["text_classification"](label_smoothing=0.1)  # doctest: +SKIP
    >>> data = task.build(cfg.data, seed=0)                       # doctest: +SKIP
    >>> out = task.step(model, data.splits["train"].batch([0, 1, 2]))  # doctest: +SKIP
    >>> out.loss.backward()                                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.data.prepare import prepare_data
from attncoach.models.saved import autocast_for, predict_logits
from attncoach.tasks.base import StepOut, Task, TaskData, register_task
from attncoach.tasks.metrics import classification_metrics


@register_task("text_classification")
class TextClassificationTask(Task):
    """Classify texts into the labels of the data; see the module docstring."""

    primary = "macro_f1"

    def build(
        self, cfg: Any, seed: int = 0, tokenizer: Any = None, labels: Sequence[str] | None = None, **context: Any
    ) -> TaskData:
        data = prepare_data(cfg, seed, tokenizer=tokenizer, labels=labels)
        train = data.splits["train"]
        return TaskData(
            splits=data.splits,
            strata=train.labels,
            chance_loss=chance_loss(train.labels, len(data.labels), self.label_smoothing),
            prepared=data,
            stats=data.stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        mask = batch["attention_mask"].to(torch.bool)
        hidden = model.encoder(batch["input_ids"], mask)  # (B, T, D)
        logits = model.head(hidden, mask).float()  # (B, C)
        gold = batch["labels"]
        loss = F.cross_entropy(logits, gold, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(logits, gold, reduction="none")  # (B,), unsmoothed: the example's own loss
            predicted = logits.argmax(dim=-1)
        return StepOut(
            loss=loss,
            losses=nll,
            correct=predicted == gold,
            outputs=logits,
            hidden=hidden,
            mask=mask,
            predicted=predicted,
        )

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        device = next(model.parameters()).device
        return evaluate_ids(model, split.ids, split.labels, data.prepared.labels, batch_size, device, bf16)


def evaluate_ids(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
) -> dict[str, Any]:
    """Classification metrics and mean loss of ``model`` on encoded examples."""
    logits = predict_logits(model, ids, batch_size, device, bf16)
    gold = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    loss = F.cross_entropy(logits, gold).item()
    return classification_metrics(gold.tolist(), logits.argmax(-1).tolist(), label_names, loss=loss)


def chance_loss(labels: Any, num_labels: int, label_smoothing: float = 0.0) -> float | None:
    """Cross-entropy of the best constant prediction: the entropy of the (smoothed) class frequencies."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_labels).double()
    if counts.sum() == 0:
        return None
    target = (1 - label_smoothing) * counts / counts.sum() + label_smoothing / num_labels
    target = target[target > 0]
    return float(-(target * target.log()).sum())


__all__ = ["TextClassificationTask", "autocast_for", "chance_loss", "evaluate_ids"]
