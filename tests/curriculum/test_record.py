"""The per-example learning record: counters, forgetting events, JSON round trip, rankings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attncoach.curriculum.record import LearningRecord, rank, read_examples_jsonl, summary
from attncoach.errors import AttncoachError


def _present(record, index, predicted, labels, losses=None, p=None):
    index = np.asarray(index)
    losses = np.full(len(index), 0.5) if losses is None else np.asarray(losses, dtype=float)
    p = np.full(len(index), 0.5) if p is None else np.asarray(p, dtype=float)
    record.update(index, losses, np.asarray(predicted), p, np.asarray(labels))


def test_counters_streaks_and_forgetting_events():
    record = LearningRecord(3)
    gold = [0, 1, 2]
    _present(record, [0, 1, 2], [0, 0, 0], gold)  # 0 right, 1 and 2 wrong
    _present(record, [0, 1, 2], [1, 1, 0], gold)  # 0 forgotten, 1 learned
    _present(record, [0, 1], [0, 1], gold[:2])  # 0 relearned; 2 not shown
    assert record.seen.tolist() == [3, 3, 2]
    assert record.correct.tolist() == [2, 2, 0]
    assert record.forgetting.tolist() == [1, 0, 0]
    assert record.streak.tolist() == [1, 2, 0]
    assert record.first_learned.tolist() == [1, 2, 0]


def test_repeated_indices_in_one_batch_count_each_presentation():
    record = LearningRecord(2)
    _present(record, [0, 0, 1], [0, 1, 1], [0, 0, 1])  # example 0: right then wrong
    assert record.seen.tolist() == [2, 1] and record.forgetting.tolist() == [1, 0]


def test_state_dict_round_trip_keeps_unseen_nans():
    record = LearningRecord(4)
    _present(record, [1, 3], [0, 1], [0, 0], losses=[0.25, 2.0], p=[0.8, 0.1])
    other = LearningRecord(4)
    other.load_state_dict(json.loads(json.dumps(record.state_dict())))
    for name in ("seen", "correct", "streak", "forgetting", "last_pred", "first_learned"):
        assert np.array_equal(getattr(other, name), getattr(record, name)), name
    assert np.isnan(other.last_loss[0]) and other.last_loss[3] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        LearningRecord(5).load_state_dict(record.state_dict())


def test_jsonl_rankings_find_hard_suspect_and_unforgettable_examples(tmp_path):
    record = LearningRecord(4)
    gold = np.array([0, 1, 0, 1])
    for _ in range(3):  # 0 always right; 1 always wrong & sure; 2 right/wrong alternating; 3 wrong, unsure
        _present(record, [0, 1, 3], [0, 0, 0], gold[[0, 1, 3]], losses=[0.1, 3.0, 0.9], p=[0.9, 0.05, 0.4])
    for pred in (0, 1, 0):
        _present(record, [2], [pred], [0], losses=[1.0])
    path = tmp_path / "examples.jsonl"
    record.write_jsonl(
        path, ["a", "b", "c", "d"], gold, ["neg", "pos"], [10, 11, 12, 13], extra={"box": np.array([4, 0, 1, 0])}
    )
    rows = read_examples_jsonl(path)
    assert [r["text"] for r in rank(rows, "hardest", 2)] == ["b", "c"]
    assert [r["text"] for r in rank(rows, "suspect", 5)] == ["b", "c", "d", "a"]  # by mean loss
    assert [r["text"] for r in rank(rows, "suspect", 5, by="p_label")] == ["b", "d", "c", "a"]
    assert [r["text"] for r in rank(rows, "unforgettable", 5)] == ["a"]
    counts = summary(rows)
    assert counts["forgotten_at_least_once"] == 1 and counts["never_learned"] == 2
    assert counts["boxes"] == {"0": 2, "1": 1, "4": 1}
    assert rows[1]["predicted"] == "neg" and rows[1]["line"] == 11


def test_damaged_examples_file_is_one_clear_error(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"seen": 1}\nnot json\n')
    with pytest.raises(AttncoachError, match="line 1 is not a learning-record row"):
        read_examples_jsonl(path)
    with pytest.raises(AttncoachError, match="not found"):
        read_examples_jsonl(tmp_path / "missing.jsonl")
