"""Mislabel detection: the suspicion scores of a learning record, and scoring a ranking against known flips."""

from __future__ import annotations

import numpy as np
import pytest

from attncoach.curriculum.mislabel import (
    SUSPICION_SCORES,
    RecordColumns,
    detection_scores,
    suspect_order,
    suspicion,
)
from attncoach.curriculum.record import LearningRecord, rank, read_examples_jsonl
from attncoach.errors import AttncoachError


def test_detection_scores_of_a_hand_made_ranking():
    # flips at 2, 5, 9; the ranking finds 5 first, 2 third, 9 never (unseen)
    scores = detection_scores([5, 0, 2, 7, 1], {2, 5, 9}, k=3)
    assert scores["precision_at_k"] == pytest.approx(2 / 3)
    assert scores["recall_at_k"] == pytest.approx(2 / 3)
    assert scores["r_precision"] == pytest.approx(2 / 3)
    assert scores["average_precision"] == pytest.approx((1 / 1 + 2 / 3) / 3, abs=1e-6)
    perfect = detection_scores([2, 5, 9, 0], {2, 5, 9}, k=2)
    assert perfect["average_precision"] == 1.0 and perfect["precision_at_k"] == 1.0
    assert perfect["recall_at_k"] == pytest.approx(2 / 3)
    assert detection_scores([0, 1], set(), k=1) == {"k": 1, "flipped": 0}


def _record() -> LearningRecord:
    """Four examples over three presentations: 0 easy, 1 flipped (never fits), 2 hard but learned, 3 unseen."""
    record = LearningRecord(4)
    gold = np.zeros(3, dtype=int)
    for margins, predicted, p in (
        ([2.0, -3.0, -0.5], [0, 1, 1], [0.9, 0.05, 0.3]),
        ([2.5, -2.5, 0.5], [0, 1, 0], [0.92, 0.08, 0.6]),
        ([3.0, -2.0, -0.2], [0, 1, 1], [0.95, 0.1, 0.45]),
    ):
        p = np.array(p)
        record.update(np.arange(3), -np.log(p), np.array(predicted), p, gold, margins=np.array(margins))
    return record


def test_aum_is_the_mean_margin_and_every_score_ranks_the_flip_first():
    record = _record()
    assert record.aum[:3] == pytest.approx([2.5, -2.5, -0.0666667], abs=1e-6)
    assert np.isnan(record.aum[3])
    columns = RecordColumns.of_record(record)
    for by in SUSPICION_SCORES:
        order = suspect_order(columns, by)
        assert order[0] == 1, by
        assert 3 not in order, "an unseen example is never ranked"
    forgetting = suspicion(columns, "forgetting")
    assert forgetting[2] > forgetting[0], "example 2 was forgotten once"


def test_rows_rank_like_the_record_and_old_records_fall_back(tmp_path):
    record = _record()
    path = tmp_path / "examples.jsonl"
    record.write_jsonl(path, ["a", "b", "c", "d"], np.zeros(4, dtype=int), ["x", "y"], [1, 2, 3, 4])
    rows = read_examples_jsonl(path)
    assert rows[1]["aum"] == pytest.approx(-2.5) and rows[0]["mean_p_label"] == pytest.approx(0.923333, abs=1e-5)
    top = rank(rows, "suspect", 2, by="aum")
    assert [r["text"] for r in top] == ["b", "c"] and top[0]["suspicion"] == pytest.approx(2.5)
    by_loss = rank(rows, "suspect", 3)  # the default: the mean loss
    assert [r["text"] for r in by_loss] == ["b", "c", "a"] and by_loss[0]["suspicion"] == rows[1]["mean_loss"]
    old = [{k: v for k, v in r.items() if k not in ("aum", "mean_p_label")} for r in rows]
    assert [r["text"] for r in rank(old, "suspect", 1, by="p_label")] == ["b"], "by the last p(label)"
    with pytest.raises(AttncoachError, match="no margins"):
        suspicion(RecordColumns.of_rows(old), "aum")
    with pytest.raises(AttncoachError, match="unknown suspicion score"):
        suspicion(RecordColumns.of_rows(rows), "margin")


def test_a_checkpointed_record_from_before_margins_still_loads():
    record = _record()
    state = record.state_dict()
    for name in ("margin_sum", "margin_seen", "p_label_sum"):
        del state[name]
    other = LearningRecord(4)
    other.load_state_dict(state)
    assert np.array_equal(other.seen, record.seen) and np.isnan(other.aum).all()
