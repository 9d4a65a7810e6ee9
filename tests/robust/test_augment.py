"""Augmentation on the fly: split.batch's dict, texts perturbed with probability p, re-encoded as prepare_data
encodes, and the same perturbation for the same (seed, step, example)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attncoach.data.prepare import prepare_data
from attncoach.data.tokenizer import CLS, SEP
from attncoach.errors import AttncoachError
from attncoach.models.pretrained import wordpiece_from_vocab
from attncoach.robust.augment import Augmenter, make_augmenter, training_vocabulary
from attncoach.tasks import TASKS
from attncoach.train.settings import load_run_config
from tinydata import FILLER_WORDS, SENTIMENT_WORDS, make_interactions, tiny_next_item_overrides, tiny_overrides

BATCH = list(range(16))


def _built(csv: Path, tmp_path: Path, *augment: str):
    cfg = load_run_config(None, [*tiny_overrides(csv, tmp_path / "run"), *augment])
    return cfg, TASKS["text_classification"]().build(cfg)


@pytest.fixture
def noisy(tiny_csv, tmp_path):
    """An augmenter that perturbs every text (p 1, character noise on 0.3 of the words) and its data."""
    cfg, data = _built(tiny_csv, tmp_path, "augment.p=1", "augment.char_noise=0.3")
    return make_augmenter(cfg, data), data.splits["train"]


def test_off_when_p_is_zero(tiny_csv, tmp_path):
    cfg, data = _built(tiny_csv, tmp_path)
    assert make_augmenter(cfg, data) is None


def test_the_batch_has_split_batch_keys_dtypes_and_labels(noisy):
    augmenter, train = noisy
    clean, augmented = train.batch(BATCH), augmenter.batch(train, BATCH, step=3)
    assert set(augmented) == set(clean)
    for key, value in clean.items():
        assert augmented[key].dtype == value.dtype and augmented[key].shape[0] == len(BATCH), key
    assert torch.equal(augmented["labels"], clean["labels"])
    assert augmented["input_ids"].shape == augmented["attention_mask"].shape
    ids, clean_ids = augmented["input_ids"], clean["input_ids"]
    assert ids.shape != clean_ids.shape or not torch.equal(ids, clean_ids)


def test_p_one_perturbs_every_text_at_the_configured_rate(noisy):
    augmenter, train = noisy
    changed = augmenter.texts(train, BATCH, step=0)
    assert sorted(changed) == list(range(len(BATCH))), "every tiny text has editable words"
    for row, text in changed.items():
        before, after = train.texts[BATCH[row]].split(), text.split()
        assert sum(a != b for a, b in zip(before, after)) == 2, "0.3 of the 5 or 6 editable words (not 'a', not '#i')"


def test_perturbed_rows_are_encoded_as_the_data_step_encodes(noisy):
    augmenter, train = noisy
    batch = augmenter.batch(train, BATCH, step=5)
    changed = augmenter.texts(train, BATCH, step=5)
    sep, longest = augmenter.tokenizer.token_to_id(SEP), augmenter.max_length
    for row, text in changed.items():
        ids = augmenter.tokenizer.encode(text).ids
        ids = ids if len(ids) <= longest else ids[: longest - 1] + [sep]  # cut, keeping the closing [SEP]
        width = len(ids)
        assert batch["input_ids"][row, :width].tolist() == ids
        assert batch["attention_mask"][row].sum() == width and not batch["attention_mask"][row, width:].any()


def _unchanged_text_reencoded(augmenter: Augmenter, train, monkeypatch) -> None:
    """Re-encoding a text that a perturbation did not change in meaning gives exactly the split's ids."""
    monkeypatch.setattr(augmenter, "perturb", lambda text, rng: f"  {text} ")  # normalisation strips the spaces
    assert len(augmenter.texts(train, BATCH, step=0)) == len(BATCH)
    augmented, clean = augmenter.batch(train, BATCH, step=0), train.batch(BATCH)
    assert all(torch.equal(augmented[key], clean[key]) for key in clean)


def test_reencoding_matches_prepare_data_with_truncation(tiny_csv, tmp_path, monkeypatch):
    cfg, data = _built(tiny_csv, tmp_path, "augment.p=1", "augment.word_swap=0.5", "data.max_length=6")
    train = data.splits["train"]
    assert data.stats["truncated"]["train"] > 0
    _unchanged_text_reencoded(make_augmenter(cfg, data), train, monkeypatch)


def test_reencoding_matches_prepare_data_with_a_pretrained_wordpiece_tokenizer(tiny_csv, tmp_path, monkeypatch):
    vocab = tmp_path / "vocab.txt"
    words = sorted({w for ws in SENTIMENT_WORDS.values() for w in ws} | set(FILLER_WORDS))
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "#", *words]) + "\n")
    augment = ["augment.p=1", "augment.char_noise=0.1", "data.max_length=7"]
    cfg = load_run_config(None, [*tiny_overrides(tiny_csv, tmp_path / "run"), *augment])
    prepared = prepare_data(cfg.data, seed=0, tokenizer=wordpiece_from_vocab(vocab))
    augmenter = Augmenter(cfg.augment, 0, prepared.tokenizer, prepared.max_length)
    train = prepared.splits["train"]
    ids = train.batch(BATCH)["input_ids"]
    assert (ids[:, 0] == prepared.tokenizer.token_to_id(CLS)).all()
    assert (ids == prepared.tokenizer.token_to_id(SEP)).sum() == len(BATCH), "truncation keeps [SEP]"
    assert prepared.stats["truncated"]["train"] > 0
    _unchanged_text_reencoded(augmenter, train, monkeypatch)


def test_the_same_seed_step_and_example_give_the_same_perturbation(tiny_csv, tmp_path, noisy):
    augmenter, train = noisy
    first = augmenter.batch(train, BATCH, step=7)
    again = make_augmenter(*_built(tiny_csv, tmp_path, "augment.p=1", "augment.char_noise=0.3"))
    assert all(torch.equal(first[key], again.batch(train, BATCH, step=7)[key]) for key in first)
    # an example's perturbation depends on (seed, step, index) only, not on the batch it is drawn in
    assert augmenter.texts(train, [9, 4], step=7)[1] == augmenter.texts(train, [4], step=7)[0]
    assert augmenter.texts(train, BATCH, step=8) != augmenter.texts(train, BATCH, step=7)
    other = make_augmenter(*_built(tiny_csv, tmp_path, "augment.p=1", "augment.char_noise=0.3", "train.seed=1"))
    assert other.texts(train, BATCH, step=7) != augmenter.texts(train, BATCH, step=7)


def test_p_is_the_share_of_perturbed_examples(tiny_csv, tmp_path):
    cfg, data = _built(tiny_csv, tmp_path, "augment.p=0.3", "augment.word_dropout=0.2")
    augmenter, train = make_augmenter(cfg, data), data.splits["train"]
    perturbed = sum(len(augmenter.texts(train, BATCH, step)) for step in range(20))  # dropout always changes a text
    assert 0.2 < perturbed / (20 * len(BATCH)) < 0.4


def test_operations_apply_in_order_with_eda_drawing_from_the_training_vocabulary(tiny_csv, tmp_path):
    augment = ["augment.p=1", "augment.eda=0.5", "augment.word_dropout=0.2", "augment.char_noise=0.1"]
    cfg, data = _built(tiny_csv, tmp_path, *augment)
    augmenter = make_augmenter(cfg, data)
    assert list(augmenter.ops) == ["word_dropout", "eda", "char_noise"]
    assert augmenter.describe() == (
        "augmentation on: p 1; word_dropout 0.2, then eda 0.5, then char_noise 0.1 (swap, insert, delete, keyboard)"
    )
    vocabulary = training_vocabulary(data.splits["train"].texts)
    assert "flight" in vocabulary and not any(word.startswith("#") for word in vocabulary)
    assert vocabulary == sorted(set(vocabulary))


def test_the_setup_logs_the_rates(tiny_csv, tmp_path, caplog):
    with caplog.at_level("INFO", logger="attncoach"):
        make_augmenter(*_built(tiny_csv, tmp_path, "augment.p=0.5", "augment.word_swap=0.1"))
    assert "augmentation on: p 0.5; word_swap 0.1" in caplog.text


def test_next_item_refuses_augmentation_at_config_time(tmp_path):
    args = tiny_next_item_overrides(make_interactions(tmp_path / "inter.tsv"), tmp_path / "run")
    with pytest.raises(AttncoachError, match=r"config key 'augment.p' must be 0 for task next_item"):
        load_run_config(None, [*args, "augment.p=0.5", "augment.word_dropout=0.1"])
    assert load_run_config(None, args).augment.p == 0
    assert not (tmp_path / "run").exists()
