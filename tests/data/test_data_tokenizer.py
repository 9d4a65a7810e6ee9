"""Tokenizer training, normalisation inside the tokenizer, save/load, encoding, max length."""

from __future__ import annotations

import pytest

from attncoach.data.tokenizer import (
    SPECIAL_TOKENS,
    auto_max_length,
    encode_texts,
    load_tokenizer,
    pad_token_id,
    save_tokenizer,
    train_tokenizer,
    truncate_ids,
)
from attncoach.errors import AttncoachError


@pytest.fixture
def texts(tweets) -> list[str]:
    return [text for text, _ in tweets] * 3


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_special_tokens_have_fixed_ids_and_wrap_every_text(texts, kind):
    tok = train_tokenizer(texts, kind=kind, vocab_size=400, min_frequency=1)
    assert [tok.id_to_token(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert pad_token_id(tok) == 0
    ids = tok.encode("love the coffee").ids
    assert ids[0] == 2 and ids[-1] == 3 and len(ids) > 2


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_normalisation_is_applied_by_encode(texts, kind):
    tok = train_tokenizer(texts, kind=kind, vocab_size=400, min_frequency=1)
    tokens = [t.lstrip("Ġ") for t in tok.encode("LOVE https://t.co/AbC @Someone_1 &amp; www.x.org").tokens]
    assert tokens[1] == "love"
    assert tokens.count("http") == 2
    assert "user" in tokens and "someone_1" not in tokens
    assert tok.normalizer.normalize_str("  Soooo GOOD &lt;3 a@b.c 1000  ") == "soo good <3 a@b.c 1000"


def test_normalisation_can_be_switched_off(texts):
    tok = train_tokenizer(texts, vocab_size=400, min_frequency=1, lowercase=False, normalize=False)
    assert tok.normalizer.normalize_str("Hi @Bob http://x.co &amp;") == "Hi @Bob http://x.co &amp;"


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_training_is_deterministic(texts, kind):
    first = train_tokenizer(texts, kind=kind, vocab_size=300, min_frequency=1)
    second = train_tokenizer(list(texts), kind=kind, vocab_size=300, min_frequency=1)
    assert first.to_str() == second.to_str()


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_save_load_round_trip_gives_identical_ids(tmp_path, texts, kind):
    tok = train_tokenizer(texts, kind=kind, vocab_size=300, min_frequency=1)
    path = tmp_path / "tokenizer.json"
    save_tokenizer(tok, path)
    loaded = load_tokenizer(path)
    probe = texts + ["unseen wörds @x https://y.z &gt; ÉÉÉÉ 😀😀😀"]
    assert encode_texts(loaded, probe, 16) == encode_texts(tok, probe, 16)
    assert loaded.decode(loaded.encode("love coffee").ids) == tok.decode(tok.encode("love coffee").ids)


def test_unknown_kind_is_an_error(texts):
    with pytest.raises(AttncoachError, match="unknown tokenizer 'sentencepiece'"):
        train_tokenizer(texts, kind="sentencepiece")


def test_load_missing_tokenizer(tmp_path):
    with pytest.raises(AttncoachError, match=f"tokenizer file not found: {tmp_path / 'tokenizer.json'}"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_load_invalid_tokenizer(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"not": "a tokenizer"}')
    with pytest.raises(AttncoachError) as info:
        load_tokenizer(path)
    assert f"tokenizer file {path} is not a valid tokenizer.json" in str(info.value)
    assert "\n" not in str(info.value)


def test_encode_texts_truncates_but_keeps_sep(texts):
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    long_text = "love love love coffee great game best town " * 5
    [full] = encode_texts(tok, [long_text])
    [cut, short] = encode_texts(tok, [long_text, "love"], max_length=8)
    assert len(full) > 8
    assert cut == full[:7] + [3]
    assert short == tok.encode("love").ids


def test_truncate_ids_edge_cases():
    assert truncate_ids([2, 10, 11, 3], 4) == [2, 10, 11, 3]
    assert truncate_ids([2, 10, 11, 3], 3) == [2, 10, 3]
    assert truncate_ids([2, 10, 11, 3], 1) == [2]
    assert truncate_ids([2, 10, 11, 3], 2, keep_tail=0) == [2, 10]


@pytest.mark.parametrize(
    "lengths,quantile,cap,expected",
    [
        ([3, 4, 5], 1.0, 256, 8),
        ([10] * 99 + [100], 0.99, 256, 16),
        ([10] * 99 + [100], 1.0, 256, 104),
        ([17, 18], 1.0, 256, 24),
        ([16], 1.0, 256, 16),
        ([500], 0.99, 256, 256),
        ([3], 1.0, 4, 4),
    ],
)
def test_auto_max_length(lengths, quantile, cap, expected):
    assert auto_max_length(lengths, quantile, cap) == expected


def test_encode_texts_gives_the_ids_of_a_full_encoding(texts):
    # encode_texts skips the character offsets (encode_batch_fast); the ids must be those of encode().
    tok = train_tokenizer(texts, vocab_size=120, min_frequency=1)
    odd = ["Sooo goooood!!! @bob http://x.co/a?b=1 &amp; café ÉTÉ 😀😀😀", "", "   ", "日本語のテキスト", "a" * 300]
    assert encode_texts(tok, texts + odd) == [tok.encode(text).ids for text in texts + odd]
