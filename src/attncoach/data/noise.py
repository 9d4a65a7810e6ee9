"""Injected label noise: flip a seeded fraction of the training labels and remember which.

``data.label_noise: {rate: 0.2, kind: uniform, seed: 0}`` flips the labels of the train split
only (val and test stay as they are), after the split, so that mislabel detection and
noise-robust training can be scored against the truth. The flips are a pure function of the
train split's labels, the number of classes and ``seed``: a resumed run flips the same ones.

Exactly ``round(rate * n)`` training examples are flipped, chosen uniformly without
replacement; each flipped example gets a label other than its own, drawn from the row of its
class in a *flip matrix* (rows sum to 1, zero diagonal):

- ``uniform``: any other class, with equal probability (symmetric noise);
- ``confusion``: a fixed class-confusion matrix drawn from ``seed``: the classes are put in a
  random cycle, and each class flips to its successor in the cycle with probability 3/4 and to
  its predecessor with probability 1/4 (two classes: the other one). This is structured,
  asymmetric noise like an annotator who confuses neighbouring classes (the "pair flip" of
  Han et al. 2018, softened to two neighbours), harder to detect than uniform noise.

The run directory's ``label_noise.json`` lists every flip (its index in the training split as
trained, its source line, the original and the noisy label) and the flip matrix.

Example:
    >>> noisy, flipped, matrix = flip_labels(np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), 3, 0.2, "uniform", seed=0)
    >>> len(flipped), bool((noisy[flipped] != np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])[flipped]).all())
    (2, True)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attncoach.atomicfile import atomic_write_json
from attncoach.errors import AttncoachError

FILE_NAME = "label_noise.json"


def uniform_matrix(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Every other class equally likely."""
    matrix = np.full((num_classes, num_classes), 1.0 / (num_classes - 1))
    np.fill_diagonal(matrix, 0.0)
    return matrix


def confusion_matrix(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Each class flips to its successor in a seeded cycle of the classes (3/4) or its predecessor (1/4)."""
    cycle = rng.permutation(num_classes)
    matrix = np.zeros((num_classes, num_classes))
    for position, label in enumerate(cycle):
        after, before = cycle[(position + 1) % num_classes], cycle[position - 1]
        matrix[label, after] += 0.75 if num_classes > 2 else 1.0
        if num_classes > 2:
            matrix[label, before] += 0.25
    return matrix


NOISE_KINDS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "uniform": uniform_matrix,
    "confusion": confusion_matrix,
}


def flip_labels(
    labels: np.ndarray, num_classes: int, rate: float, kind: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip ``round(rate * len(labels))`` labels (see the module docstring).

    Returns:
        (the noisy labels, the flipped positions in ascending order, the flip matrix ``(C, C)``).
    """
    if num_classes < 2:
        raise AttncoachError("data.label_noise needs at least two classes to flip a label to another")
    rng = np.random.default_rng(seed)
    matrix = NOISE_KINDS[kind](num_classes, rng)
    labels = np.asarray(labels, dtype=np.int64)
    count = int(round(rate * len(labels)))
    flipped = np.sort(rng.choice(len(labels), size=count, replace=False)) if count else np.zeros(0, dtype=np.int64)
    noisy = labels.copy()
    for i in flipped:
        noisy[i] = rng.choice(num_classes, p=matrix[labels[i]])
    return noisy, flipped.astype(np.int64), matrix


@dataclass
class LabelNoise:
    """The flips injected into one training split.

    Attributes:
        kind, rate, seed: as configured.
        label_names: the class names, in class-id order.
        index: the flipped examples' positions in the training split, ascending.
        original, noisy: their labels before and after the flip (class ids).
        lines: their source lines.
        matrix: the flip matrix (row: the original class; column: the noisy one).
        pruned: flips whose examples curriculum pruning left out of training.
    """

    kind: str
    rate: float
    seed: int
    label_names: list[str]
    index: np.ndarray
    original: np.ndarray
    noisy: np.ndarray
    lines: list[int]
    matrix: np.ndarray
    pruned: int = 0

    def subset(self, kept: np.ndarray) -> LabelNoise:
        """The flips among the examples ``kept`` (ascending positions), re-indexed into that subset."""
        position = {int(old): new for new, old in enumerate(np.asarray(kept, dtype=np.int64))}
        keep = [k for k, i in enumerate(self.index) if int(i) in position]
        return LabelNoise(
            self.kind,
            self.rate,
            self.seed,
            self.label_names,
            np.array([position[int(self.index[k])] for k in keep], dtype=np.int64),
            self.original[keep],
            self.noisy[keep],
            [self.lines[k] for k in keep],
            self.matrix,
            self.pruned + len(self.index) - len(keep),
        )

    def to_json(self) -> dict[str, Any]:
        names = self.label_names
        return {
            "kind": self.kind,
            "rate": self.rate,
            "seed": self.seed,
            "flipped": len(self.index),
            "pruned": self.pruned,
            "flip_matrix": {
                names[a]: {names[b]: round(float(p), 6) for b, p in enumerate(row) if p > 0}
                for a, row in enumerate(self.matrix)
            },
            "flips": [
                {"index": int(i), "line": int(line), "label": names[int(o)], "noisy_label": names[int(n)]}
                for i, line, o, n in zip(self.index, self.lines, self.original, self.noisy)
            ],
        }

    def write(self, run_dir: Path) -> None:
        """``label_noise.json`` in the run directory."""
        atomic_write_json(Path(run_dir) / FILE_NAME, self.to_json())


def inject_label_noise(train: Any, label_names: Sequence[str], cfg: Any) -> LabelNoise:
    """Flip the labels of the split ``train`` in place (its ``labels`` array) as ``cfg`` (``data.label_noise``) says."""
    noisy, flipped, matrix = flip_labels(train.labels, len(label_names), cfg.rate, cfg.kind, cfg.seed)
    original = train.labels[flipped].copy()
    train.labels[:] = noisy  # in place: whatever shares the array (the curriculum's strata) sees the noisy labels
    return LabelNoise(
        cfg.kind,
        cfg.rate,
        cfg.seed,
        list(label_names),
        flipped,
        original,
        noisy[flipped],
        [int(train.lines[i]) for i in flipped],
        matrix,
    )


def read_label_noise(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``label_noise.json`` (None when the run had no injected noise)."""
    path = Path(run_dir) / FILE_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        indices = {int(flip["index"]) for flip in data["flips"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise AttncoachError(f"{path} is damaged: it is not the label_noise.json a run writes") from None
    data["flipped_index"] = indices
    return data
