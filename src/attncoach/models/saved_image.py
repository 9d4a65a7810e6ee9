"""A trained image classifier loaded from its model directory (``model_config.json`` task ``image_classification``).

The directory holds what every model directory holds (:mod:`attncoach.models.saved`, which
loads this class for the task) and ``labels.json``; the image size, channels and patch size
are part of the model's config. :meth:`SavedImageClassifier.predict` reads image files (PNG,
JPEG) or arrays and refuses an image whose size or colour is not the model's.

Example:
    >>> clf = load_model("runs/mnist/model")                                  # doctest: +SKIP
    >>> clf.predict(["seven.png"])[0]["label"]                                # doctest: +SKIP
    '7'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attncoach.data.images import as_model_input, image_size_text, read_image
from attncoach.errors import AttncoachError
from attncoach.models.attention_maps import attention_maps
from attncoach.models.image import ImageClassifier
from attncoach.models.saved import (
    _check_batch_size,
    _device,
    _load_model,
    _require_torch,
    read_calibration,
    read_labels,
    read_model_config,
)

TASK = "image_classification"


@dataclass
class SavedImageClassifier:
    """A trained image classifier: the model (torch float32 or int8, or its ONNX graph), labels, calibration."""

    model: Any
    labels: list[str]
    shape: tuple[int, int, int]  # (C, H, W) of the images the model takes
    max_length: int  # the tokens of an image
    device: torch.device
    task: str = TASK
    elastic: Any = None
    model_dir: Path | None = None
    space: Any = None  # the ElasticSpace, once attncoach.elastic.space.saved_space has read it
    runtime: str = "torch"
    quantization: str | None = None
    calibration: dict[str, Any] | None = None

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", runtime: str = "torch") -> SavedImageClassifier:
        """Weights (or the ONNX graph), config, labels and calibration; any damaged file is a clear error."""
        model_dir = Path(model_dir)
        config = read_model_config(model_dir, TASK)
        labels = read_labels(model_dir / "labels.json")
        try:
            settings = config["model"]
            shape = (int(settings["channels"]), *(int(side) for side in settings["image_size"]))
        except (KeyError, TypeError, ValueError):
            raise AttncoachError(f"{model_dir / 'model_config.json'} is invalid (no image size)") from None
        dev = _device(device)
        model = _load_model(model_dir, config, ImageClassifier, dev, runtime)
        if model.num_labels != len(labels):
            raise AttncoachError(
                f"{model_dir / 'labels.json'} lists {len(labels)} labels; the model has {model.num_labels} classes"
            )
        return cls(
            model,
            labels,
            shape,
            int(config["max_length"]),
            dev,
            TASK,
            config.get("elastic"),
            model_dir,
            runtime=runtime,
            quantization=config.get("quantization"),
            calibration=read_calibration(model_dir),
        )

    @property
    def temperature(self) -> float | None:
        """The temperature that divides the logits before the softmax (calibration.json), or None."""
        return None if self.calibration is None else float(self.calibration["temperature"])

    def read(self, images: str | Path | np.ndarray | Sequence[Any]) -> np.ndarray:
        """Image files (paths) or uint8 arrays ``(C, H, W)`` as one uint8 batch ``(B, C, H, W)`` of the model's size.

        Raises:
            AttncoachError: an unreadable file, or an image of another size or colour than the model's.
        """
        if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
            images = [images]
        mode = "L" if self.shape[0] == 1 else "RGB"
        batch = np.empty((len(images), *self.shape), dtype=np.uint8)
        for i, image in enumerate(images):
            pixels = read_image(Path(image), mode) if isinstance(image, (str, Path)) else np.asarray(image)
            if pixels.shape != self.shape:
                shown = image_size_text(pixels) if pixels.ndim == 3 else f"an array of shape {pixels.shape}"
                name = image if isinstance(image, (str, Path)) else f"image {i + 1}"
                raise AttncoachError(
                    f"{name} is {shown}; the model takes {image_size_text(np.empty(self.shape))} images"
                )
            batch[i] = pixels
        return batch

    def predict_proba(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(B, num_labels)`` (calibrated when the model has ``calibration.json``)."""
        _check_batch_size(batch_size)
        pixels = self.read(images)
        out = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(pixels), batch_size):
                    out.append(self.model(as_model_input(pixels[start : start + batch_size]).to(self.device)).float())
        finally:
            self.model.train(was_training)
        if not out:
            return np.zeros((0, len(self.labels)))
        logits = torch.cat(out).cpu()
        probs = torch.softmax(logits / (self.temperature or 1.0), dim=-1).numpy()
        if not np.isfinite(probs).all():
            raise AttncoachError("the model's probabilities are not finite (NaN): its weights are damaged")
        return probs

    def predict(self, images: Any, batch_size: int = 256) -> list[dict[str, Any]]:
        """One ``{"label", "probability", "probabilities": {label: p}}`` per image, in input order."""
        return [
            {
                "label": self.labels[int(p.argmax())],
                "probability": round(float(p.max()), 6),
                "probabilities": {name: round(float(v), 6) for name, v in zip(self.labels, p)},
            }
            for p in self.predict_proba(images, batch_size)
        ]

    def attention(self, image: str | Path | np.ndarray) -> tuple[list[str], list[np.ndarray]]:
        """The tokens of one image (``[CLS]``, then ``r<row>c<col>`` per patch) and each active layer's
        attention over them, ``maps[l]`` ``(heads, T, T)``.

        Raises:
            AttncoachError: an unreadable image or one of another size, or the model runs in ONNX Runtime.
        """
        _require_torch(self.runtime)
        pixels = as_model_input(self.read(image)).to(self.device)
        maps = attention_maps(self.model, pixels, None)
        return self.model.patches.token_names(), [m[0].float().cpu().numpy() for m in maps]


__all__ = ["SavedImageClassifier"]
