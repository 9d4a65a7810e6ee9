"""Task ``masked_lm``: self-supervised domain pretraining of the encoder by masked-language modelling.

The examples are unlabelled texts: a built-in corpus's own texts (its labels are ignored) or the
texts of any file (``.txt``, one per line; the ``data.text_column`` of a CSV, TSV or JSONL file).
Blank texts are skipped and duplicates removed. A built-in corpus is split exactly as
``text_classification`` splits it (the same seed and fractions), so an encoder pretrained on its
training texts has never read the val and test texts of the classifier fine-tuned from it; a
file's texts are split at random (seeded). The tokenizer is trained on the training texts (or is
the backbone's, for continued pretraining of e.g. MiniLM).

Masking is BERT's (Devlin et al. 2019): ``data.mask_probability`` (0.15) of each text's ordinary
(non-special) tokens, at least one, are chosen; 80 % of them become ``[MASK]``, 10 % a random
ordinary token and 10 % stay as they are; the loss is the cross-entropy of the original tokens at
the chosen positions only. A training batch's masks are a pure function of ``(train.seed, the
batch's example indices)``: a resumed run and every sub-net of one elastic step see the same masks,
while a new epoch's batches (other compositions) see new ones. Val and test masks are fixed per
example, so every evaluation scores the same positions.

Metrics: ``masked_accuracy`` (primary: the share of masked tokens predicted exactly), ``loss`` (per
masked token) and ``perplexity`` (its exponential). The learning record names each training text by
itself; a text counts as correct when all its masked tokens were predicted.

The model directory holds the encoder and its MLM head (:class:`MaskedLanguageModel`) and the
tokenizer; ``model.backbone: RUN`` fine-tunes its encoder for another task.

Example:
    >>> task = TASKS["masked_lm"]()                                 # doctest: +SKIP
    >>> data = task.build(cfg)                                      # doctest: +SKIP
    >>> out = task.step(model, data.splits["train"].batch([0, 1]))  # doctest: +SKIP
    >>> task.evaluate(model, data.splits["val"], data)["masked_accuracy"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor

from attncoach.config import DataConfig
from attncoach.data.batching import collate
from attncoach.data.builtin import DEFAULT_BUILTIN
from attncoach.data.sources import drop_unusable, read_rows, source_name
from attncoach.data.splits import dedupe, split_examples
from attncoach.data.stream import TextStream
from attncoach.data.tokenizer import (
    CLS,
    MASK,
    PAD,
    SEP,
    UNK,
    auto_max_length,
    closing_special_count,
    encode_texts,
    load_tokenizer,
    pad_token_id,
    save_tokenizer,
    train_tokenizer,
    truncate_ids,
)
from attncoach.errors import AttncoachError
from attncoach.models.masked_lm import MaskedLanguageModel
from attncoach.models.saved import autocast_for
from attncoach.tasks.base import StepOut, Task, TaskData, encoder_config, register_task
from attncoach.tasks.text_classification import TEXT_KEYS

log = logging.getLogger("attncoach")

IGNORED = -100  # the target of a position that is not masked (F.cross_entropy's ignore_index)
TOKENIZER_FILE = "tokenizer.json"
_TRAIN_STREAM, _EVAL_STREAM = 0, 1  # keep the random streams of training and evaluation masks apart


@dataclass(frozen=True)
class Masking:
    """How texts are masked (see the module docstring).

    Attributes:
        probability: the share of a text's ordinary tokens chosen (at least one).
        seed: the run's seed.
        mask_id: the id of ``[MASK]``.
        ordinary: per token id, whether it may be chosen (not a special token).
        fixed: masks per example (val, test) rather than per batch (training).
    """

    probability: float
    seed: int
    mask_id: int
    ordinary: np.ndarray
    fixed: bool = False

    @property
    def replacements(self) -> np.ndarray:
        """The ids a chosen token may be replaced by at random: every ordinary token."""
        return np.flatnonzero(self.ordinary)

    def apply(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One text's ``(inputs, targets)``: the ids with the chosen tokens masked, and the original id at each
        chosen position (:data:`IGNORED` elsewhere)."""
        candidates = np.flatnonzero(self.ordinary[ids])
        count = max(1, int(self.probability * len(candidates) + 0.5))
        chosen = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
        draw = rng.random(len(chosen))
        inputs, targets = ids.copy(), np.full_like(ids, IGNORED)
        targets[chosen] = ids[chosen]
        inputs[chosen[draw < 0.8]] = self.mask_id
        swapped = chosen[(draw >= 0.8) & (draw < 0.9)]
        inputs[swapped] = rng.choice(self.replacements, size=len(swapped))
        return inputs, targets


@dataclass
class TextSplit:
    """One split of unlabelled texts as token ids (index i is one text).

    Attributes:
        ids: each text's token ids, special tokens included, already truncated.
        texts: the texts.
        lines: the source line of each text (0 when unknown).
        masking: how :meth:`batch` masks them.
        labels: each text's index among the split's texts as built (what the learning record names it by,
            and what its masks are keyed by), kept by :meth:`subset`.
    """

    ids: list[np.ndarray]
    texts: list[str]
    lines: list[int]
    masking: Masking
    labels: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = np.arange(len(self.ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.ids), dtype=np.int64, count=len(self.ids))

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextSplit:
        keep = np.asarray(indices, dtype=np.int64)
        return TextSplit(
            [self.ids[i] for i in keep],
            [self.texts[i] for i in keep],
            [self.lines[i] for i in keep],
            self.masking,
            self.labels[keep],
        )

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """``input_ids`` (masked), ``attention_mask``, ``mlm_labels`` (the original id at each masked position,
        :data:`IGNORED` elsewhere) and ``labels`` (the texts' indices); the same indices give the same masks."""
        keys = [int(k) for k in self.labels[np.asarray(indices, dtype=np.int64)]]
        seed = self.masking.seed % 2**32
        if self.masking.fixed:  # each text its own masks, whatever batch it is in
            masked = [self.masking.apply(self.ids[i], _rng(seed, _EVAL_STREAM, k)) for i, k in zip(indices, keys)]
        else:  # the whole batch from one stream: another batch composition, other masks
            rng = _rng(seed, _TRAIN_STREAM, *keys)
            masked = [self.masking.apply(self.ids[i], rng) for i in indices]
        inputs = collate([m[0] for m in masked], keys)
        targets = collate([m[1] for m in masked], pad_id=IGNORED)["input_ids"]
        return {**inputs, "mlm_labels": targets}


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.default_rng(list(entropy))


@dataclass
class Encoding:
    """The tokenizer and the longest sequence: what a masked_lm model directory keeps of the data."""

    tokenizer: Tokenizer
    max_length: int


@register_task("masked_lm")
class MaskedLMTask(Task):
    """Pretrain the encoder by masked-language modelling on unlabelled texts; see the module docstring."""

    primary = "masked_accuracy"
    tracked = ("masked_accuracy",)
    corpus = DEFAULT_BUILTIN
    embedded_inputs = True  # token ids through the word embedding table: robust.method can perturb it
    keys = TEXT_KEYS | {"data.mask_probability"}

    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        d = cfg.data
        texts, lines, counts = _read_texts(d, cfg.train.seed)
        tokenizer, cap = None, d.max_length_cap
        if backbone is not None:
            tokenizer, cap = backbone.tokenizer, min(cap, backbone.encoder_config.max_position)
            limit = backbone.encoder_config.max_position
            if d.max_length is not None and d.max_length > limit:
                raise AttncoachError(
                    f"data.max_length {d.max_length} exceeds the {limit} positions of backbone {cfg.model.backbone}"
                )
        if model_dir is not None and (Path(model_dir) / TOKENIZER_FILE).is_file():
            tokenizer = load_tokenizer(Path(model_dir) / TOKENIZER_FILE)
        if tokenizer is None:
            tokenizer = train_tokenizer(
                texts["train"], d.tokenizer, d.vocab_size, d.min_frequency, d.lowercase, d.normalize
            )
        full = {name: encode_texts(tokenizer, split) for name, split in texts.items()}
        max_length = d.max_length or auto_max_length(map(len, full["train"]), d.max_length_quantile, cap)
        tail = closing_special_count(tokenizer)
        ordinary = _ordinary_tokens(tokenizer)
        masking = Masking(d.mask_probability, cfg.train.seed, _mask_id(tokenizer), ordinary)
        splits, without = {}, {}
        for name in texts:
            ids = [np.asarray(truncate_ids(one, max_length, tail), dtype=np.int64) for one in full[name]]
            keep = [
                i for i, one in enumerate(ids) if ordinary[one].any()
            ]  # a text of special tokens has nothing to mask
            without[name] = len(ids) - len(keep)
            fixed = dataclasses.replace(masking, fixed=name != "train")
            splits[name] = TextSplit(
                [ids[i] for i in keep], [texts[name][i] for i in keep], [lines[name][i] for i in keep], fixed
            )
        if len(splits["train"]) < 2 or not len(splits["val"]) or not len(splits["test"]):
            raise AttncoachError(
                f"too few texts to pretrain on in {_source(d)}: {len(splits['train'])} train, "
                f"{len(splits['val'])} val and {len(splits['test'])} test texts with a token to mask"
            )
        stats = {
            **counts,
            "splits": {name: len(split) for name, split in splits.items()},
            "texts_without_ordinary_tokens": without,
            "tokenizer": {
                "trained_on_train_split": backbone is None and model_dir is None,
                "vocab_size": tokenizer.get_vocab_size(),
            },
            "max_length": max_length,
            "max_length_chosen_by": "data.max_length" if d.max_length else f"the {d.max_length_quantile:g} quantile",
            "truncated": {name: sum(len(one) > max_length for one in full[name]) for name in texts},
            "mask_probability": d.mask_probability,
        }
        log.info(
            "data: %d texts (train %d, val %d, test %d), vocabulary %d, max_length %d; %g of the tokens masked",
            sum(len(s) for s in splits.values()),
            *(len(splits[name]) for name in ("train", "val", "test")),
            tokenizer.get_vocab_size(),
            max_length,
            d.mask_probability,
        )
        train = splits["train"]
        encoding = Encoding(tokenizer, max_length)
        return TaskData(
            splits=splits,
            strata=np.zeros(len(train), dtype=np.int64),  # one group: no class to keep in proportion
            chance_loss=_chance_loss(train.ids, ordinary),
            label_names=train.texts,
            max_length=max_length,
            new_model=partial(_new_model, encoding, backbone),
            save=partial(_save_files, encoding),
            prepared=encoding,
            stats=stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        mask = batch["attention_mask"].to(torch.bool)
        hidden = model.encoder(batch["input_ids"], mask)  # (B, T, D)
        chosen = batch["mlm_labels"] != IGNORED  # (B, T): the masked positions
        logits = model.token_logits(hidden[chosen]).float()  # (N, V): only where a token is to be guessed
        gold = batch["mlm_labels"][chosen]
        loss = F.cross_entropy(logits, gold, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(logits, gold, reduction="none")
            rows = chosen.nonzero()[:, 0]  # the text of every masked position
            counts = chosen.sum(dim=1).clamp_min(1)
            losses = torch.zeros(chosen.shape[0], device=nll.device).index_add_(0, rows, nll) / counts
            wrong = torch.zeros_like(losses).index_add_(0, rows, (logits.argmax(-1) != gold).float())
            correct = wrong == 0
        labels = batch["labels"]
        return StepOut(
            loss=loss,
            losses=losses,
            correct=correct,
            outputs=logits,
            hidden=hidden,
            mask=mask,
            predicted=torch.where(correct, labels, torch.full_like(labels, -1)),
        )

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        return evaluate_masked(model, split, batch_size, bf16)


@torch.inference_mode()
def evaluate_masked(model: Any, split: TextSplit, batch_size: int = 256, bf16: bool = False) -> dict[str, Any]:
    """Masked-token accuracy, loss per masked token and perplexity of ``model`` on ``split`` (its fixed masks)."""
    if not len(split):
        raise AttncoachError("no evaluation texts: the split is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        loss_sum, right, tokens = 0.0, 0, 0
        order = np.argsort(split.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            batch = {k: v.to(device) for k, v in split.batch(order[start : start + batch_size].tolist()).items()}
            chosen = batch["mlm_labels"] != IGNORED
            with autocast_for(device, bf16):
                hidden = model.encoder(batch["input_ids"], batch["attention_mask"])
                logits = model.token_logits(hidden[chosen]).float()
            gold = batch["mlm_labels"][chosen]
            loss_sum += F.cross_entropy(logits, gold, reduction="sum").item()
            right += int((logits.argmax(-1) == gold).sum())
            tokens += int(gold.numel())
    finally:
        model.train(was_training)
    loss = loss_sum / tokens
    return {
        "n": len(split),
        "masked_tokens": tokens,
        "loss": loss,
        "masked_accuracy": right / tokens,
        "perplexity": math.exp(min(loss, 700.0)),  # a diverged model's loss would overflow
    }


def _read_texts(d: DataConfig, seed: int) -> tuple[dict[str, list[str]], dict[str, list[int]], dict[str, Any]]:
    """The texts and source lines of each split, and the counts for ``data_stats.json``."""
    if d.path is None:  # a built-in corpus: split as text_classification splits it
        rows = read_rows(d)
        usable, dropped = drop_unusable(rows, source_name(d))
        examples, duplicates = dedupe(usable)
        splits = split_examples(examples, d.val_fraction, d.test_fraction, seed, d.label_column)
        counts = {"source": source_name(d), "rows_read": len(rows), "dropped_blank_text": dropped.blank_text}
        texts = {name: [e.text for e in split] for name, split in splits.items()}
        lines = {name: [e.line for e in split] for name, split in splits.items()}
        return texts, lines, {**counts, "duplicates_removed": duplicates, "split_by": "as text_classification"}
    first_line: dict[str, int] = {}
    try:
        stream = TextStream(Path(d.path), d.encoding, d.text_column)
        if d.format is not None:
            stream.suffix = f".{d.format}"  # data.format names the layout whatever the file's suffix
        for text in stream:  # blank texts are skipped by the stream
            first_line.setdefault(text, stream.line)
    except AttncoachError as exc:  # the stream names predict's flags; a run is set by its config keys
        message = str(exc).replace("--text-column", "data.text_column").replace("--encoding", "data.encoding")
        raise AttncoachError(message) from None
    if not first_line:
        raise AttncoachError(
            f"no text in {d.path}: pretraining needs texts (one per line, or a '{d.text_column}' column)"
        )
    unique = list(first_line)
    rng = np.random.default_rng(seed % 2**32)
    order = rng.permutation(len(unique))
    n_test = max(1, round(d.test_fraction * len(unique)))
    n_val = max(1, round(d.val_fraction * len(unique)))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    texts = {name: [unique[i] for i in sorted(part)] for name, part in parts.items()}
    lines = {name: [first_line[t] for t in split] for name, split in texts.items()}
    counts = {"source": d.path, "texts_read": len(unique), "split_by": f"random, seed {seed}"}
    return texts, lines, counts


def _source(d: DataConfig) -> str:
    return d.path if d.path is not None else f"the built-in corpus {d.builtin or DEFAULT_BUILTIN}"


def _ordinary_tokens(tokenizer: Tokenizer) -> np.ndarray:
    """Per token id, whether it is an ordinary token (not ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``
    or another added special token)."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    ordinary = np.ones(size, dtype=bool)
    specials = {tokenizer.token_to_id(t) for t in (PAD, UNK, CLS, SEP, MASK)}
    specials |= {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}
    ordinary[[i for i in specials if i is not None and i < size]] = False
    return ordinary


def _mask_id(tokenizer: Tokenizer) -> int:
    mask_id = tokenizer.token_to_id(MASK)
    if mask_id is None:
        raise AttncoachError(f"the tokenizer has no {MASK} token, which masked-language modelling needs")
    return mask_id


def _chance_loss(ids: Sequence[np.ndarray], ordinary: np.ndarray) -> float | None:
    """Cross-entropy of always guessing the training texts' ordinary token frequencies."""
    tokens = np.concatenate(list(ids))
    tokens = tokens[ordinary[tokens]]
    if not len(tokens):
        return None
    p = np.bincount(tokens).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def _new_model(encoding: Encoding, backbone: Any, m: Any) -> MaskedLanguageModel:
    """A fresh model for the model section ``m``: the backbone's encoder (and MLM head, when it has one), or
    from scratch."""
    if backbone is None:
        tokenizer = encoding.tokenizer
        enc = encoder_config(
            m, vocab_size=tokenizer.get_vocab_size(), max_position=encoding.max_length, pad_id=pad_token_id(tokenizer)
        )
        return MaskedLanguageModel(enc)
    model = MaskedLanguageModel(backbone.encoder_config)
    model.encoder.load_state_dict(backbone.encoder_state, strict=True)
    if backbone.mlm_head_state is not None:  # continued pretraining of a masked_lm run
        model.mlm_head.load_state_dict(backbone.mlm_head_state)
    return model


def _save_files(encoding: Encoding, model_dir: Path) -> None:
    save_tokenizer(encoding.tokenizer, Path(model_dir) / TOKENIZER_FILE)


__all__ = ["IGNORED", "MaskedLMTask", "Masking", "TextSplit", "evaluate_masked"]
