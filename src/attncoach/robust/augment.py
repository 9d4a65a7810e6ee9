"""Training texts perturbed on the fly: word dropout and swap, EDA, character noise (``augment:`` in the config).

Each example of a training batch is, with probability ``augment.p``, replaced by a perturbed
copy of its raw text, re-encoded exactly as the data step encoded it (the run's tokenizer, its
normalisation and special tokens, truncation to ``max_length`` keeping the closing ``[SEP]``).
The operations whose rate is above 0 are applied one after the other in this fixed order:

1. ``word_dropout`` (:func:`~attncoach.robust.perturb.word_dropout`),
2. ``word_swap`` (:func:`~attncoach.robust.perturb.word_swap`),
3. ``eda``: one of EDA's random insertion, swap or deletion
   (:func:`~attncoach.robust.perturb.eda`); insertion draws its words from the **training
   vocabulary**, the distinct editable words of the train split's raw texts, built once,
4. ``char_noise`` with ``char_ops`` (:func:`~attncoach.robust.perturb.char_noise`), last, so
   that its rate is the share of the words the model finally sees that carry a typo.

The random generator of an example is a pure function of ``(train.seed, step, example index)``:
a run killed and resumed sees exactly the perturbations of one never interrupted, and two
runs with the same seed see the same ones. Nothing is stored in checkpoints.

Example:
    >>> augmenter = make_augmenter(cfg, data)  # doctest: +SKIP
    >>> batch = augmenter.batch(data.splits["train"], [4, 8, 15], step=16)  # doctest: +SKIP
    >>> sorted(batch)  # doctest: +SKIP
    ['attention_mask', 'input_ids', 'labels']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer
from torch import Tensor

from attncoach.config import AugmentConfig, RunConfig
from attncoach.data.batching import EncodedSplit, collate
from attncoach.data.prepare import PreparedData
from attncoach.data.tokenizer import encode_texts
from attncoach.errors import AttncoachError
from attncoach.robust.perturb import char_noise, eda, editable, word_dropout, word_swap
from attncoach.tasks import TaskData

log = logging.getLogger("attncoach")

Operation = Callable[[str, np.random.Generator], str]


def operations(cfg: AugmentConfig, vocabulary: Sequence[str] = ()) -> dict[str, Operation]:
    """Every operation with its configured rate, by config key, in the order they apply."""
    return {
        "word_dropout": lambda text, rng: word_dropout(text, cfg.word_dropout, rng),
        "word_swap": lambda text, rng: word_swap(text, cfg.word_swap, rng),
        "eda": lambda text, rng: eda(text, cfg.eda, rng, vocabulary),
        "char_noise": lambda text, rng: char_noise(text, cfg.char_noise, rng, cfg.char_ops),
    }


class Augmenter:
    """Perturbs and re-encodes the texts of training batches; see the module docstring.

    Args:
        cfg: the ``augment`` section (``p`` > 0 and at least one rate > 0).
        seed: the run's ``train.seed``.
        tokenizer: the tokenizer the splits were encoded with.
        max_length: the most token ids per example, special tokens included.
        vocabulary: the words EDA's random insertion draws from.
    """

    def __init__(
        self, cfg: AugmentConfig, seed: int, tokenizer: Tokenizer, max_length: int, vocabulary: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg
        self.seed = seed % 2**32  # numpy's SeedSequence takes non-negative entropy
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ops = {name: op for name, op in operations(cfg, list(vocabulary)).items() if getattr(cfg, name) > 0}

    def rng(self, step: int, index: int) -> np.random.Generator:
        """The generator of example ``index`` at ``step``: the same for the same (seed, step, index)."""
        return np.random.default_rng([self.seed, step, index])

    def perturb(self, text: str, rng: np.random.Generator) -> str:
        """``text`` through every operation whose rate is above 0, in the order of :func:`operations`."""
        for op in self.ops.values():
            text = op(text, rng)
        return text

    def texts(self, split: EncodedSplit, index: Sequence[int], step: int) -> dict[int, str]:
        """The perturbed texts of the batch ``index`` at ``step``, by row (rows left as they were are absent)."""
        changed: dict[int, str] = {}
        for row, i in enumerate(index):
            rng = self.rng(step, int(i))
            if rng.random() < self.cfg.p:
                text = self.perturb(split.texts[i], rng)
                if text != split.texts[i]:
                    changed[row] = text
        return changed

    def batch(self, split: EncodedSplit, index: Sequence[int], step: int) -> dict[str, Tensor]:
        """``split.batch(index)``, with the perturbed examples' token ids in place of their clean ones.

        Args:
            split: the train split.
            index: the example indices of the batch.
            step: the training step the batch is for.

        Returns:
            The keys and dtypes of ``split.batch(index)``; ``input_ids`` and ``attention_mask``
            as wide as the longest example after perturbation.
        """
        batch = split.batch(index)
        changed = self.texts(split, index, step)
        if not changed:
            return batch
        ids = [split.ids[i] for i in index]
        for row, new in zip(changed, encode_texts(self.tokenizer, list(changed.values()), self.max_length)):
            ids[row] = new
        batch.update(collate(ids))  # input_ids and attention_mask, padded as split.batch pads them
        return batch

    def describe(self) -> str:
        """One line: the probability and the rates, in the order they apply."""
        rates = []
        for op in self.ops:
            rate = f"{op} {getattr(self.cfg, op):g}"
            rates.append(f"{rate} ({', '.join(self.cfg.char_ops)})" if op == "char_noise" else rate)
        return f"augmentation on: p {self.cfg.p:g}; {', then '.join(rates)}"


def training_vocabulary(texts: Sequence[str]) -> list[str]:
    """The distinct editable words of ``texts`` (whitespace-separated, as written), sorted."""
    return sorted({word for text in texts for word in text.split() if editable(word)})


def make_augmenter(cfg: RunConfig, data: TaskData) -> Augmenter | None:
    """The augmenter of the run, or None when ``augment.p`` is 0.

    Args:
        cfg: the run configuration (``augment`` and ``train.seed``).
        data: the task's data; its train split must hold texts (``text_classification``).

    Raises:
        AttncoachError: the task's data is not encoded text (refused at config time already).
    """
    if cfg.augment.p == 0:
        return None
    prepared = data.prepared
    if not isinstance(prepared, PreparedData):
        raise AttncoachError(f"config key 'augment.p' must be 0 for task {cfg.task}: its examples are not texts")
    train = data.splits["train"]
    vocabulary = training_vocabulary(train.texts) if cfg.augment.eda > 0 else []
    augmenter = Augmenter(cfg.augment, cfg.train.seed, prepared.tokenizer, data.max_length, vocabulary)
    log.info("%s", augmenter.describe())
    return augmenter


__all__ = ["Augmenter", "make_augmenter", "operations", "training_vocabulary"]
