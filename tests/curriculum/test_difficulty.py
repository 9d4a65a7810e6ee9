"""Difficulty scorers: contract over every registered scorer, and what each one measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attncoach.curriculum.difficulty import SCORERS, make_scorer
from attncoach.data.batching import collate
from attncoach.tasks import TASKS


def _out(logits, labels=None):
    """What the text_classification task's step gives the scorers for these logits."""
    if logits is None:
        return None
    batch = {"labels": torch.tensor(LABELS if labels is None else labels)}
    task = TASKS["text_classification"]()

    class Model:  # the logits as a model: encoder = identity, head = the given logits
        encoder = staticmethod(lambda ids, mask: None)
        head = staticmethod(lambda hidden, mask: logits)

    return task.step(
        Model(), {**batch, "input_ids": torch.zeros(len(logits), 1), "attention_mask": torch.ones(len(logits), 1)}
    )


def _batch(ids, labels):
    batch = collate(ids, labels)
    batch["index"] = torch.arange(len(ids))
    return batch


IDS = [[2, 5, 5, 3], [2, 9, 3], [2, 5, 6, 7, 8, 3]]
LABELS = [0, 1, 1]


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_every_scorer_gives_one_finite_score_per_example(name):
    scorer = make_scorer(name, seed=0)
    scorer.fit(IDS)
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-3.0, 3.0]]) if scorer.needs_model else None
    scores = scorer.score(_batch(IDS, LABELS), _out(logits))
    assert isinstance(scores, np.ndarray) and scores.shape == (3,) and np.isfinite(scores).all()
    again = make_scorer(name, seed=0)
    again.fit(IDS)
    assert np.array_equal(again.score(_batch(IDS, LABELS), _out(logits)), scores), "deterministic for a seed"


def test_length_and_rarity():
    length = make_scorer("length")
    assert length.score(_batch(IDS, LABELS), None).tolist() == [4, 3, 6]
    rarity = make_scorer("rarity")
    rarity.fit(IDS)
    scores = rarity.score(_batch(IDS, LABELS), None)
    # example 0 is made of the most frequent tokens (2, 5, 5, 3); example 2 holds four tokens seen once
    assert scores[0] < scores[1] < scores[2]


def test_model_scorers_rank_confident_mistakes_hardest():
    logits = torch.tensor([[4.0, -4.0], [0.0, 0.0], [4.0, -4.0]])  # right & sure, unsure, wrong & sure
    batch = _batch(IDS, LABELS)
    for name in ("loss", "el2n"):
        scores = make_scorer(name).score(batch, _out(logits))
        assert scores[0] < scores[1] < scores[2], name
    assert make_scorer("el2n").score(batch, _out(logits))[0] == pytest.approx(0.0, abs=1e-3)


def test_forgetting_counts_flips_and_ranks_never_learned_highest():
    scorer = make_scorer("forgetting")
    batch = _batch(IDS, LABELS)
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # examples 0, 1 right; 2 wrong
    wrong = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # example 0 forgotten
    for logits in (right, wrong, right, wrong):
        scores = scorer.score(batch, _out(logits))
    assert scores.tolist() == [2, 0, 4]  # two forgetting events; never forgotten; never learned (4 passes)
