"""Task ``translation``: an encoder-decoder on the elastic blocks, teacher forcing, BLEU as the primary metric.

Each example is a (source, target) sentence pair. Subword vocabularies (BPE or unigram, shared by
both languages or one per side) are trained on the training split. A source is its tokens and
``</s>``; the decoder reads ``<s>`` and the target's tokens and predicts the target's tokens and
``</s>`` (teacher forcing, label smoothing from ``train.label_smoothing``). Training pairs longer
than ``data.max_length`` on either side are left out (and counted); longer val and test sources are
cut.

Evaluation: the teacher-forced loss and token accuracy on the whole split, and BLEU and chrF
(sacrebleu, default tokenisation, with their signatures) of greedy translations of the split's
first ``data.val_translations`` pairs for val (all of them for test); the test split adds the same
scores for beam search (``model.beam_size``, ``model.length_penalty``) as ``bleu_beam`` and
``chrf_beam``. The learning record names each training pair by its source sentence; its "label" is
the reference translation, and "predicted" repeats it when every target token was right under
teacher forcing.

Example:
    >>> task = TASKS["translation"](label_smoothing=0.1)           # doctest: +SKIP
    >>> data = task.build(cfg)                                     # doctest: +SKIP
    >>> out = task.step(model, data.splits["train"].batch([0, 1]))  # doctest: +SKIP
    >>> task.evaluate(model, data.splits["val"], data)["bleu"]      # doctest: +SKIP
    12.3
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attncoach.atomicfile import atomic_write_json
from attncoach.data.parallel import Pair, load_parallel_builtin, read_parallel, split_pairs
from attncoach.data.seq_tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SOURCE_TOKENIZER,
    TARGET_TOKENIZER,
    load_translation_tokenizers,
    train_translation_tokenizers,
)
from attncoach.data.tokenizer import auto_max_length, save_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.saved import autocast_for
from attncoach.models.seq2seq import TranslationModel, batches_by_length, cut_source, pad_ids, translate_ids
from attncoach.tasks.base import StepOut, Task, TaskData, encoder_config, register_task
from attncoach.tasks.translation_metrics import corpus_scores

log = logging.getLogger("attncoach")

DEFAULT_CORPUS = "bible-en-fr"
DECODING_FILE = "decoding.json"


@dataclass
class ParallelSplit:
    """One split of sentence pairs as token ids (index i is one pair).

    Attributes:
        pairs: the pairs as read.
        source_ids: each source's token ids, ending with ``</s>``.
        target_ids: each target's token ids (no specials).
        labels: the index of each pair among the training references (the learning record's gold answer).
        decode_limit: how many of the first pairs :meth:`TranslationTask.evaluate` translates (None: all).
        beam: the beam search width of the test scores (0: greedy only).
        length_penalty: the beam search's length penalty.
    """

    pairs: list[Pair]
    source_ids: list[np.ndarray]
    target_ids: list[np.ndarray]
    labels: np.ndarray = field(default=None)  # type: ignore[assignment]
    decode_limit: int | None = None
    beam: int = 0
    length_penalty: float = 0.6

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = np.arange(len(self.pairs), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def ids(self) -> list[np.ndarray]:
        return self.source_ids

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.source_ids), dtype=np.int64, count=len(self))

    @property
    def texts(self) -> list[str]:
        return [p.source for p in self.pairs]

    @property
    def references(self) -> list[str]:
        return [p.target for p in self.pairs]

    @property
    def lines(self) -> list[int]:
        return [p.line for p in self.pairs]

    def subset(self, indices: Sequence[int] | np.ndarray) -> ParallelSplit:
        keep = np.asarray(indices, dtype=np.int64)
        return ParallelSplit(
            [self.pairs[i] for i in keep],
            [self.source_ids[i] for i in keep],
            [self.target_ids[i] for i in keep],
            self.labels[keep],
            self.decode_limit,
            self.beam,
            self.length_penalty,
        )

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """``input_ids`` / ``attention_mask`` (sources), ``target_in`` (``<s>`` + target), ``target_out``
        (target + ``</s>``) and ``labels``."""
        sources = pad_ids([self.source_ids[i] for i in indices])
        target_in = pad_ids([np.concatenate([[BOS_ID], self.target_ids[i]]) for i in indices])
        target_out = pad_ids([np.concatenate([self.target_ids[i], [EOS_ID]]) for i in indices])
        return {
            "input_ids": sources,
            "attention_mask": sources != PAD_ID,
            "target_in": target_in,
            "target_out": target_out,
            "labels": torch.as_tensor(self.labels[list(indices)]),
        }


@dataclass
class Vocabularies:
    """The source and target tokenizers (the same object when shared) and the longest sequence."""

    source: Any
    target: Any
    max_length: int
    beam: int
    length_penalty: float

    @property
    def shared(self) -> bool:
        return self.source is self.target


@register_task("translation")
class TranslationTask(Task):
    """Translate sentences; see the module docstring."""

    primary = "bleu"
    tracked = ("bleu", "chrf")
    corpus = DEFAULT_CORPUS
    embedded_inputs = False  # a shared table embeds both sides: robust.method is refused rather than perturbing targets
    keys = frozenset(
        {
            "data.val_fraction",
            "data.test_fraction",
            "data.vocab_size",
            "data.min_frequency",
            "data.max_length_quantile",
            "data.max_length_cap",
            "data.source_column",
            "data.target_column",
            "data.subword",
            "data.shared_vocabulary",
            "data.val_translations",
            "model.encoder_layers",
            "model.beam_size",
            "model.length_penalty",
        }
    )

    def build(self, cfg: Any, backbone: Any = None, model_dir: Path | None = None) -> TaskData:
        d, m = cfg.data, cfg.model
        if backbone is not None:
            raise AttncoachError("task translation trains from scratch: model.backbone must be scratch")
        pairs, counts = _read(d)
        splits = split_pairs(pairs, d.val_fraction, d.test_fraction, cfg.train.seed)
        train = splits["train"]
        if model_dir is not None and (Path(model_dir) / SOURCE_TOKENIZER).is_file():
            source_tok, target_tok = load_translation_tokenizers(Path(model_dir))
        else:
            source_tok, target_tok = train_translation_tokenizers(
                [p.source for p in train],
                [p.target for p in train],
                kind=d.subword,
                vocab_size=d.vocab_size,
                shared=d.shared_vocabulary,
                min_frequency=d.min_frequency,
            )
        encoded = {name: _encode(split, source_tok, target_tok) for name, split in splits.items()}
        lengths = [max(len(s), len(t) + 1) for s, t in zip(*encoded["train"])]
        max_length = d.max_length or auto_max_length(lengths, d.max_length_quantile, d.max_length_cap)
        parts, dropped = {}, 0
        for name, (sources, targets) in encoded.items():
            if name == "train":
                keep = [i for i, n in enumerate(lengths) if n <= max_length]
                dropped = len(lengths) - len(keep)
                chosen = [splits[name][i] for i in keep]
                sources, targets = [sources[i] for i in keep], [targets[i] for i in keep]
            else:
                chosen = splits[name]
                sources = [cut_source(s, max_length) for s in sources]
                targets = [t[: max_length - 1] for t in targets]
            parts[name] = ParallelSplit(chosen, sources, targets)
        if not len(parts["train"]):
            raise AttncoachError(f"no training pair fits data.max_length {max_length}: raise it")
        parts["val"].decode_limit = d.val_translations
        parts["test"].beam, parts["test"].length_penalty = m.beam_size, m.length_penalty
        vocab = Vocabularies(source_tok, target_tok, max_length, m.beam_size, m.length_penalty)
        stats = {
            "source": str(d.path) if d.path is not None else (d.builtin or DEFAULT_CORPUS),
            **counts,
            "splits": {name: len(split) for name, split in parts.items()},
            "training_pairs_too_long": dropped,
            "max_length": max_length,
            "max_length_chosen_by": "data.max_length" if d.max_length else f"the {d.max_length_quantile:g} quantile",
            "vocabulary": "shared" if vocab.shared else "separate",
            "source_vocab_size": source_tok.get_vocab_size(),
            "target_vocab_size": target_tok.get_vocab_size(),
        }
        log.info(
            "data: %d pairs (train %d, val %d, test %d); %s %s vocabulary of %d%s; max_length %d%s",
            len(pairs),
            len(parts["train"]),
            len(parts["val"]),
            len(parts["test"]),
            "shared" if vocab.shared else "separate",
            d.subword,
            source_tok.get_vocab_size(),
            "" if vocab.shared else f" + {target_tok.get_vocab_size()}",
            max_length,
            f" ({dropped} longer training pairs left out)" if dropped else "",
        )
        targets = np.concatenate([np.append(t, EOS_ID) for t in parts["train"].target_ids])
        return TaskData(
            splits=parts,
            strata=np.zeros(len(parts["train"]), dtype=np.int64),  # one group: no class to keep in proportion
            chance_loss=_chance_loss(targets, target_tok.get_vocab_size(), self.label_smoothing),
            label_names=parts["train"].references,
            max_length=max_length,
            new_model=partial(_new_model, vocab, m.encoder_layers),
            save=partial(_save_files, vocab),
            prepared=vocab,
            stats=stats,
        )

    def step(self, model: Any, batch: dict[str, Tensor]) -> StepOut:
        source_mask = batch["attention_mask"].to(torch.bool)
        target_mask = batch["target_in"] != PAD_ID
        encoded = model.encode(batch["input_ids"], source_mask)
        hidden = model.decode(batch["target_in"], target_mask, encoded, source_mask)  # (B, T, D)
        logits = model.logits(hidden[target_mask]).float()  # (N, V): every real target position
        gold = batch["target_out"][target_mask]
        loss = F.cross_entropy(logits, gold, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(logits, gold, reduction="none")
            rows = target_mask.nonzero()[:, 0]  # the pair of every position
            counts = target_mask.sum(dim=1).clamp_min(1)
            losses = torch.zeros(target_mask.shape[0], device=nll.device).index_add_(0, rows, nll) / counts
            wrong = torch.zeros_like(losses).index_add_(0, rows, (logits.argmax(-1) != gold).float())
            correct = wrong == 0
        labels = batch["labels"]
        return StepOut(
            loss=loss,
            losses=losses,
            correct=correct,
            outputs=logits,
            hidden=hidden,
            mask=target_mask,
            predicted=torch.where(correct, labels, torch.full_like(labels, -1)),
        )

    def evaluate(
        self, model: Any, split: Any, data: TaskData, batch_size: int = 256, bf16: bool = False
    ) -> dict[str, Any]:
        return evaluate_pairs(model, split, data.prepared.target, batch_size, bf16)


@torch.inference_mode()
def evaluate_pairs(
    model: Any, split: ParallelSplit, target_tok: Any, batch_size: int = 256, bf16: bool = False
) -> dict:
    """Teacher-forced loss and token accuracy on the whole split; BLEU and chrF of its translations (module docstring)."""
    if not len(split):
        raise AttncoachError("no evaluation pairs: the split is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        loss_sum, right, tokens = 0.0, 0, 0
        for index in batches_by_length(split.lengths, batch_size):
            batch = {k: v.to(device) for k, v in split.batch(index).items()}
            mask = batch["target_in"] != PAD_ID
            with autocast_for(device, bf16):
                logits = model(batch["input_ids"], batch["attention_mask"], batch["target_in"], mask)
            logits, gold = logits[mask].float(), batch["target_out"][mask]
            loss_sum += F.cross_entropy(logits, gold, reduction="sum").item()
            right += int((logits.argmax(-1) == gold).sum())
            tokens += int(gold.numel())
        metrics: dict[str, Any] = {"n": len(split), "loss": loss_sum / tokens, "token_accuracy": right / tokens}
        limit = len(split) if split.decode_limit is None else min(split.decode_limit, len(split))
        chosen = list(range(limit))
        references = [split.pairs[i].target for i in chosen]
        greedy = translate_ids(model, [split.source_ids[i] for i in chosen], target_tok, batch_size=batch_size)
        metrics.update(corpus_scores(greedy, references), translated=limit)
        if split.beam > 1:
            beams = translate_ids(
                model, [split.source_ids[i] for i in chosen], target_tok, batch_size, split.beam, split.length_penalty
            )
            scores = corpus_scores(beams, references)
            metrics.update(bleu_beam=scores["bleu"], chrf_beam=scores["chrf"], beam=split.beam)
    finally:
        model.train(was_training)
    return metrics


def _read(d: Any) -> tuple[list[Pair], dict[str, Any]]:
    if d.path is not None:
        return read_parallel(Path(d.path), d.format, d.encoding, d.source_column, d.target_column)
    pairs = load_parallel_builtin(d.builtin or DEFAULT_CORPUS)
    return pairs, {"read": len(pairs)}


def _encode(pairs: Sequence[Pair], source_tok: Any, target_tok: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    sources = [
        np.append(np.asarray(e.ids, dtype=np.int64), EOS_ID) for e in source_tok.encode_batch([p.source for p in pairs])
    ]
    targets = [np.asarray(e.ids, dtype=np.int64) for e in target_tok.encode_batch([p.target for p in pairs])]
    return sources, targets


def _chance_loss(targets: np.ndarray, vocab_size: int, label_smoothing: float) -> float:
    """Cross-entropy of always predicting the training targets' token frequencies."""
    counts = np.bincount(targets, minlength=vocab_size).astype(np.float64)
    p = (1 - label_smoothing) * counts / counts.sum() + label_smoothing / vocab_size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _new_model(vocab: Vocabularies, encoder_layers: int | None, m: Any, backbone: Any = None) -> TranslationModel:
    enc = encoder_config(
        m, vocab_size=vocab.source.get_vocab_size(), max_position=vocab.max_length, type_vocab_size=0, pad_id=PAD_ID
    )
    encoding = encoder_layers if encoder_layers is not None else max(1, m.layers // 2)
    if not 1 <= encoding < m.layers:
        raise AttncoachError(
            f"model.encoder_layers {encoding} must leave the decoder a layer: in [1, {m.layers - 1}] "
            f"(model.layers {m.layers} counts both stacks)"
        )
    target = None if vocab.shared else vocab.target.get_vocab_size()
    return TranslationModel(enc, encoding, target, BOS_ID, EOS_ID)


def _save_files(vocab: Vocabularies, model_dir: Path) -> None:
    """Both tokenizers (the same file twice when shared) and the decoding defaults of ``translate``."""
    save_tokenizer(vocab.source, Path(model_dir) / SOURCE_TOKENIZER)
    save_tokenizer(vocab.target, Path(model_dir) / TARGET_TOKENIZER)
    atomic_write_json(
        Path(model_dir) / DECODING_FILE,
        {"beam": vocab.beam, "length_penalty": vocab.length_penalty, "shared_vocabulary": vocab.shared},
    )


__all__ = ["ParallelSplit", "TranslationTask", "evaluate_pairs"]
