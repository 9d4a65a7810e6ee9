"""Task ``image_classification``: one label per image, a ViT on the elastic encoder, accuracy as the primary metric.

The data is a built-in corpus (``mnist-5k``, the default, or ``digits``) with its fixed split,
or an image folder (``data.path``: one sub-folder per class) split with the run's seed; see
:mod:`attncoach.data.images`. The model is :class:`attncoach.models.image.ImageClassifier`:
``model.patch_size`` patches, a ``[CLS]`` token when ``model.pooling`` is ``cls``. Training
images move by up to ``data.max_shift`` pixels (random, seeded).

A batch holds the images as ``input_ids`` (float ``(B, C, H, W)``: the model's input, under the
name every task's batch gives it, so that whatever calls ``model(batch["input_ids"],
batch["attention_mask"])`` runs an image model too), an all-true ``attention_mask``
``(B, T)`` over the image's T tokens, and ``labels``.

Example:
    >>> task = TASKS["image_classification"]()                     # doctest: +SKIP
    >>> data = task.build(load_run_config(None, ["task=image_classification", "data.builtin=digits"]))  # doctest: +SKIP
    >>> out = task.step(data.new_model(cfg.model), data.splits["train"].batch([0, 1]))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.atomicfile import atomic_write_json
from attncoach.data.images import (
    BUILTIN_IMAGE_SPLITS,
    ImageSet,
    as_model_input,
    image_size_text,
    load_builtin_images,
    read_image_folder,
    shift_images,
    stratified_split,
)
from attncoach.errors import AttncoachError
from attncoach.models.image import ImageClassifier, patch_tokens
from attncoach.models.saved import autocast_for
from attncoach.tasks.base import StepOut, Task, TaskData, class_step, encoder_config, register_task
from attncoach.tasks.metrics import classification_metrics, expected_calibration_error
from attncoach.tasks.text_classification import chance_loss

log = logging.getLogger("attncoach")

DEFAULT_CORPUS = "mnist-5k"


@dataclass
class ImageSplit:
    """One split of images (index i is one example).

    Attributes:
        pixels: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` class ids.
        names: each image's name (its file, or ``mnist-5k #12``): what the learning record calls it.
        lines: each image's line in its source file (0 when none).
        tokens: the tokens the model makes of an image (its mask's width).
        max_shift: training batches move each image by up to this many pixels (0 for val and test).
        seed: the run's seed; a batch's shifts are a pure function of it and the batch's examples.
    """

    pixels: np.ndarray
    labels: np.ndarray
    names: list[str]
    lines: list[int]
    tokens: int
    max_shift: int = 0
    seed: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ids(self) -> np.ndarray:
        """The images themselves, ``(N, C, H, W)`` (what the other tasks' splits hold as token ids)."""
        return self.pixels

    @property
    def texts(self) -> list[str]:
        return self.names

    @property
    def lengths(self) -> np.ndarray:
        return np.full(len(self), self.tokens, dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSplit:
        keep = np.asarray(indices, dtype=np.int64)
        return ImageSplit(
            self.pixels[keep],
            self.labels[keep],
            [self.names[i] for i in keep],
            [self.lines[i] for i in keep],
            self.tokens,
            self.max_shift,
            self.seed,
        )

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """``input_ids`` (the images, float ``(B, C, H, W)`` in 0..1), ``attention_mask`` ``(B, T)`` and ``labels``.

        With ``max_shift`` the images are shifted; the shifts depend only on the run's seed and
        the batch's examples, so a resumed run draws the ones an uninterrupted run would.
        """
        keep = np.asarray(indices, dtype=np.int64)
        pixels = self.pixels[keep]
        if self.max_shift > 0:
            rng = np.random.default_rng([self.seed % 2**32, zlib.crc32(keep.tobytes())])
            pixels = shift_images(pixels, self.max_shift, rng)
        return {
            "input_ids": as_model_input(pixels),
            "attention_mask": torch.ones(len(keep), self.tokens, dtype=torch.bool),
            "labels": torch.as_tensor(self.labels[keep]),
        }


@register_task("image_classification")
class ImageClassificationTask(Task):
    """Classify images into the classes of the data; see the module docstring."""

    primary = "accuracy"
    tracked = ("accuracy", "macro_f1")
    corpus = DEFAULT_CORPUS
    class_probabilities = True
    keys = frozenset(
        {
            "data.val_fraction",
            "data.test_fraction",
            "data.max_shift",
            "model.pooling",
            "model.head_dropout",
            "model.patch_size",
        }
    )

    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        d, m = cfg.data, cfg.model
        if backbone is not None:
            raise AttncoachError("task image_classification trains from scratch: model.backbone must be scratch")
        if d.max_shift < 0:
            raise AttncoachError(f"config key 'data.max_shift' must be 0 or more, got {d.max_shift}")
        images = _read(d)
        if model_dir is not None and (Path(model_dir) / "labels.json").is_file():
            _check_same_labels(images, Path(model_dir) / "labels.json")
        image_size = images.pixels.shape[2:]
        if d.max_shift >= min(image_size):
            raise AttncoachError(
                f"config key 'data.max_shift' ({d.max_shift}) must be smaller than the images' sides "
                f"({image_size_text(images.pixels[0])}, {source_of(d)})"
            )
        try:
            tokens = patch_tokens(image_size, m.patch_size, cls_token=m.pooling == "cls")
        except ValueError as exc:
            raise AttncoachError(f"config key 'model.patch_size': {exc} ({source_of(d)})") from None
        parts = _split(images, d, cfg.train.seed)
        splits = {
            name: ImageSplit(
                images.pixels[index],
                images.labels[index],
                [images.names[i] for i in index],
                [images.lines[i] for i in index],
                tokens,
                d.max_shift if name == "train" else 0,
                cfg.train.seed,
            )
            for name, index in parts.items()
        }
        train = splits["train"]
        shape = images.pixels.shape[1:]
        stats = {
            "source": images.source,
            "images": len(images),
            "image_size": image_size_text(images.pixels[0]),
            "classes": len(images.label_names),
            "tokens": tokens,
            "max_shift": d.max_shift,
            "splits": {name: len(split) for name, split in splits.items()},
            "split_by": "the corpus' fixed split" if d.path is None else f"train.seed {cfg.train.seed}",
        }
        log.info(
            "data: %d images %s in %d classes from %s; train %d, val %d, test %d; %d tokens each",
            len(images),
            image_size_text(images.pixels[0]),
            len(images.label_names),
            images.source,
            len(train),
            len(splits["val"]),
            len(splits["test"]),
            tokens,
        )
        return TaskData(
            splits=splits,
            strata=train.labels,
            chance_loss=chance_loss(train.labels, len(images.label_names), self.label_smoothing),
            label_names=images.label_names,
            max_length=tokens,
            new_model=partial(_new_model, tuple(shape), len(images.label_names), tokens),
            save=partial(_save_files, images.label_names),
            prepared=images,
            stats=stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        mask = batch["attention_mask"].to(torch.bool)
        hidden = model.encoder(batch["input_ids"])  # (B, T, D): no padding, so no mask
        logits = model.head(hidden).float()  # (B, C)
        gold = batch["labels"]
        return class_step(logits, gold, self.label_smoothing, hidden, mask, batch.get("weights"), self.keep_smallest)

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        return evaluate_images(model, split, data.label_names, batch_size, bf16)


@torch.inference_mode()
def image_logits(model: Any, split: ImageSplit, batch_size: int = 256, bf16: bool = False) -> Tensor:
    """The model's logits ``(N, C)`` (float32, CPU) of every image of ``split``, in order."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(split), batch_size):
            batch = split.batch(range(start, min(start + batch_size, len(split))))
            with autocast_for(device, bf16):
                logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            out.append(logits.float().cpu())
    finally:
        model.train(was_training)
    if not out:
        raise AttncoachError("no images to evaluate: the split is empty")
    return torch.cat(out)


def evaluate_images(
    model: Any,
    split: ImageSplit,
    label_names: list[str],
    batch_size: int = 256,
    bf16: bool = False,
    temperature: float | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class figures, the confusion matrix, mean loss and ``ece`` of ``model`` on
    ``split``; with the ``temperature`` of a calibrated model, also ``ece_calibrated``."""
    logits = image_logits(model, split, batch_size, bf16)
    gold = torch.as_tensor(split.labels, dtype=torch.long)
    loss = F.cross_entropy(logits, gold).item()
    metrics = classification_metrics(gold.tolist(), logits.argmax(-1).tolist(), label_names, loss=loss)
    metrics["ece"] = expected_calibration_error(torch.softmax(logits, -1).numpy(), gold.numpy())
    if temperature is not None:
        calibrated = torch.softmax(logits / temperature, -1).numpy()
        metrics.update(temperature=temperature, ece_calibrated=expected_calibration_error(calibrated, gold.numpy()))
    return metrics


def source_of(d: Any) -> str:
    """How messages name the configured image source."""
    return str(d.path) if d.path is not None else f"the built-in corpus {d.builtin or DEFAULT_CORPUS}"


def _read(d: Any) -> ImageSet:
    if d.path is not None:
        return read_image_folder(Path(d.path))
    return load_builtin_images(d.builtin or DEFAULT_CORPUS)


def _split(images: ImageSet, d: Any, seed: int) -> dict[str, np.ndarray]:
    """A built-in corpus' fixed split, or the folder's split by the run's seed; an empty split is refused."""
    if d.path is None:
        name = d.builtin or DEFAULT_CORPUS
        defaults = type(d)()
        for key in ("val_fraction", "test_fraction"):
            if getattr(d, key) != getattr(defaults, key):
                raise AttncoachError(
                    f"config key 'data.{key}' splits an image folder (data.path); the built-in corpus {name} "
                    "has a fixed split: remove it"
                )
        val, test = BUILTIN_IMAGE_SPLITS[name]
        return stratified_split(images.labels, val, test, seed=0)
    n = len(images)
    val, test = round(d.val_fraction * n), round(d.test_fraction * n)
    parts = stratified_split(images.labels, val, test, seed)
    empty = [name for name in ("train", "val", "test") if len(parts[name]) == 0]
    if empty:
        raise AttncoachError(
            f"image folder {d.path} has {n} images: too few for a {' and a '.join(empty)} split "
            f"(data.val_fraction {d.val_fraction:g}, data.test_fraction {d.test_fraction:g}); add images"
        )
    return parts


def _new_model(shape: tuple[int, int, int], num_labels: int, tokens: int, m: Any, backbone: Any = None) -> Any:
    channels, height, width = shape
    enc = encoder_config(m, vocab_size=1, max_position=tokens, type_vocab_size=0, pad_id=0)
    return ImageClassifier(enc, (height, width), channels, m.patch_size, num_labels, m.pooling, m.head_dropout)


def _save_files(label_names: list[str], model_dir: Path) -> None:
    atomic_write_json(Path(model_dir) / "labels.json", label_names)


def _check_same_labels(images: ImageSet, path: Path) -> None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"{path} is not valid JSON") from None
    if saved != images.label_names:
        raise AttncoachError(
            f"the data's classes are not the ones the model was trained on ({path}: {len(saved)} classes, "
            f"{images.source}: {len(images.label_names)}): the data source changed"
        )


__all__ = ["ImageClassificationTask", "ImageSplit", "evaluate_images", "image_logits"]
