"""A greedy black-box word-importance attack with character edits (after DeepWordBug, Gao et al. 2018).

For one correctly classified text, the attack

1. scores each editable word by how much the gold class's probability drops when the word is
   deleted (one query per word, in one batch with the unperturbed text, which is the first query);
2. goes through the words, most important first, trying one character edit per operation
   (swap, insert, delete, keyboard neighbour: :func:`attncoach.robust.perturb.edit_word`) on the
   word, in one batch, and keeps the edit that lowers the gold probability most, if it lowers it;
3. stops when the prediction flips (a success) or the query budget is spent (a failure).

Every text sent to the model is one query. The attack sees only probabilities (black box): it
is written as a generator per example that yields the texts it needs scored, so that
:func:`greedy_attack` can score many examples' queries in one model call.

Example:
    >>> def probabilities(texts):  # a toy model: "good" makes a text positive
    ...     p = np.array([0.9 if "good" in t.split() else 0.1 for t in texts])
    ...     return np.stack([1 - p, p], axis=1)
    >>> [result] = greedy_attack(["a good day"], [1], probabilities, budget=20, rngs=[np.random.default_rng(0)])
    >>> result.success, result.edited, result.adversarial != "a good day"
    (True, 1, True)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from attncoach.robust.perturb import CHAR_OPS, edit_word, editable

Probabilities = Callable[[list[str]], np.ndarray]
"""A black-box model: texts -> class probabilities, shape (len(texts), classes)."""

AttackSteps = Generator[list[str], np.ndarray, "AttackResult"]


@dataclass(frozen=True)
class AttackResult:
    """The outcome of the attack on one text.

    Attributes:
        text: the text attacked.
        gold: its gold class id.
        success: whether the prediction flipped within the budget.
        skipped: the model got the text wrong already (nothing to attack; not a success).
        queries: texts sent to the model, the unperturbed one included.
        words: whitespace-separated words of the text.
        edited: words given a character edit in ``adversarial``.
        adversarial: the text with the edits kept (the text itself when none was kept).
        predicted: the class the model gives ``adversarial``.
        gold_probability: the gold class's probability for ``adversarial``.
    """

    text: str
    gold: int
    success: bool
    skipped: bool
    queries: int
    words: int
    edited: int
    adversarial: str
    predicted: int
    gold_probability: float


def attack_steps(
    text: str, gold: int, budget: int, rng: np.random.Generator, ops: Sequence[str] = CHAR_OPS
) -> AttackSteps:
    """The attack on one text as a generator: it yields the texts it needs scored and is sent their
    probabilities (one row per text, in order); it returns the :class:`AttackResult`.

    Importance scoring stops short of the budget so that edits of at least one word can be tried;
    words left unscored are tried after the scored ones, in text order.
    """
    words = text.split()
    targets = [i for i, w in enumerate(words) if editable(w)]
    scored = targets[: max(0, budget - 1 - len(ops))]
    probs = yield [text, *(" ".join(words[:i] + words[i + 1 :]) for i in scored)]
    queries = 1 + len(scored)
    predicted = int(probs[0].argmax())
    best = float(probs[0, gold])
    if predicted != gold:
        return AttackResult(text, gold, False, True, queries, len(words), 0, text, predicted, best)
    drop = best - probs[1:, gold]
    order = [scored[j] for j in np.argsort(-drop, kind="stable")] + targets[len(scored) :]
    current = list(words)
    edited = 0
    for i in order:
        left = budget - queries
        if left <= 0:
            break
        candidates = [c for c in dict.fromkeys(edit_word(words[i], op, rng) for op in ops) if c != words[i]][:left]
        if not candidates:
            continue
        probs = yield [" ".join(current[:i] + [c] + current[i + 1 :]) for c in candidates]
        queries += len(candidates)
        pick = int(probs[:, gold].argmin())
        if probs[pick, gold] >= best:
            continue
        current[i], best, edited = candidates[pick], float(probs[pick, gold]), edited + 1
        predicted = int(probs[pick].argmax())
        if predicted != gold:
            return AttackResult(
                text, gold, True, False, queries, len(words), edited, " ".join(current), predicted, best
            )
    return AttackResult(text, gold, False, False, queries, len(words), edited, " ".join(current), predicted, best)


def greedy_attack(
    texts: Sequence[str],
    gold: Sequence[int],
    probabilities: Probabilities,
    budget: int,
    rngs: Sequence[np.random.Generator],
    ops: Sequence[str] = CHAR_OPS,
    concurrent: int = 64,
    done: Optional[Callable[[int], None]] = None,
) -> list[AttackResult]:
    """Attack every text (see the module docstring), ``concurrent`` at a time, their queries in one call.

    Args:
        texts: texts the model classifies correctly (one it gets wrong comes back ``skipped``).
        gold: their gold class ids.
        probabilities: the model under attack.
        budget: the most queries per text (at least 1: the unperturbed text).
        rngs: one random generator per text, drawn from for the character edits.
        ops: the character edits tried on each word.
        concurrent: texts attacked at once (their queries share a model call).
        done: called with the number of texts finished, after each model call that finishes some.

    Returns:
        One :class:`AttackResult` per text, in order.
    """
    if budget < 1:
        raise ValueError(f"the query budget must be at least 1, got {budget}")
    results: list[Optional[AttackResult]] = [None] * len(texts)
    waiting = iter(range(len(texts)))
    active: dict[int, tuple[AttackSteps, list[str]]] = {}

    def advance(k: int, steps: AttackSteps, probs: Optional[np.ndarray]) -> None:
        try:
            active[k] = (steps, steps.send(probs))  # None starts it
        except StopIteration as stop:
            results[k] = stop.value

    def refill() -> None:
        while len(active) < concurrent:
            k = next(waiting, None)
            if k is None:
                return
            advance(k, attack_steps(texts[k], int(gold[k]), budget, rngs[k], ops), None)

    refill()
    finished = 0
    while active:
        batch = list(active.items())
        probs = np.asarray(probabilities([t for _, (_, queued) in batch for t in queued]))
        at = 0
        for k, (steps, queued) in batch:
            del active[k]
            advance(k, steps, probs[at : at + len(queued)])
            at += len(queued)
        refill()
        now = sum(r is not None for r in results)
        if done is not None and now > finished:
            done(now)
        finished = now
    return [r for r in results if r is not None]


def attack_summary(results: Sequence[AttackResult], budget: int, shown: int = 3) -> dict[str, Any]:
    """Success rate, queries per success, fraction of words edited in successes, and the first
    ``shown`` adversarial texts, JSON-ready.

    Examples the model already got wrong (``skipped``) are not counted as attacked.
    """
    attacked = [r for r in results if not r.skipped]
    won = [r for r in attacked if r.success]
    return {
        "ran": True,
        "query_budget": budget,
        "attacked": len(attacked),
        "skipped": len(results) - len(attacked),
        "successes": len(won),
        "success_rate": len(won) / len(attacked) if attacked else 0.0,
        "mean_queries": float(np.mean([r.queries for r in attacked])) if attacked else None,
        "mean_queries_per_success": float(np.mean([r.queries for r in won])) if won else None,
        "mean_fraction_words_edited": float(np.mean([r.edited / r.words for r in won])) if won else None,
        "examples": [
            {
                "text": r.text,
                "adversarial": r.adversarial,
                "gold": r.gold,
                "predicted": r.predicted,
                "queries": r.queries,
            }
            for r in won[:shown]
        ],
    }


__all__ = ["AttackResult", "Probabilities", "attack_steps", "attack_summary", "greedy_attack"]
