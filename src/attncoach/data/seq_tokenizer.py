"""Subword tokenizers for translation: BPE or unigram over Metaspace words, shared or one per language.

Unlike the classification tokenizers (:mod:`attncoach.data.tokenizer`) they keep case and
accents (BLEU is case-sensitive), add no special tokens around a text (the translation task
adds ``<s>`` / ``</s>`` itself), and decode back to the text they encoded, once normalised
(NFKC, one space between words, no space at the ends). Save and load them with
:func:`~attncoach.data.tokenizer.save_tokenizer` / :func:`~attncoach.data.tokenizer.load_tokenizer`.

Example:
    >>> src, tgt = train_translation_tokenizers(["the house"] * 3, ["la maison"] * 3, vocab_size=40)
    >>> src is tgt
    True
    >>> ids = src.encode("la maison").ids
    >>> src.decode(ids)
    'la maison'
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from attncoach.data.tokenizer import build_normalizer, load_tokenizer
from attncoach.errors import AttncoachError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SEQ_SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # their ids are 0..3 in this order
_SCORE_DECIMALS = 8  # unigram scores differ in their last bits from run to run
_ADDED_CHAR_STEP = 1e-4
_GRID_TOLERANCE = 1e-9


def _train_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    tok = _with_metaspace(Tokenizer(models.BPE(unk_token=UNK)))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SEQ_SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def _train_unigram(texts: Sequence[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """A unigram (SentencePiece-style) model; ``min_frequency`` does not apply to it."""
    tok = _with_metaspace(Tokenizer(models.Unigram()))
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(SEQ_SPECIAL_TOKENS), unk_token=UNK, show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return _canonical_unigram(tok)


def _with_metaspace(tok: Tokenizer) -> Tokenizer:
    """Words split on spaces, each carrying its space as "▁", so that decoding restores the spaces."""
    tok.normalizer = build_normalizer(normalize=False, lowercase=False)  # NFKC, single spaces, strip
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return tok


def _canonical_unigram(tok: Tokenizer) -> Tokenizer:
    """The unigram vocabulary in a fixed order, with rounded scores.

    From run to run the trainer's scores differ in their last bits, the characters it adds at
    the end get their scores in hash-set order, and
    equal-score pieces come in hash-map order; so the same texts could give other ids. Here
    those characters get the same scores in character order, and the pieces follow the
    special tokens sorted by (rounded score, piece).
    """
    layout = json.loads(tok.to_str())
    pieces = [(piece, score) for piece, score in layout["model"]["vocab"] if piece not in SEQ_SPECIAL_TOKENS]
    pieces = _added_chars_in_order(pieces)
    pieces.sort(key=lambda entry: (-round(entry[1], _SCORE_DECIMALS), entry[0]))
    specials = [[token, 0.0] for token in SEQ_SPECIAL_TOKENS]
    layout["model"]["vocab"] = specials + [[piece, round(score, _SCORE_DECIMALS)] for piece, score in pieces]
    layout["model"]["unk_id"] = UNK_ID
    return Tokenizer.from_str(json.dumps(layout))


def _added_chars_in_order(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``pieces`` with the characters the trainer added given their scores in character order.

    The trainer adds each character that pruning dropped at the lowest score, the next 1e-4
    above it, and so on, in hash-set order (huggingface/tokenizers, ``UnigramTrainer::finalize``).
    They are the single characters at the lowest score + k * 1e-4 for k = 0, 1, 2, ...
    """
    if not pieces:
        return pieces
    lowest = min(score for _, score in pieces)
    at_step: dict[int, list[int]] = {}
    for index, (piece, score) in enumerate(pieces):
        steps = (score - lowest) / _ADDED_CHAR_STEP
        if len(piece) == 1 and abs(steps - round(steps)) * _ADDED_CHAR_STEP < _GRID_TOLERANCE:
            at_step.setdefault(round(steps), []).append(index)
    added: list[int] = []
    for step in itertools.count():
        if step not in at_step:
            break
        added += at_step[step]
    chars = sorted(pieces[index][0] for index in added)
    scores = sorted((pieces[index][1] for index in added), reverse=True)
    taken = set(added)
    return [entry for index, entry in enumerate(pieces) if index not in taken] + list(zip(chars, scores))


SeqTokenizerTrainer = Callable[[Sequence[str], int, int], Tokenizer]
SEQ_TOKENIZER_KINDS: dict[str, SeqTokenizerTrainer] = {"bpe": _train_bpe, "unigram": _train_unigram}


def train_translation_tokenizers(
    sources: Sequence[str],
    targets: Sequence[str],
    kind: str = "bpe",
    vocab_size: int = 8000,
    shared: bool = True,
    min_frequency: int = 2,
) -> tuple[Tokenizer, Tokenizer]:
    """Train the source and target tokenizers; the same texts in the same order give the same ones.

    Args:
        sources, targets: the training texts of each side (the train split only).
        kind: "bpe" or "unigram".
        vocab_size: target vocabulary size of each tokenizer, special tokens included.
        shared: one tokenizer trained on both sides, returned twice (one embedding table
            can then serve both); else one per side.
        min_frequency: for BPE, how often a merge must be seen to enter the vocabulary.

    Returns:
        (source tokenizer, target tokenizer): ``<pad>``=0, ``<unk>``=1, ``<s>``=2, ``</s>``=3,
        no post-processor. A character never seen in training encodes as ``<unk>``.

    Raises:
        AttncoachError: an unknown kind, a vocabulary too small for the special tokens, or
            no text on a side.
    """
    if kind not in SEQ_TOKENIZER_KINDS:
        raise AttncoachError(f"unknown tokenizer '{kind}' (known: {', '.join(SEQ_TOKENIZER_KINDS)})")
    if vocab_size <= len(SEQ_SPECIAL_TOKENS):
        raise AttncoachError(
            f"a vocabulary of {vocab_size} cannot hold more than the {len(SEQ_SPECIAL_TOKENS)} special tokens"
        )
    for side, texts in (("source", sources), ("target", targets)):
        if not any(text.strip() for text in texts):
            raise AttncoachError(f"no {side} text to train a tokenizer on")
    train = SEQ_TOKENIZER_KINDS[kind]
    if shared:
        tok = train([*sources, *targets], vocab_size, min_frequency)
        return tok, tok
    return train(list(sources), vocab_size, min_frequency), train(list(targets), vocab_size, min_frequency)


def require_translation_specials(tok: Tokenizer, what: str = "the tokenizer") -> None:
    """Refuse a tokenizer (one loaded from a file, say) whose special tokens lack their fixed ids.

    Raises:
        AttncoachError: one line naming the first token whose id differs.
    """
    for token, expected in zip(SEQ_SPECIAL_TOKENS, (PAD_ID, UNK_ID, BOS_ID, EOS_ID)):
        found = tok.token_to_id(token)
        if found != expected:
            raise AttncoachError(f"{what} has {token} at id {found}, not {expected}: it was not made for translation")


SOURCE_TOKENIZER = "source_tokenizer.json"  # a translation model directory's two tokenizers
TARGET_TOKENIZER = "target_tokenizer.json"  # (the same file twice for a shared vocabulary)


def load_translation_tokenizers(model_dir: Path) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers of a translation model directory; one object twice when shared."""
    source = load_tokenizer(Path(model_dir) / SOURCE_TOKENIZER)
    target = load_tokenizer(Path(model_dir) / TARGET_TOKENIZER)
    return (source, source) if source.to_str() == target.to_str() else (source, target)
