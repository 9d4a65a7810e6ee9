"""The model directory: the one module that writes and reads its format.

```
model/
  model.safetensors    weights
  model_config.json    {"format", "format_version", "attncoach_version", "task", "model", "max_length",
                        "elastic"?, "exported_from"?}
  tokenizer.json       the tokenizer, its normalizer included
  labels.json          label names in class-id order
```

Format version 2 adds ``format_version`` and ``task``; a directory written before (version 1,
no such keys) loads as a ``text_classification`` model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attncoach.atomicfile import atomic_write_json
from attncoach.data.batching import collate
from attncoach.data.tokenizer import encode_texts, load_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.weights import load_weights

MODEL_FORMAT = "attncoach.text-classifier"
FORMAT_VERSION = 2  # 1: before the task seam (no "task", no "format_version")


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked for; a no-op context otherwise."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, ids: Sequence[Sequence[int]], batch_size: int, device: torch.device, bf16: bool = False
) -> torch.Tensor:
    """Logits for every sequence, in input order, batching sequences of similar length.

    Returns:
        A float32 CPU tensor of shape (N, num_labels).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([ids[i] for i in chunk])
        with autocast_for(device, bf16):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        out.append(logits.float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    logits = torch.cat(out)
    result = torch.empty_like(logits)
    result[torch.tensor(order)] = logits
    return result


@dataclass
class SavedClassifier:
    """A trained classifier loaded from its model directory.

    Example:
        >>> clf = SavedClassifier.load("runs/tweets/model")        # doctest: +SKIP
        >>> clf.predict(["the flight was late again"])[0]["label"]  # doctest: +SKIP
        'negative'
    """

    model: TextClassifier
    tokenizer: Any
    labels: list[str]
    max_length: int
    device: torch.device
    space: Any = None  # the ElasticSpace of an elastic run ("elastic" in model_config.json), else None
    task: str = "text_classification"  # the task the model was trained for ("task" in model_config.json)
    elastic: Any = None  # "elastic" of model_config.json as written (attncoach.elastic.space.saved_space reads it)
    model_dir: Path | None = None

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> SavedClassifier:
        """Load weights, config, tokenizer and labels; any damaged file is a clear error."""
        model_dir = Path(model_dir)
        config = _read_json(model_dir / "model_config.json")
        if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
            raise AttncoachError(f"{model_dir / 'model_config.json'} is not an attncoach model config")
        version = config.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise AttncoachError(
                f"{model_dir} was written by a newer attncoach (model format {version!r}; this one "
                f"reads up to {FORMAT_VERSION}): upgrade attncoach"
            )
        labels = read_labels(model_dir / "labels.json")
        try:
            model = TextClassifier.from_config_dict(config["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AttncoachError(f"{model_dir / 'model_config.json'} is invalid ({exc})") from None
        weights = load_weights(model_dir / "model.safetensors")
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise AttncoachError(f"{model_dir / 'model.safetensors'} does not match its config ({first})") from None
        dev = torch.device(device)
        model.to(dev).eval()
        tokenizer = load_tokenizer(model_dir / "tokenizer.json")
        return cls(
            model,
            tokenizer,
            labels,
            int(config["max_length"]),
            dev,
            None,
            str(config.get("task", "text_classification")),
            config.get("elastic"),
            model_dir,
        )

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (len(texts), num_labels)."""
        ids = encode_texts(self.tokenizer, list(texts), self.max_length)
        logits = predict_logits(self.model, ids, batch_size, self.device)
        return torch.softmax(logits, dim=-1).numpy() if len(ids) else np.zeros((0, len(self.labels)))

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[dict[str, Any]]:
        """One ``{"label", "probabilities": {label: p}}`` per text."""
        probs = self.predict_proba(texts, batch_size)
        return [
            {
                "label": self.labels[int(p.argmax())],
                "probabilities": {name: round(float(v), 6) for name, v in zip(self.labels, p)},
            }
            for p in probs
        ]


def model_config(
    model: TextClassifier, max_length: int, task: str = "text_classification", **extra: Any
) -> dict[str, Any]:
    """The content of ``model_config.json`` for ``model`` (``extra``: ``elastic``, ``exported_from``)."""
    from attncoach import __version__

    return {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "attncoach_version": __version__,
        "task": task,
        "model": model.config_dict(),
        "max_length": max_length,
        **{k: v for k, v in extra.items() if v is not None},
    }


def write_model_config(folder: Path, config: dict[str, Any]) -> None:
    """Write ``model_config.json`` (made by :func:`model_config`) into a model directory, atomically."""
    atomic_write_json(Path(folder) / "model_config.json", config)


def read_labels(path: Path) -> list[str]:
    """A model's ``labels.json``: the label names in class-id order.

    Raises:
        AttncoachError: a missing or malformed file.
    """
    labels = _read_json(path)
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise AttncoachError(f"{path} must be a non-empty list of label names")
    return labels


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise AttncoachError(f"model file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"{path} is not valid JSON") from None
