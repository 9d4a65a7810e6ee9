"""The model directory: the one module that writes and reads its format.

```
model/
  model.safetensors    weights (float32; or int8 with a scale per row, "quantization": "int8")
  model_config.json    {"format", "format_version", "attncoach_version", "task", "model", "max_length",
                        "elastic"?, "exported_from"?, "quantization"?, "onnx"?}
  model.onnx           optional: the inference graph for ONNX Runtime ("onnx" records it)
  tokenizer.json       text_classification, masked_lm: the tokenizer, its normalizer included
  labels.json          text_classification, image_classification: label names in class-id order
  items.json           next_item: the item ids; item index i + 1 is items[i] (0 is padding)
  users.json           next_item: {"users": [...], "histories": [[item index, ...], ...]}, every
                       known user's whole history, oldest first
  source_tokenizer.json, target_tokenizer.json
                       translation: each side's tokenizer (the same file twice for a shared vocabulary)
  decoding.json        translation: {"beam", "length_penalty", "shared_vocabulary"}, translate's defaults
  calibration.json     optional, text_classification: {"method": "temperature", "temperature": T,
                       "fitted_on": "val", "val_nll": [before, after], "val_ece": [before, after]};
                       probabilities are softmax(logits / T) (attncoach.train.calibrate writes it)
```

Versions: 1 (``"format": "attncoach.text-classifier"``, no ``task``) and 2 (adds
``format_version`` and ``task``) hold text classifiers and still load; 3 names the format
``attncoach.model`` for every task; 4 adds ``"quantization": "int8"`` (an int8 model,
:mod:`attncoach.models.quantized`, which older versions cannot load). A model that is not
quantised is still written as version 3, which older versions read (they ignore ``onnx``).
:func:`load_model` reads any of them and returns the task's predictor:
:class:`SavedClassifier`, :class:`SavedRecommender`, :class:`SavedTranslator` or :class:`SavedMaskedLM`, running the torch model (float32 or
int8) or, with ``runtime="onnx"``, the ONNX graph in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attncoach.atomicfile import atomic_write_json
from attncoach.data.batching import collate, inference_batches
from attncoach.data.seq_tokenizer import TARGET_TOKENIZER, load_translation_tokenizers
from attncoach.data.tokenizer import closing_special_count, encode_texts, load_tokenizer, truncate_ids
from attncoach.errors import AttncoachError
from attncoach.models.attention_maps import attention_maps
from attncoach.models.classifier import TextClassifier
from attncoach.models.masked_lm import MaskedLanguageModel
from attncoach.models.next_item import NextItemModel
from attncoach.models.onnx_graph import ONNX_FILE, OnnxModel
from attncoach.models.passes import pass_overhead
from attncoach.models.quantized import INT8, int8_skeleton
from attncoach.models.seq2seq import SourceEncoder, TranslationModel, encode_sources, translate_ids
from attncoach.weights import load_weights

log = logging.getLogger("attncoach")

MODEL_FORMAT = "attncoach.model"
# 1: before the task seam (no "task", no "format_version"); 2: + task; 3: any task; 4: + quantization
FORMAT_VERSION = 4
_PLAIN_VERSION = 3  # what a model without quantization is written as (older attncoach reads it)
_OLD_FORMAT = "attncoach.text-classifier"  # versions 1 and 2
QUANTIZATIONS = (INT8,)  # the values of "quantization" this version reads
RUNTIMES = ("torch", "onnx")  # what runs a loaded model: the torch model, or its ONNX graph in ONNX Runtime
CALIBRATION_FILE = "calibration.json"


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device (CUDA or CPU) when asked for; a no-op context otherwise.

    Matrix products and attention then run in bfloat16; weights, their gradients, the optimizer's
    state and the ops that need range (softmax, LayerNorm, the losses) stay float32.
    """
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
    similar: bool = False,
) -> torch.Tensor:
    """Logits for every sequence, in input order, batching sequences of similar length.

    Args:
        similar: cut the sequences, sorted by length, into the passes that cost least for this model
            (:func:`attncoach.models.passes.pass_overhead` and
            :func:`attncoach.data.batching.inference_batches`): what answering requests uses.
            Without it, passes of ``batch_size`` sequences, as evaluation during training runs them.

    Returns:
        A float32 CPU tensor of shape (N, num_labels).
    """
    lengths = [len(row) for row in ids]
    overhead = pass_overhead(model, device) if similar and len(set(lengths)) > 1 else None
    was_training = model.training
    if was_training:  # eval() visits every module: a cost a small model's pass notices
        model.eval()
    passes = inference_batches(lengths, batch_size, overhead)
    out: list[torch.Tensor] = []
    for chunk in passes:
        batch = collate([ids[i] for i in chunk])
        with autocast_for(device, bf16):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        out.append(logits.float().cpu())
    if was_training:
        model.train()
    if not out:
        return torch.empty(0, 0)
    logits = torch.cat(out)
    result = torch.empty_like(logits)
    result[torch.tensor([i for chunk in passes for i in chunk])] = logits
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
    runtime: str = "torch"  # "torch", or "onnx": ``model`` is then an OnnxModel
    quantization: str | None = None  # "int8" for an int8 model ("quantization" in model_config.json)
    calibration: dict[str, Any] | None = None  # calibration.json as written, or None: probabilities uncalibrated

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", runtime: str = "torch") -> SavedClassifier:
        """Load weights (or the ONNX graph), config, tokenizer, labels and calibration; any damaged file
        is a clear error."""
        model_dir = Path(model_dir)
        config = read_model_config(model_dir, "text_classification")
        labels = read_labels(model_dir / "labels.json")
        calibration = read_calibration(model_dir)
        dev = _device(device)
        model = _load_model(model_dir, config, TextClassifier, dev, runtime)
        if model.num_labels != len(labels):
            raise AttncoachError(
                f"{model_dir / 'labels.json'} lists {len(labels)} labels; the model has {model.num_labels} classes"
            )
        tokenizer = load_tokenizer(model_dir / "tokenizer.json")
        return cls(
            model,
            tokenizer,
            labels,
            int(config["max_length"]),
            dev,
            None,
            config["task"],
            config.get("elastic"),
            model_dir,
            runtime,
            config.get("quantization"),
            calibration,
        )

    @property
    def temperature(self) -> float | None:
        """The temperature that divides the logits before the softmax (calibration.json), or None."""
        return None if self.calibration is None else float(self.calibration["temperature"])

    def predict_proba(self, texts: str | Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (number of texts, num_labels); one string is one text.

        They are calibrated, ``softmax(logits / T)``, when the model directory holds ``calibration.json``
        (:attr:`temperature`); the most probable label is the same either way.

        Raises:
            AttncoachError: ``texts`` is neither a string nor a list of strings, or the model's
                outputs are not finite (NaN or infinite: damaged weights or a diverged run).
        """
        texts = as_texts(texts)
        _check_batch_size(batch_size)
        ids = encode_texts(self.tokenizer, texts, self.max_length)
        if not ids:
            return np.zeros((0, len(self.labels)))
        logits = predict_logits(self.model, ids, batch_size, self.device, similar=True)
        probs = torch.softmax(logits / (self.temperature or 1.0), dim=-1).numpy()
        bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
        if len(bad):
            raise AttncoachError(
                f"the model's probabilities are not finite (NaN) for {len(bad)} of {len(texts)} texts "
                f"(the first: text {bad[0] + 1}); its weights are damaged or its training diverged"
            )
        return probs

    def attention(self, text: str) -> tuple[list[str], list[np.ndarray]]:
        """The tokens of ``text`` as the model reads them, and each active layer's attention over them.

        Returns:
            ``(tokens, maps)``: ``maps[l]`` is ``(heads, T, T)``, row ``q`` the distribution of
            token ``q``'s attention over the ``T`` tokens (see
            :func:`attncoach.models.attention_maps.attention_maps`).

        Raises:
            AttncoachError: ``text`` is not one string, or the model runs in ONNX Runtime.
        """
        if not isinstance(text, str):
            raise AttncoachError(f"attention reads one text (a string), not {_shown(text)}")
        _require_torch(self.runtime)
        encoding = self.tokenizer.encode(text)
        keep = truncate_ids(list(range(len(encoding.ids))), self.max_length, closing_special_count(self.tokenizer))
        ids = torch.tensor([[encoding.ids[i] for i in keep]], device=self.device)
        maps = attention_maps(self.model, ids, torch.ones_like(ids, dtype=torch.bool))
        return [encoding.tokens[i] for i in keep], [m[0].float().cpu().numpy() for m in maps]

    def predict(self, texts: str | Sequence[str], batch_size: int = 256) -> list[dict[str, Any]]:
        """One ``{"label", "probabilities": {label: p}}`` per text, in input order.

        Args:
            texts: a list of texts, or one text as a string (the result is then a list of one).
            batch_size: texts per forward pass.

        Raises:
            AttncoachError: see :meth:`predict_proba`.

        Example:
            >>> clf.predict("the flight was late again")  # doctest: +SKIP
            [{'label': 'negative', 'probabilities': {'negative': 0.91, 'neutral': 0.06, 'positive': 0.03}}]
        """
        probs = self.predict_proba(texts, batch_size)
        return [
            {
                "label": self.labels[int(p.argmax())],
                "probabilities": {name: round(float(v), 6) for name, v in zip(self.labels, p)},
            }
            for p in probs
        ]


@dataclass
class SavedRecommender:
    """A trained next-item model loaded from its model directory.

    Example:
        >>> rec = SavedRecommender.load("runs/movielens/model")     # doctest: +SKIP
        >>> rec.recommend(user="196", k=3)[0]                       # doctest: +SKIP
        {'item': '474', 'score': 9.81}
    """

    model: NextItemModel
    items: list[str]
    users: dict[str, np.ndarray]  # every known user's whole history (item indices), oldest first
    max_length: int
    device: torch.device
    task: str = "next_item"
    elastic: Any = None
    model_dir: Path | None = None
    space: Any = None  # the ElasticSpace, once attncoach.elastic.space.saved_space has read it
    runtime: str = "torch"  # "torch", or "onnx": ``model`` is then an OnnxModel
    quantization: str | None = None  # "int8" for an int8 model

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", runtime: str = "torch") -> SavedRecommender:
        """Load weights (or the ONNX graph), config, items and user histories; any damaged file is a clear error."""
        model_dir = Path(model_dir)
        config = read_model_config(model_dir, "next_item")
        items = _read_json(model_dir / "items.json")
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise AttncoachError(f"{model_dir / 'items.json'} must be a non-empty list of item ids")
        known = _read_json(model_dir / "users.json")
        try:
            users = {str(u): np.asarray(h, dtype=np.int64) for u, h in zip(known["users"], known["histories"])}
        except (KeyError, TypeError, ValueError):
            raise AttncoachError(f"{model_dir / 'users.json'} must hold 'users' and their 'histories'") from None
        dev = _device(device)
        model = _load_model(model_dir, config, NextItemModel, dev, runtime)
        if model.num_items != len(items):
            raise AttncoachError(
                f"{model_dir / 'items.json'} lists {len(items)} items; the model has {model.num_items}"
            )
        return cls(
            model,
            items,
            users,
            int(config["max_length"]),
            dev,
            "next_item",
            config.get("elastic"),
            model_dir,
            runtime=runtime,
            quantization=config.get("quantization"),
        )

    def history_of(self, user: str) -> list[str]:
        """A known user's item ids, oldest first."""
        return [self.items[i - 1] for i in self._user_row(str(user)).tolist()]

    def recommend(
        self,
        user: str | None = None,
        history: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
    ) -> list[dict[str, Any]]:
        """The ``k`` items most likely next, best first, as ``{"item", "score"}``.

        Args:
            user: a user the model knows (their whole history is used), or None.
            history: item ids, oldest first (instead of ``user``); items the model never saw
                are left out (an error if none is known).
            k: how many items.
            exclude_seen: leave the history's own items out of the recommendations.

        Raises:
            AttncoachError: neither or both of user and history, an unknown user, a history
                of unknown items only, or k out of range.
        """
        users = [user] if user is not None else None
        return self.recommend_many(users, [history] if history is not None else None, k, exclude_seen)[0]

    def recommend_many(
        self,
        users: Sequence[str] | None = None,
        histories: Sequence[Sequence[str]] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 256,
    ) -> list[list[dict[str, Any]]]:
        """:meth:`recommend` for many users or many histories at once."""
        if (users is None) == (histories is None):
            raise AttncoachError("give either users or histories to recommend for")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.items):
            raise AttncoachError(f"k must be an integer from 1 to {len(self.items)} (the number of items), not {k!r}")
        _check_batch_size(batch_size)
        if users is not None:
            rows = [self._user_row(_item_id(u, "a user")) for u in _as_list(users, "users", "user ids")]
        else:
            rows = [self._encode_history(h) for h in _as_list(histories, "histories", "histories")]
        out: list[list[dict[str, Any]]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(rows), batch_size):
                    chunk = rows[start : start + batch_size]
                    out.extend(self._top_k(chunk, k, exclude_seen))
        finally:
            self.model.train(was_training)
        return out

    def attention(self, history: str | Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
        """The items of ``history`` the model reads (its known ones, the last ``max_length``), and each
        active layer's causal attention over them: ``maps[l]`` is ``(heads, T, T)``.

        Raises:
            AttncoachError: no item of the history is known, or the model runs in ONNX Runtime.
        """
        _require_torch(self.runtime)
        row = self._encode_history(history)[-self.max_length :]
        ids = torch.as_tensor(row, device=self.device)[None]  # (1, T)
        maps = attention_maps(self.model, ids, torch.ones_like(ids, dtype=torch.bool))
        return [self.items[i - 1] for i in row.tolist()], [m[0].float().cpu().numpy() for m in maps]

    @functools.cached_property
    def _item_index(self) -> dict[str, int]:
        """Item id -> item index (1-based), built once."""
        return {item: i for i, item in enumerate(self.items, start=1)}

    def _user_row(self, user: str) -> np.ndarray:
        if user not in self.users:
            raise AttncoachError(
                f"unknown user {user!r}: the model knows {len(self.users)} users (give their history instead)"
            )
        return self.users[user]

    def _encode_history(self, history: str | Sequence[str]) -> np.ndarray:
        if isinstance(history, str):
            history = history.split()
        elif not _is_list_like(history):
            raise AttncoachError(f"a history must be a list of item ids, not {_shown(history)}")
        history = [_item_id(item, "an item") for item in history]
        index = self._item_index
        known = [index[item] for item in history if item in index]
        if not known:
            shown = ", ".join(repr(str(x)) for x in list(history)[:3]) or "none"
            raise AttncoachError(f"none of the history's items is known to the model (first: {shown})")
        return np.asarray(known, dtype=np.int64)

    def _top_k(self, rows: list[np.ndarray], k: int, exclude_seen: bool) -> list[list[dict[str, Any]]]:
        width = min(max(len(r) for r in rows), self.max_length)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            tail = row[-width:]
            ids[i, : len(tail)] = torch.as_tensor(tail)
        ids = ids.to(self.device)
        scores = self.model.next_item_scores(ids, ids != 0).float()  # (B, V + 1)
        if scores.isnan().any() or scores.isposinf().any():  # -inf marks what cannot be recommended (padding)
            raise AttncoachError(
                "the model's scores are not finite (NaN or infinite); its weights are damaged or its training diverged"
            )
        if exclude_seen:
            for i, row in enumerate(rows):
                scores[i, torch.as_tensor(row, device=self.device)] = float("-inf")
        top = scores.topk(min(k, scores.shape[1] - 1), dim=1)
        return [
            [
                {"item": self.items[int(j) - 1], "score": round(float(v), 6)}
                for v, j in zip(values.tolist(), index.tolist())
                if v != float("-inf")
            ]
            for values, index in zip(top.values, top.indices)
        ]


def as_texts(texts: Any) -> list[str]:
    """``texts`` as a list of strings: one string is one text; anything else but strings is refused.

    Example:
        >>> as_texts("one text"), as_texts(("a", "b"))
        (['one text'], ['a', 'b'])
    """
    if isinstance(texts, str):
        return [texts]
    if not _is_list_like(texts):
        raise AttncoachError(f"texts must be a string or a list of strings, not {_shown(texts)}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise AttncoachError(f"texts[{i}] must be a string, not {_shown(text)}")
    return texts


def _as_list(values: Any, name: str, what: str) -> list[Any]:
    """``users`` or ``histories`` as a list: one string is one of them."""
    if isinstance(values, str):
        return [values]
    if not _is_list_like(values):
        raise AttncoachError(f"{name} must be a list of {what}, not {_shown(values)}")
    return list(values)


def _item_id(value: Any, what: str) -> str:
    """A user or item id: a string, or an integer written as one (``196`` is ``"196"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    raise AttncoachError(f"{what} id must be a string, not {_shown(value)}")


def _is_list_like(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


@dataclass
class SavedTranslator:
    """A trained translation model loaded from its model directory.

    Example:
        >>> tr = SavedTranslator.load("runs/bible/model")       # doctest: +SKIP
        >>> tr.translate(["In the beginning God created the heavens."])  # doctest: +SKIP
        ['Au commencement, Dieu créa les cieux.']
    """

    model: TranslationModel
    source_tokenizer: Any
    target_tokenizer: Any
    max_length: int
    device: torch.device
    beam: int = 4  # decoding.json's defaults
    length_penalty: float = 0.6
    task: str = "translation"
    elastic: Any = None
    model_dir: Path | None = None
    space: Any = None
    runtime: str = "torch"
    quantization: str | None = None

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", runtime: str = "torch") -> SavedTranslator:
        """Load weights, config, both tokenizers and the decoding defaults; any damaged file is a clear error."""
        model_dir = Path(model_dir)
        config = read_model_config(model_dir, "translation")
        if runtime != "torch":
            raise AttncoachError("a translation model runs in torch only: ONNX export covers classifiers and next_item")
        decoding = _read_json(model_dir / "decoding.json")
        beam, penalty = (decoding.get(k) if isinstance(decoding, dict) else None for k in ("beam", "length_penalty"))
        if not (isinstance(beam, int) and beam >= 1 and isinstance(penalty, (int, float)) and penalty >= 0):
            raise AttncoachError(f"{model_dir / 'decoding.json'} needs a beam >= 1 and a length_penalty >= 0")
        source, target = load_translation_tokenizers(model_dir)
        dev = _device(device)
        model = _load_model(model_dir, config, TranslationModel, dev, runtime)
        vocab = model.target_vocab_size or model.encoder.config.vocab_size
        if target.get_vocab_size() != vocab:
            raise AttncoachError(
                f"{model_dir / TARGET_TOKENIZER} has {target.get_vocab_size()} tokens; the model has {vocab}"
            )
        return cls(
            model,
            source,
            target,
            int(config["max_length"]),
            dev,
            beam,
            float(penalty),
            "translation",
            config.get("elastic"),
            model_dir,
            quantization=config.get("quantization"),
        )

    def translate(
        self,
        texts: str | Sequence[str],
        beam: int | None = None,
        length_penalty: float | None = None,
        batch_size: int = 32,
    ) -> list[str]:
        """Translations of ``texts`` in input order (one string is one text).

        Args:
            texts: sentences of the source language.
            beam: beam size (1 = greedy); ``None`` = the model's default (``decoding.json``).
            length_penalty: the beam search's length penalty; ``None`` = the model's default.
            batch_size: sentences translated together.

        Raises:
            AttncoachError: ``texts`` is not a string or a list of strings, or ``beam`` < 1.

        A source longer than the model's positions is cut to fit, with a warning.
        """
        texts = as_texts(texts)
        _check_batch_size(batch_size)
        beam = self.beam if beam is None else beam
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise AttncoachError(f"beam size must be an integer >= 1, not {_shown(beam)}")
        penalty = self.length_penalty if length_penalty is None else length_penalty
        ids, cut = encode_sources(self.source_tokenizer, texts, self.max_length, self.model.eos_id)
        if cut:
            log.warning(
                "%d of %d source text(s) longer than the model's %d positions were cut to fit",
                cut,
                len(texts),
                self.max_length,
            )
        return translate_ids(self.model, ids, self.target_tokenizer, batch_size, beam, penalty)

    def attention(self, text: str) -> tuple[list[str], list[np.ndarray]]:
        """The source tokens of ``text`` (``</s>`` last) and each active encoder layer's self-attention over them
        (see :meth:`SavedClassifier.attention`).

        Raises:
            AttncoachError: ``text`` is not one string.
        """
        if not isinstance(text, str):
            raise AttncoachError(f"attention reads one text (a string), not {_shown(text)}")
        encoding = self.source_tokenizer.encode(text)
        ids, _ = encode_sources(self.source_tokenizer, [text], self.max_length, self.model.eos_id)
        source = torch.as_tensor(ids[0][None], device=self.device)
        maps = attention_maps(SourceEncoder(self.model), source, torch.ones_like(source, dtype=torch.bool))
        tokens = [*encoding.tokens[: source.shape[1] - 1], "</s>"]
        return tokens, [m[0].float().cpu().numpy() for m in maps]


PRETRAINED_ENCODER_USE = (
    "a masked_lm model is a pretrained encoder: fine-tune it with attncoach train model.backbone=RUN "
    "(attncoach eval RUN scores its masked-token accuracy)"
)


@dataclass
class SavedMaskedLM:
    """A pretrained encoder (task masked_lm, ``attncoach pretrain``) loaded from its model directory.

    It is the backbone of later runs (``model.backbone``); here it is loaded to evaluate it on its run's
    test split and to show its attention.

    Example:
        >>> mlm = SavedMaskedLM.load("runs/tweets-pretrain/model")  # doctest: +SKIP
        >>> tokens, maps = mlm.attention("so happy with the new update")  # doctest: +SKIP
    """

    model: MaskedLanguageModel
    tokenizer: Any
    max_length: int
    device: torch.device
    task: str = "masked_lm"
    elastic: Any = None
    model_dir: Path | None = None
    space: Any = None
    runtime: str = "torch"
    quantization: str | None = None

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", runtime: str = "torch") -> SavedMaskedLM:
        """Load weights, config and tokenizer; any damaged file is a clear error."""
        model_dir = Path(model_dir)
        config = read_model_config(model_dir, "masked_lm")
        if runtime != "torch":
            raise AttncoachError(f"a masked_lm model runs in torch only; {PRETRAINED_ENCODER_USE}")
        dev = _device(device)
        model = _load_model(model_dir, config, MaskedLanguageModel, dev, runtime)
        tokenizer = load_tokenizer(model_dir / "tokenizer.json")
        return cls(
            model,
            tokenizer,
            int(config["max_length"]),
            dev,
            elastic=config.get("elastic"),
            model_dir=model_dir,
            quantization=config.get("quantization"),
        )

    def attention(self, text: str) -> tuple[list[str], list[np.ndarray]]:
        """The tokens of ``text`` and each active layer's attention over them (see :meth:`SavedClassifier.attention`)."""
        return SavedClassifier.attention(self, text)  # type: ignore[arg-type]  # the same tokenizer and encoder


def _shown(value: Any) -> str:
    """A wrong value in an error: its type and a short repr."""
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _device(name: Any) -> torch.device:
    """The torch device to load onto: ``cpu``, ``cuda``, ``cuda:1``..."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise AttncoachError(f"device must be cpu or cuda (or cuda:N), not {_shown(name)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AttncoachError("device cuda was asked for but no CUDA device is available")
    return device


def _require_torch(runtime: str) -> None:
    if runtime != "torch":
        raise AttncoachError("attention maps need the torch model: load it with runtime torch, not onnx")


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AttncoachError(f"batch_size must be a positive integer, not {_shown(batch_size)}")


def load_model(
    model_dir: str | Path, device: str = "cpu", runtime: str = "torch"
) -> SavedClassifier | SavedRecommender | SavedTranslator | SavedMaskedLM:
    """The predictor of any model directory, by the task in its ``model_config.json``.

    Args:
        model_dir: A model directory.
        device: Where the torch model runs (``cpu``, ``cuda``...).
        runtime: ``torch`` (the weights, float32 or int8) or ``onnx`` (its ``model.onnx`` in
            ONNX Runtime, on the CPU; needs ``pip install 'attncoach[onnx]'``).
    """
    check_runtime(runtime)
    config = read_model_config(Path(model_dir))
    if config["task"] == "image_classification":  # its own module, which imports this one
        from attncoach.models.saved_image import SavedImageClassifier

        return SavedImageClassifier.load(model_dir, device=device, runtime=runtime)
    loader = {
        "text_classification": SavedClassifier,
        "next_item": SavedRecommender,
        "translation": SavedTranslator,
        "masked_lm": SavedMaskedLM,
    }.get(config["task"])
    if loader is None:
        raise AttncoachError(f"{model_dir} holds a {config['task']!r} model, which this attncoach cannot load")
    return loader.load(model_dir, device=device, runtime=runtime)


def check_runtime(runtime: Any) -> str:
    """``runtime`` if it names one of :data:`RUNTIMES`, else one clear line."""
    if runtime not in RUNTIMES:
        raise AttncoachError(f"unknown runtime {_shown(runtime)}: choose {' or '.join(RUNTIMES)}")
    return runtime


def read_model_config(model_dir: Path, task: str | None = None) -> dict[str, Any]:
    """``model_config.json`` of a model directory, checked (and its ``task`` filled in for version 1).

    Raises:
        AttncoachError: a missing or damaged file, a newer format, or a model of another task than ``task``.
    """
    path = Path(model_dir) / "model_config.json"
    config = _read_json(path)
    if not isinstance(config, dict) or config.get("format") not in (MODEL_FORMAT, _OLD_FORMAT):
        raise AttncoachError(f"{path} is not an attncoach model config")
    version = config.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise AttncoachError(
            f"{model_dir} was written by a newer attncoach (model format {version!r}; this one "
            f"reads up to {FORMAT_VERSION}): upgrade attncoach"
        )
    config = {**config, "task": str(config.get("task", "text_classification"))}
    if task is not None and config["task"] != task:
        raise AttncoachError(f"{model_dir} holds a {config['task']} model, not a {task} one")
    if "max_length" not in config or "model" not in config:
        raise AttncoachError(f"{path} is invalid (it needs 'model' and 'max_length')")
    quantization = config.get("quantization")
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise AttncoachError(f"{path} names an unknown quantization {quantization!r} (this attncoach reads int8)")
    if config.get("onnx") is not None and not isinstance(config["onnx"], dict):
        raise AttncoachError(f"{path} is invalid ('onnx' must be an object)")
    return config


def _load_model(
    model_dir: Path, config: dict[str, Any], cls: type, device: torch.device, runtime: str = "torch"
) -> Any:
    if check_runtime(runtime) == "onnx":
        return _load_onnx(model_dir, config, device)
    try:
        model = cls.from_config_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AttncoachError(f"{model_dir / 'model_config.json'} is invalid ({exc})") from None
    if config.get("quantization") == INT8:
        model = int8_skeleton(model)
    weights = load_weights(model_dir / "model.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise AttncoachError(f"{model_dir / 'model.safetensors'} does not match its config ({first})") from None
    return model.to(device).eval()


def load_torch_model(model_dir: Path, config: dict[str, Any], cls: type, device: str = "cpu") -> Any:
    """The torch model of class ``cls`` in a model directory whose ``model_config.json`` is ``config`` (read by
    :func:`read_model_config`), in eval mode; a damaged file is one clear line."""
    return _load_model(Path(model_dir), config, cls, _device(device))


def _load_onnx(model_dir: Path, config: dict[str, Any], device: torch.device) -> OnnxModel:
    """The ONNX graph of a model directory in an ONNX Runtime session (CPU only)."""
    if device.type != "cpu":
        raise AttncoachError(f"the onnx runtime runs on the CPU, not on {device}")
    path = model_dir / ONNX_FILE
    if config.get("onnx") is None or not path.is_file():
        raise AttncoachError(
            f"{model_dir} has no ONNX graph ({ONNX_FILE}): export one with attncoach export {model_dir} --onnx --out DIR"
        )
    return OnnxModel(path, config["task"])


def model_config(
    model: torch.nn.Module, max_length: int, task: str = "text_classification", **extra: Any
) -> dict[str, Any]:
    """The content of ``model_config.json`` for ``model``.

    ``extra``: ``elastic``, ``exported_from``, ``quantization`` (``"int8"``: the version is then 4),
    ``onnx`` (the record :func:`attncoach.models.onnx_graph.export_onnx` returns); None values are left out.
    """
    from attncoach import __version__

    if extra.get("quantization") not in (None, *QUANTIZATIONS):
        raise ValueError(f"unknown quantization {extra['quantization']!r}")
    return {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION if extra.get("quantization") else _PLAIN_VERSION,
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


def read_calibration(model_dir: Path) -> dict[str, Any] | None:
    """``calibration.json`` of a model directory, checked; None when it has none.

    Raises:
        AttncoachError: a damaged file (not JSON, another method, a temperature that is not a positive number).
    """
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.exists():
        return None
    record = _read_json(path)
    temperature = record.get("temperature") if isinstance(record, dict) else None
    usable = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not usable or not math.isfinite(temperature) or temperature <= 0 or record.get("method") != "temperature":
        raise AttncoachError(
            f'{path} is damaged (it needs "method": "temperature" and a positive "temperature"); '
            "delete it to use the model uncalibrated"
        )
    return record


def write_calibration(model_dir: Path, record: dict[str, Any]) -> None:
    """Write ``calibration.json`` (see the module docstring) into a model directory, atomically."""
    atomic_write_json(Path(model_dir) / CALIBRATION_FILE, record)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise AttncoachError(f"model file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AttncoachError(f"{path} is not valid JSON") from None
