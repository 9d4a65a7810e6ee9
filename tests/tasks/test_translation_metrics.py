"""Corpus BLEU and chrF through sacrebleu, with their signatures."""

from __future__ import annotations

import sys

import pytest

from attncoach.errors import AttncoachError
from attncoach.tasks.translation_metrics import corpus_scores


def test_identical_hypotheses_and_references_score_100():
    sentences = ["In the beginning God created the heavens and the earth.", "Jésus pleura."]
    scores = corpus_scores(sentences, sentences)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)
    assert scores["n"] == 2


def test_bleu_of_a_small_case_by_hand():
    scores = corpus_scores(["the cat the cat on the mat"], ["the cat is on the mat"])
    # Clipped n-gram precisions 5/7, 3/6, 1/5 and, with no 4-gram match, exponential smoothing's
    # 1 / (2 * 4); the hypothesis is longer than the reference, so no brevity penalty.
    expected = 100 * (5 / 7 * 3 / 6 * 1 / 5 * 1 / 8) ** 0.25
    assert scores["bleu"] == pytest.approx(expected)
    assert 0 < scores["chrf"] < 100


def test_bleu_is_case_sensitive_and_counts_punctuation():
    reference = ["The cat sat on the mat."]
    assert corpus_scores(reference, reference)["bleu"] == pytest.approx(100.0)
    assert corpus_scores(["the cat sat on the mat."], reference)["bleu"] < 99  # 100 if case were ignored
    assert corpus_scores(["The cat sat on the mat"], reference)["bleu"] < 99
    assert corpus_scores(["The cat sat on the mat"], reference)["chrf"] < 99


def test_signatures_name_the_settings():
    scores = corpus_scores(["a b c d"], ["a b c d"])
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|")
    assert "tok:13a" in scores["bleu_signature"] and "version:" in scores["bleu_signature"]
    assert "nrefs:1" in scores["chrf_signature"] and "nc:6" in scores["chrf_signature"]


@pytest.mark.parametrize(
    ("hypotheses", "references", "words"),
    [
        (["a"], ["a", "b"], "cannot score 1 translations against 2 references"),
        ([], [], "no translations to score"),
    ],
)
def test_bad_inputs_are_one_line(hypotheses, references, words):
    with pytest.raises(AttncoachError, match=words):
        corpus_scores(hypotheses, references)


def test_missing_sacrebleu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)
    with pytest.raises(AttncoachError) as info:
        corpus_scores(["a"], ["a"])
    assert str(info.value) == "BLEU and chrF need the package sacrebleu: pip install 'attncoach[translation]'"
