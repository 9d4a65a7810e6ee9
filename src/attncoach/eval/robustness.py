"""The robustness report of a text classifier: noisy test sets, a black-box attack, calibration, groups.

``attncoach robustness RUN`` measures, on the run's test split (or a labelled file):

- macro-F1, accuracy and expected calibration error (15 bins; raw softmax, and with the
  model's temperature when its directory has ``calibration.json``) on the clean texts, with
  character noise on 10 % and 20 % of the words, and with 10 % of the words dropped; each
  perturbation seeded per example from (seed, condition, example index);
- the greedy word-importance attack (:mod:`attncoach.robust.attack`) on the first N correctly
  classified examples in an order drawn from the seed, and TextAttack's DeepWordBug recipe when
  ``textattack`` is installed and runs offline;
- per-group macro-F1 and accuracy on the clean texts when the data has a group column.

Example:
    >>> clf = load_model("runs/tweets/model")                                   # doctest: +SKIP
    >>> report = robustness_report(clf, LabelledTexts(texts, gold, clf.labels, "test"), seed=0)  # doctest: +SKIP
    >>> [row["name"] for row in report["conditions"]]                           # doctest: +SKIP
    ['clean', 'char_noise_10', 'char_noise_20', 'word_dropout_10']
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from attncoach.data.tokenizer import encode_texts
from attncoach.eval.deepwordbug import deepwordbug_row
from attncoach.models.saved import predict_logits
from attncoach.robust.attack import attack_summary, greedy_attack
from attncoach.robust.perturb import char_noise, word_dropout
from attncoach.tasks.metrics import classification_metrics, expected_calibration_error

log = logging.getLogger("attncoach")

ECE_BINS = 15


@dataclass(frozen=True)
class Condition:
    """One test condition: a name, what it is, and the perturbation of each text (None: the clean text)."""

    name: str
    description: str
    perturb: Optional[Callable[[str, np.random.Generator], str]] = None


CONDITIONS = (
    Condition("clean", "clean test set"),
    Condition("char_noise_10", "character noise on 10 % of words", lambda t, rng: char_noise(t, 0.1, rng)),
    Condition("char_noise_20", "character noise on 20 % of words", lambda t, rng: char_noise(t, 0.2, rng)),
    Condition("word_dropout_10", "word dropout, 10 % of words", lambda t, rng: word_dropout(t, 0.1, rng)),
)


@dataclass
class LabelledTexts:
    """The texts a report is measured on.

    Attributes:
        texts: the raw texts.
        gold: their class ids, shape (N,).
        labels: the class names; index = class id.
        source: how the report names them (e.g. "test split of runs/x").
        groups: each text's group (empty: no group column).
        group_column: the column the groups came from.
    """

    texts: list[str]
    gold: np.ndarray
    labels: list[str]
    source: str
    groups: list[str] = field(default_factory=list)
    group_column: Optional[str] = None


def example_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random generator of example ``index`` under ``stream`` (a condition's name, or "attack")."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), index])


def classifier_logits(clf: Any, batch_size: int = 256) -> Callable[[list[str]], np.ndarray]:
    """``texts -> logits`` (N, C) of a loaded classifier (:class:`attncoach.models.saved.SavedClassifier`).

    The raw logits, without any temperature the model directory holds: the report applies it itself.
    """

    def logits(texts: list[str]) -> np.ndarray:
        ids = encode_texts(clf.tokenizer, texts, clf.max_length)
        if not ids:
            return np.zeros((0, len(clf.labels)), dtype=np.float32)
        return predict_logits(clf.model, ids, batch_size, clf.device).numpy()

    return logits


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=-1).numpy()


def robustness_report(
    logits: Callable[[list[str]], np.ndarray],
    data: LabelledTexts,
    seed: int = 0,
    attack_examples: int = 500,
    query_budget: int = 50,
    temperature: Optional[float] = None,
    deepwordbug: bool = True,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> dict[str, Any]:
    """Measure ``logits`` (a black box: texts -> logits) on ``data`` clean, perturbed and attacked.

    Args:
        logits: the model (see :func:`classifier_logits`).
        data: the labelled texts.
        seed: seeds every perturbation and the order of the attacked examples.
        attack_examples: how many correctly classified examples the attacks take (0: no attack).
        query_budget: the most model queries per attacked example.
        temperature: the model's softmax temperature, for the calibrated ECE (None: not calibrated).
        deepwordbug: also run TextAttack's DeepWordBug recipe on the same examples when it can run
            (:mod:`attncoach.eval.deepwordbug`; otherwise its row says why it did not).
        progress: called as ``progress(done, total)`` while the attack runs.

    Returns:
        ``{"source", "examples", "seed", "temperature", "conditions": [...], "attacks": [...],
        "groups": {...} | None}``, JSON-ready.
    """
    conditions, clean_logits = condition_rows(logits, data, seed, temperature)
    predicted = clean_logits.argmax(axis=1)
    attacked = attack_order(data.gold, predicted, seed, attack_examples)
    return {
        "source": data.source,
        "examples": len(data.texts),
        "labels": list(data.labels),
        "seed": seed,
        "temperature": temperature,
        "ece_bins": ECE_BINS,
        "conditions": conditions,
        "attacks": attack_rows(logits, data, attacked, seed, query_budget, deepwordbug, progress),
        "groups": group_metrics(data, predicted),
    }


def condition_rows(
    logits: Callable[[list[str]], np.ndarray], data: LabelledTexts, seed: int, temperature: Optional[float]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """One row per condition of :data:`CONDITIONS` (its drop from clean in macro-F1 points included),
    and the clean logits."""
    rows, clean = [], None
    for condition in CONDITIONS:
        out = logits(_perturbed(data.texts, condition, seed))
        clean = out if clean is None else clean
        rows.append(_condition_row(condition, out, data, temperature))
    for row in rows:
        row["drop_points"] = 100 * (rows[0]["macro_f1"] - row["macro_f1"])
    return rows, clean


def attack_rows(
    logits: Callable[[list[str]], np.ndarray],
    data: LabelledTexts,
    attacked: list[int],
    seed: int,
    budget: int,
    deepwordbug: bool,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> list[dict[str, Any]]:
    """The attacks' rows on the examples at ``attacked``: ours, then DeepWordBug's (ran, or why not)."""
    if not attacked:
        return []
    texts, gold = [data.texts[i] for i in attacked], [int(data.gold[i]) for i in attacked]
    rows = [_greedy_row(logits, texts, gold, attacked, seed, budget, progress)]
    if deepwordbug:
        rows.append(deepwordbug_row(lambda batch: softmax(logits(batch)), texts, gold, budget))
    for row in rows:
        for example in row.get("examples", []):
            example["gold"], example["predicted"] = data.labels[example["gold"]], data.labels[example["predicted"]]
    return rows


def _perturbed(texts: list[str], condition: Condition, seed: int) -> list[str]:
    if condition.perturb is None:
        return list(texts)
    return [condition.perturb(t, example_rng(seed, condition.name, i)) for i, t in enumerate(texts)]


def _condition_row(
    condition: Condition, logits: np.ndarray, data: LabelledTexts, temperature: Optional[float]
) -> dict[str, Any]:
    metrics = classification_metrics(data.gold, logits.argmax(axis=1), data.labels)
    return {
        "name": condition.name,
        "description": condition.description,
        "macro_f1": metrics["macro_f1"],
        "accuracy": metrics["accuracy"],
        "ece": expected_calibration_error(softmax(logits), data.gold, ECE_BINS),
        "ece_calibrated": (
            None
            if temperature is None
            else expected_calibration_error(softmax(logits, temperature), data.gold, ECE_BINS)
        ),
    }


def attack_order(gold: np.ndarray, predicted: np.ndarray, seed: int, count: int) -> list[int]:
    """The first ``count`` correctly classified examples, in an order drawn from ``seed``.

    Example:
        >>> attack_order(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), seed=0, count=2)
        [0, 1]
    """
    order = np.random.default_rng([seed, zlib.crc32(b"attack order")]).permutation(len(gold))
    return [int(i) for i in order if gold[i] == predicted[i]][:count]


def _greedy_row(
    logits: Callable[[list[str]], np.ndarray],
    texts: list[str],
    gold: list[int],
    indices: list[int],
    seed: int,
    budget: int,
    progress: Optional[Callable[[int, int], Any]],
) -> dict[str, Any]:
    """Run the greedy word-importance attack and summarise it as the report's attack row."""
    start = time.perf_counter()
    if progress is not None:
        progress(0, len(texts))
    results = greedy_attack(
        texts,
        gold,
        lambda batch: softmax(logits(batch)),
        budget,
        [example_rng(seed, "attack", i) for i in indices],
        done=None if progress is None else lambda n: progress(n, len(texts)),
    )
    row = attack_summary(results, budget)
    row.update(name="greedy_word_importance", description="greedy word importance, character edits (ours)")
    row["seconds"] = time.perf_counter() - start
    return row


def group_metrics(data: LabelledTexts, predicted: np.ndarray) -> Optional[dict[str, Any]]:
    """Macro-F1 and accuracy per group, and the worst group (lowest macro-F1, then accuracy); None without groups."""
    if not data.groups:
        return None
    groups = np.asarray(data.groups, dtype=object)
    rows = []
    for name in sorted(set(data.groups)):
        inside = groups == name
        metrics = classification_metrics(data.gold[inside], predicted[inside], data.labels)
        rows.append(
            {"group": name, "n": int(inside.sum()), "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"]}
        )
    worst = min(rows, key=lambda r: (r["macro_f1"], r["accuracy"], r["group"]))
    return {"column": data.group_column, "rows": rows, "worst": worst["group"]}


__all__ = [
    "CONDITIONS",
    "Condition",
    "LabelledTexts",
    "attack_order",
    "attack_rows",
    "classifier_logits",
    "condition_rows",
    "example_rng",
    "group_metrics",
    "robustness_report",
    "softmax",
]
