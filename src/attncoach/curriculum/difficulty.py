"""Difficulty scorers: one number per training example, higher = harder.

A scorer is a small registered class with ``fit`` (corpus statistics, optional) and
``score(batch, outputs)``, which returns one score per example of a batch. Scorers that
read a model's outputs (``needs_model = True``) are computed after a short probe run
(:mod:`attncoach.curriculum.probe`); the others from the tokens alone. Either way each
example is scored once and the scores are cached in the run directory
(``difficulty.json``), so a resumed run uses the very same ones.

| scorer | needs a model | score | source |
|---|---|---|---|
| ``length`` | no | tokens in the example | Bengio et al. 2009; Platanios et al. 2019 |
| ``rarity`` | no | mean -log unigram frequency of its tokens | Platanios et al. 2019 (word rarity) |
| ``random`` | no | a seeded uniform draw (a baseline for pruning) | |
| ``loss`` | yes | cross-entropy under the probe model | Kumar et al. 2010 (self-paced) |
| ``el2n`` | yes | ‖softmax(logits) − onehot(label)‖₂ early in training | Paul et al. 2021 |
| ``forgetting`` | yes | correct → wrong transitions across the probe's scoring passes; never learned ranks above all | Toneva et al. 2019 |

Example:
    >>> import torch
    >>> scorer = SCORERS["el2n"]()
    >>> batch = {"labels": torch.tensor([0, 1]), "index": torch.tensor([0, 1])}
    >>> logits = torch.tensor([[4.0, -4.0], [4.0, -4.0]])
    >>> out = StepOut(loss=torch.tensor(0.0), losses=torch.zeros(2), correct=torch.tensor([True, False]), outputs=logits)
    >>> scorer.score(batch, out).round(2).tolist()
    [0.0, 1.41]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from attncoach.tasks.base import StepOut

SCORERS: dict[str, type[DifficultyScorer]] = {}


def register_scorer(name: str) -> Callable[[type[DifficultyScorer]], type[DifficultyScorer]]:
    """Class decorator: register a scorer under ``name`` (selectable as ``curriculum.scorer``)."""

    def wrap(cls: type[DifficultyScorer]) -> type[DifficultyScorer]:
        cls.name = name
        SCORERS[name] = cls
        return cls

    return wrap


class DifficultyScorer(ABC):
    """Scores examples by difficulty (higher = harder).

    Attributes:
        name: the registered name.
        needs_model: ``score`` reads the model's logits (computed after a probe run).
        reads_token_ids: ``fit`` and ``score`` read token ids (a task whose inputs are not tokens,
            such as images, cannot use it).
    """

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False
    reads_token_ids: ClassVar[bool] = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, ids: Sequence[Sequence[int]]) -> None:
        """Learn corpus statistics from the training examples' token ids (default: nothing)."""

    @abstractmethod
    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        """Scores of the batch's examples.

        Args:
            batch: ``input_ids`` (B, T), ``attention_mask`` (B, T), ``labels`` (B,) and
                ``index`` (B,), the examples' positions in the training split.
            outputs: the task's step outcome (per-example loss, correctness, outputs) when
                ``needs_model``, else None.

        Returns:
            float64 array of shape (B,).
        """


@register_scorer("length")
class LengthScorer(DifficultyScorer):
    """Longer examples are harder."""

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        return batch["attention_mask"].sum(dim=1).double().cpu().numpy()


@register_scorer("rarity")
class RarityScorer(DifficultyScorer):
    """Examples made of rare tokens are harder: mean of -log p(token) over the example."""

    reads_token_ids = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.neg_log_p: np.ndarray | None = None

    def fit(self, ids: Sequence[Sequence[int]]) -> None:
        size = 1 + max((max(x) for x in ids if len(x)), default=0)
        counts = np.zeros(size, dtype=np.float64)
        for x in ids:
            np.add.at(counts, np.asarray(x, dtype=np.int64), 1.0)
        self.neg_log_p = -np.log((counts + 1.0) / (counts.sum() + size))  # add-one smoothing

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        if self.neg_log_p is None:
            raise RuntimeError("RarityScorer.fit must be called before score")
        ids = batch["input_ids"].cpu().numpy()
        mask = batch["attention_mask"].cpu().numpy().astype(np.float64)
        table = self.neg_log_p
        values = table[np.minimum(ids, len(table) - 1)] * mask  # (B, T)
        return values.sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)


@register_scorer("random")
class RandomScorer(DifficultyScorer):
    """A seeded random score per example: the baseline any useful scorer must beat."""

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        index = batch["index"].cpu().numpy()
        return np.array([np.random.default_rng([self.seed % 2**32, int(i)]).random() for i in index])


@register_scorer("loss")
class LossScorer(DifficultyScorer):
    """Cross-entropy of the example under the model."""

    needs_model = True

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        return outputs.losses.double().cpu().numpy()


@register_scorer("el2n")
class EL2NScorer(DifficultyScorer):
    """Error L2-norm: distance of the predicted distribution from the one-hot label (Paul et al. 2021)."""

    needs_model = True

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        logits = outputs.outputs
        labels = batch["labels"].to(logits.device)
        probs = F.softmax(logits.float(), dim=-1)  # (B, C)
        error = probs - F.one_hot(labels, probs.shape[-1]).float()
        return error.norm(dim=-1).double().cpu().numpy()


@register_scorer("forgetting")
class ForgettingScorer(DifficultyScorer):
    """Forgetting events (Toneva et al. 2019): correct at one scoring pass, wrong at the next.

    It keeps per-example counts across calls, so the probe scores every example several
    times while it trains. An example never predicted correctly scores the number of times
    it was scored, which is more than any learned example can reach: never learned ranks
    as the most forgettable, as in the paper.
    """

    needs_model = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.previous: dict[int, bool] = {}
        self.events: dict[int, int] = {}
        self.learned: dict[int, bool] = {}
        self.times: dict[int, int] = {}

    def score(self, batch: dict[str, torch.Tensor], outputs: StepOut | None) -> np.ndarray:
        correct = outputs.correct.cpu().numpy()
        scores = []
        for i, ok in zip(batch["index"].tolist(), correct.tolist()):
            if self.previous.get(i) and not ok:
                self.events[i] = self.events.get(i, 0) + 1
            self.previous[i] = ok
            self.learned[i] = self.learned.get(i, False) or ok
            self.times[i] = self.times.get(i, 0) + 1
            scores.append(self.events.get(i, 0) if self.learned[i] else self.times[i])
        return np.asarray(scores, dtype=np.float64)


def make_scorer(name: str, seed: int = 0) -> DifficultyScorer:
    """The registered scorer ``name`` (unknown names are refused by the config check)."""
    return SCORERS[name](seed)


def describe_scores(scores: np.ndarray) -> dict[str, Any]:
    """Quantiles of a score array, for the log and difficulty.json."""
    if len(scores) == 0:
        return {}
    q = np.quantile(scores, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {name: round(float(v), 6) for name, v in zip(("min", "q25", "median", "q75", "max"), q)}
