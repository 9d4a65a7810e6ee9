"""Injected label noise: seeded flips of the training labels, the flip matrices, the record of the flips."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from attncoach.data.batching import EncodedSplit
from attncoach.data.noise import NOISE_KINDS, flip_labels, inject_label_noise, read_label_noise
from attncoach.errors import AttncoachError

LABELS = np.arange(300) % 3


@pytest.mark.parametrize("kind", list(NOISE_KINDS))
def test_flips_are_seeded_exact_in_number_and_always_change_the_label(kind):
    noisy, flipped, matrix = flip_labels(LABELS, 3, 0.2, kind, seed=4)
    again, flipped_again, _ = flip_labels(LABELS, 3, 0.2, kind, seed=4)
    assert np.array_equal(noisy, again) and np.array_equal(flipped, flipped_again)
    assert len(flipped) == 60 and np.all(np.diff(flipped) > 0)
    assert np.all(noisy[flipped] != LABELS[flipped])
    untouched = np.setdiff1d(np.arange(len(LABELS)), flipped)
    assert np.array_equal(noisy[untouched], LABELS[untouched])
    assert np.allclose(matrix.sum(axis=1), 1.0) and np.all(np.diag(matrix) == 0)
    other, _, _ = flip_labels(LABELS, 3, 0.2, kind, seed=5)
    assert not np.array_equal(other, noisy)


def test_rate_zero_flips_nothing():
    noisy, flipped, _ = flip_labels(LABELS, 3, 0.0, "uniform", seed=0)
    assert len(flipped) == 0 and np.array_equal(noisy, LABELS)


def test_confusion_flips_to_a_seeded_successor_mostly():
    labels = np.arange(4000) % 5
    noisy, flipped, matrix = flip_labels(labels, 5, 0.5, "confusion", seed=1)
    assert all(np.count_nonzero(row) == 2 for row in matrix), "two neighbours per class"
    assert sorted(set(np.round(matrix[matrix > 0], 2))) == [0.25, 0.75]
    successor = matrix.argmax(axis=1)
    assert sorted(successor) == list(range(5)), "a cycle: each class is one class's successor"
    share = np.mean(noisy[flipped] == successor[labels[flipped]])
    assert 0.7 < share < 0.8
    two, _, matrix2 = flip_labels(np.arange(10) % 2, 2, 0.5, "confusion", seed=0)
    assert np.array_equal(matrix2, [[0, 1], [1, 0]])


def test_injection_changes_only_the_given_split_in_place_and_records_every_flip(tmp_path):
    split = EncodedSplit([[1]] * 10, np.arange(10) % 2, [f"t{i}" for i in range(10)], list(range(100, 110)))
    strata = split.labels  # shared, as a task's strata are
    original = split.labels.copy()
    noise = inject_label_noise(split, ["neg", "pos"], SimpleNamespace(rate=0.3, kind="uniform", seed=0))
    assert len(noise.index) == 3 and np.array_equal(strata, split.labels)
    assert np.array_equal(original[noise.index], noise.original)
    assert np.array_equal(split.labels[noise.index], noise.noisy)
    noise.write(tmp_path)
    written = read_label_noise(tmp_path)
    assert written["flipped"] == 3 and written["flipped_index"] == set(noise.index.tolist())
    first = written["flips"][0]
    assert first["line"] == 100 + first["index"] and first["label"] != first["noisy_label"]
    assert written["flip_matrix"] == {"neg": {"pos": 1.0}, "pos": {"neg": 1.0}}


def test_a_subset_reindexes_the_flips_and_counts_the_pruned():
    split = EncodedSplit([[1]] * 10, np.arange(10) % 2, ["t"] * 10)
    noise = inject_label_noise(split, ["a", "b"], SimpleNamespace(rate=0.5, kind="uniform", seed=0))
    kept = np.array([i for i in range(10) if i != noise.index[0]])
    sub = noise.subset(kept)
    assert sub.pruned == 1 and len(sub.index) == 4
    assert [int(kept[i]) for i in sub.index] == noise.index[1:].tolist()


def test_no_file_means_no_noise_and_a_damaged_one_is_one_line(tmp_path):
    assert read_label_noise(tmp_path) is None
    (tmp_path / "label_noise.json").write_text(json.dumps({"flips": [{"line": 3}]}))
    with pytest.raises(AttncoachError, match="damaged"):
        read_label_noise(tmp_path)
    with pytest.raises(AttncoachError, match="two classes"):
        flip_labels(np.zeros(4, dtype=int), 1, 0.5, "uniform", 0)
