"""Task ``text_classification``: one label per text, cross-entropy, macro-F1 as the primary metric.

Example:
    >>> task = TASKS["text_classification"](label_smoothing=0.1)  # doctest: +SKIP
    >>> data = task.build(cfg)                                     # doctest: +SKIP
    >>> model = data.new_model(cfg.model)                          # doctest: +SKIP
    >>> out = task.step(model, data.splits["train"].batch([0, 1, 2]))  # doctest: +SKIP
    >>> out.loss.backward()                                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.atomicfile import atomic_write_json
from attncoach.data.prepare import PreparedData, prepare_data
from attncoach.data.tokenizer import load_tokenizer, save_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.saved import autocast_for, predict_logits, read_labels
from attncoach.tasks.base import StepOut, Task, TaskData, class_step, encoder_config, register_task
from attncoach.tasks.metrics import classification_metrics, expected_calibration_error

# the config keys of every task that reads texts through a tokenizer it trains (or a backbone's)
TEXT_KEYS = frozenset(
    {
        "data.text_column",
        "data.val_fraction",
        "data.test_fraction",
        "data.normalize",
        "data.lowercase",
        "data.tokenizer",
        "data.vocab_size",
        "data.min_frequency",
        "data.max_length_quantile",
        "data.max_length_cap",
        "model.backbone",
        "train.freeze_layers",
    }
)


@register_task("text_classification")
class TextClassificationTask(Task):
    """Classify texts into the labels of the data; see the module docstring."""

    primary = "macro_f1"
    tracked = ("macro_f1", "accuracy")
    corpus = "tweets-sentiment"
    embedded_inputs = True  # token ids through an embedding table: robust.method perturbs it
    class_probabilities = True
    trains_on_texts = True
    keys = TEXT_KEYS | {
        "data.label_column",
        "data.split_column",
        "data.group_column",
        "model.pooling",
        "model.head_dropout",
    }

    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        data_cfg, tokenizer, labels = cfg.data, None, None
        if backbone is not None:
            limit = backbone.encoder_config.max_position
            if data_cfg.max_length is not None and data_cfg.max_length > limit:
                raise AttncoachError(
                    f"data.max_length {data_cfg.max_length} exceeds the {limit} positions of "
                    f"backbone {cfg.model.backbone}"
                )
            data_cfg = dataclasses.replace(data_cfg, max_length_cap=min(data_cfg.max_length_cap, limit))
            tokenizer = backbone.tokenizer  # the pretrained tokenizer, as it is
        if model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
            labels = read_labels(Path(model_dir) / "labels.json")
            tokenizer = load_tokenizer(Path(model_dir) / "tokenizer.json")
        data = prepare_data(data_cfg, cfg.train.seed, tokenizer=tokenizer, labels=labels)
        train = data.splits["train"]
        return TaskData(
            splits=data.splits,
            strata=train.labels,
            chance_loss=chance_loss(train.labels, len(data.labels), self.label_smoothing),
            label_names=data.labels,
            max_length=data.max_length,
            new_model=partial(_new_classifier, data, backbone),
            save=partial(_save_files, data),
            prepared=data,
            stats=data.stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        mask = batch["attention_mask"].to(torch.bool)
        hidden = model.encoder(batch["input_ids"], mask)  # (B, T, D)
        logits = model.head(hidden, mask).float()  # (B, C)
        gold = batch["labels"]
        return class_step(logits, gold, self.label_smoothing, hidden, mask, batch.get("weights"), self.keep_smallest)

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        device = next(model.parameters()).device
        return evaluate_ids(model, split.ids, split.labels, data.prepared.labels, batch_size, device, bf16)


def _new_classifier(data: PreparedData, backbone: Any, m: Any) -> TextClassifier:
    """A fresh classifier for the model section ``m``: on the pretrained backbone, or from scratch."""
    if backbone is not None:
        from attncoach.models.pretrained import build_pretrained_classifier

        return build_pretrained_classifier(backbone, len(data.labels), m.pooling, m.head_dropout, labels=data.labels)
    enc = encoder_config(
        m, vocab_size=data.tokenizer.get_vocab_size(), max_position=data.max_length, pad_id=data.pad_id
    )
    return TextClassifier(enc, num_labels=len(data.labels), pooling=m.pooling, head_dropout=m.head_dropout)


def _save_files(data: PreparedData, model_dir: Path) -> None:
    save_tokenizer(data.tokenizer, Path(model_dir) / "tokenizer.json")
    atomic_write_json(Path(model_dir) / "labels.json", data.labels)


def evaluate_ids(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
    temperature: float | None = None,
) -> dict[str, Any]:
    """Classification metrics, mean loss and ``ece`` (expected calibration error, 15 bins) of ``model``
    on encoded examples; with the ``temperature`` of a calibrated model, also ``ece_calibrated``."""
    logits = predict_logits(model, ids, batch_size, device, bf16)
    gold = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    loss = F.cross_entropy(logits, gold).item()
    metrics = classification_metrics(gold.tolist(), logits.argmax(-1).tolist(), label_names, loss=loss)
    metrics["ece"] = expected_calibration_error(torch.softmax(logits, -1).numpy(), gold.numpy())
    if temperature is not None:
        calibrated = torch.softmax(logits / temperature, -1).numpy()
        metrics.update(temperature=temperature, ece_calibrated=expected_calibration_error(calibrated, gold.numpy()))
    return metrics


def chance_loss(labels: Any, num_labels: int, label_smoothing: float = 0.0) -> float | None:
    """Cross-entropy of the best constant prediction: the entropy of the (smoothed) class frequencies."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_labels).double()
    if counts.sum() == 0:
        return None
    target = (1 - label_smoothing) * counts / counts.sum() + label_smoothing / num_labels
    target = target[target > 0]
    return float(-(target * target.log()).sum())


__all__ = ["TextClassificationTask", "autocast_for", "chance_loss", "evaluate_ids"]
