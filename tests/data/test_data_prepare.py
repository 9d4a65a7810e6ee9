"""prepare_data and encode_examples, end to end on small files."""

from __future__ import annotations

import logging

import pytest

from attncoach.config import DataConfig
from attncoach.data.example import Example
from attncoach.data.prepare import encode_examples, label_names, prepare_data
from attncoach.data.sources import read_examples
from attncoach.data.tokenizer import train_tokenizer
from attncoach.errors import AttncoachError


@pytest.fixture
def tweets_csv(write_file, tweets):
    rows = [f'"{text}",{label}' for text, label in tweets]
    rows += [f'"{text} again {i}",{label}' for i in range(4) for text, label in tweets]
    rows += ['"I love this new phone, it is great!",positive', '"  ",negative', "orphan text,"]
    return write_file("tweets.csv", "text,label\n" + "\n".join(rows) + "\n")


def small_config(path, **changes) -> DataConfig:
    return DataConfig(path=str(path), vocab_size=200, min_frequency=1, **changes)


def test_prepare_data_end_to_end(tweets_csv):
    data = prepare_data(small_config(tweets_csv), seed=0)
    assert data.labels == ["negative", "neutral", "positive"]
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 48, "val": 6, "test": 6}
    stats = data.stats
    assert (stats["rows_read"], stats["dropped_blank_text"], stats["dropped_no_label"]) == (63, 1, 1)
    assert (stats["duplicates_removed"], stats["examples"]) == (1, 60)
    assert stats["label_counts"]["test"] == {"negative": 2, "neutral": 2, "positive": 2}
    assert stats["max_length"] == data.max_length and data.max_length % 8 == 0
    assert "quantile" in stats["max_length_chosen_by"]
    train = data.splits["train"]
    assert max(train.lengths) <= data.max_length
    assert all(ids[0] == 2 and ids[-1] == 3 for ids in train.ids)
    assert data.pad_id == 0
    first = train.texts.index("I love this new phone, it is great!")
    assert data.labels[train.labels[first]] == "positive" and train.lines[first] == 2


def test_prepare_data_is_deterministic_per_seed(tweets_csv):
    first = prepare_data(small_config(tweets_csv), seed=1)
    again = prepare_data(small_config(tweets_csv), seed=1)
    assert first.splits["test"].texts == again.splits["test"].texts
    assert first.splits["train"].ids == again.splits["train"].ids
    assert first.tokenizer.to_str() == again.tokenizer.to_str()


def test_tokenizer_sees_only_train_texts(write_file, tweets):
    rows = [f'"{text} {i}",{label},train' for i in range(3) for text, label in tweets]
    rows += ['"жжж quxzy",positive,test', '"quxzy жук",negative,val']
    path = write_file("d.csv", "text,label,part\n" + "\n".join(rows) + "\n")
    data = prepare_data(small_config(path, split_column="part"), seed=0)
    vocab = data.tokenizer.get_vocab()
    assert not any("ж" in token or "q" in token for token in vocab)
    assert "[UNK]" in data.tokenizer.encode("quxzy жук").tokens


def test_configured_max_length_truncates(tweets_csv):
    data = prepare_data(small_config(tweets_csv, max_length=6), seed=0)
    assert data.max_length == 6 and data.stats["max_length_chosen_by"] == "data.max_length"
    assert max(data.splits["train"].lengths) == 6
    assert data.stats["truncated"]["train"] > 0
    assert all(ids[-1] == 3 for ids in data.splits["train"].ids)


def test_given_tokenizer_and_labels_are_used(tweets_csv, tweets):
    tok = train_tokenizer([t for t, _ in tweets], vocab_size=150, min_frequency=1)
    labels = ["positive", "neutral", "negative", "mixed"]
    data = prepare_data(small_config(tweets_csv), seed=0, tokenizer=tok, labels=labels)
    assert data.tokenizer is tok and data.labels == labels
    assert data.stats["tokenizer"]["trained_on_train_split"] is False
    test = data.splits["test"]
    assert all(labels[c] in {"positive", "neutral", "negative"} for c in test.labels)


def test_label_outside_the_given_labels_names_it_and_its_line(tweets_csv):
    with pytest.raises(AttncoachError) as info:
        prepare_data(small_config(tweets_csv), seed=0, labels=["positive", "negative"])
    assert str(info.value).startswith(f"label 'neutral' on line 4 of {tweets_csv}")


def test_split_column_is_respected(write_file, tweets):
    rows = [f'"{text} {i}",{label},{"test" if i == 0 else "train"}' for i in range(5) for text, label in tweets]
    path = write_file("d.csv", "text,label,part\n" + "\n".join(rows) + "\n")
    data = prepare_data(small_config(path, split_column="part", val_fraction=0.1), seed=0)
    assert len(data.splits["test"]) == 12
    assert all(text.endswith(" 0") for text in data.splits["test"].texts)
    assert len(data.splits["val"]) == 6 and len(data.splits["train"]) == 42
    assert data.stats["split_by"] == "data.split_column 'part'"


def test_jsonl_with_integer_labels(write_file):
    lines = [f'{{"text": "sample number {i}", "label": {i % 3 * 5}}}' for i in range(30)]
    path = write_file("d.jsonl", "\n".join(lines) + "\n")
    data = prepare_data(small_config(path), seed=0)
    assert data.labels == ["0", "5", "10"]


def test_encode_examples_for_a_new_file(write_file, tweets_csv):
    data = prepare_data(small_config(tweets_csv), seed=0)
    path = write_file("new.tsv", "text\tlabel\nlove the coffee\tpositive\nrainy days\tnegative\n")
    examples = read_examples(DataConfig(path=str(path)))
    split = encode_examples(examples, data.tokenizer, data.labels, data.max_length)
    assert split.labels.tolist() == [2, 0] and split.lines == [2, 3]
    assert split.ids[0] == data.tokenizer.encode("love the coffee").ids
    with pytest.raises(AttncoachError, match="label 'angry' on line 5 of new.tsv"):
        encode_examples([Example("x", "angry", None, 5)], data.tokenizer, data.labels, 8, source="new.tsv")


def test_label_names_sort_numbers_numerically():
    examples = [Example("a", "10"), Example("b", "2"), Example("c", "-1")]
    assert label_names(examples) == ["-1", "2", "10"]
    assert label_names([Example("a", "b"), Example("b", "A"), Example("c", "10")]) == ["10", "A", "b"]


def test_single_class_file_names_the_label_column(write_file):
    path = write_file("d.csv", "body,mood\n" + "\n".join(f"text {i},happy" for i in range(10)) + "\n")
    with pytest.raises(AttncoachError) as info:
        prepare_data(small_config(path, text_column="body", label_column="mood"), seed=0)
    assert str(info.value) == "label column 'mood' has a single class ('happy'); a classifier needs at least two"


def test_rare_classes_and_small_splits_warn_and_go_to_data_stats(write_file, tweets, caplog):
    rows = [f'"{text} {i}",{label}' for i in range(3) for text, label in tweets] + ['"a typo row",negativ']
    path = write_file("d.csv", "text,label\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        data = prepare_data(small_config(path), seed=0)
    assert data.stats["warnings"] == [
        "1 class has fewer than 5 examples: 'negativ' (1); too few to learn or to measure (a typo in a label?)",
        "only 4 val and 4 test rows (fewer than 10): their metrics will be noisy",
    ]
    assert [r.getMessage() for r in caplog.records] == data.stats["warnings"]
    assert "negativ" in data.labels and data.stats["label_counts"]["train"]["negativ"] == 1  # kept in train


def test_enough_data_gives_no_size_warnings(write_file, tweets, caplog):
    rows = [f'"{text} {i}",{label}' for i in range(3) for text, label in tweets]
    path = write_file("d.csv", "text,label\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        data = prepare_data(small_config(path, val_fraction=0.3, test_fraction=0.3), seed=0)
    assert data.stats["warnings"] == [] and not caplog.records
    assert len(data.splits["test"]) == 11


def test_groups_follow_their_examples_into_the_splits(write_file, tweets):
    rows = [f'"{text} {i}",{label},{"news" if i % 2 else "shop"}' for i in range(5) for text, label in tweets]
    path = write_file("d.csv", "text,label,source\n" + "\n".join(rows) + "\n")
    data = prepare_data(small_config(path, group_column="source"), seed=0)
    for split in data.splits.values():
        assert split.groups == [("news" if int(text.rsplit(" ", 1)[1]) % 2 else "shop") for text in split.texts]
    test = data.splits["test"]
    assert test.subset([1, 0]).groups == [test.groups[1], test.groups[0]]
    assert prepare_data(small_config(path), seed=0).splits["test"].groups == []
