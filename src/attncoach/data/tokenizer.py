"""Train, save, load and apply Hugging Face ``tokenizers`` tokenizers.

All text preprocessing lives in the tokenizer's normalizer, so it is saved inside
``tokenizer.json`` and prediction sees exactly what training saw.

Example:
    >>> tok = train_tokenizer(["I love it @bob", "so bad http://x.co"], vocab_size=200, min_frequency=1)
    >>> tok.encode("Love it @alice").tokens
    ['[CLS]', 'love', 'it', '@', 'user', '[SEP]']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from attncoach.atomicfile import atomic_write_text
from attncoach.errors import AttncoachError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # their ids are 0..4 in this order

_URL = r"(?i:https?://|www\.)\S+"
_MENTION = r"(?<!\w)@\w+"
# The third and later repeats of a non-digit ("soooo" -> "soo"); digits are left alone ("1000").
# Replace inserts its content literally (no "$1"), so the regex matches only the extra repeats.
_REPEATS = r"(?<=(\D)\1)\1+"
_HTML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&"))


def build_normalizer(
    normalize: bool = True, lowercase: bool = True, collapse_repeats: bool = True
) -> normalizers.Normalizer:
    """The text preprocessing, as a normalizer that is saved with the tokenizer.

    Args:
        normalize: replace URLs with "http", user mentions with "@user", decode the common
            HTML entities, and (with ``collapse_repeats``) shorten runs of 3+ equal characters to 2.
        lowercase: lowercase everything (after the replacements).
        collapse_repeats: see ``normalize``.

    Returns:
        NFKC, the tweet replacements, single spaces, strip, and lowercase, as one sequence.
    """
    steps: list[normalizers.Normalizer] = [normalizers.NFKC()]
    if normalize:
        # &amp; last, so that "&amp;lt;" becomes "&lt;" rather than "<" (one level of decoding).
        steps += [normalizers.Replace(entity, char) for entity, char in _HTML_ENTITIES]
        steps += [normalizers.Replace(Regex(_URL), " http "), normalizers.Replace(Regex(_MENTION), " @user ")]
        if collapse_repeats:
            steps.append(normalizers.Replace(Regex(_REPEATS), ""))
    # One space between words: byte-level BPE would otherwise make a token of every extra space.
    steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


def _train_wordpiece(
    texts: Sequence[str], normalizer: normalizers.Normalizer, vocab_size: int, min_frequency: int
) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    # The trainer gives "##x" tokens ids in hash-map order, so equal-count merges can differ
    # from run to run (huggingface/tokenizers#1794). Handing it every "##x" up front, sorted,
    # fixes their ids; they are then taken out of the special tokens again.
    continuations = _continuation_tokens(tok, texts)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS) + continuations,
        show_progress=False,
        continuing_subword_prefix="##",
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return _without_added_tokens(tok, set(continuations))


def _continuation_tokens(tok: Tokenizer, texts: Sequence[str]) -> list[str]:
    """ "##" + every character that follows another inside a pre-tokenized word, sorted."""
    chars: set[str] = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            chars.update(word[1:])
    return [f"##{char}" for char in sorted(chars)]


def _without_added_tokens(tok: Tokenizer, contents: set[str]) -> Tokenizer:
    """The tokenizer with ``contents`` kept in the vocabulary but no longer matched as added tokens."""
    layout = json.loads(tok.to_str())
    layout["added_tokens"] = [t for t in layout["added_tokens"] if t["content"] not in contents]
    return Tokenizer.from_str(json.dumps(layout))


def _train_byte_level_bpe(
    texts: Sequence[str], normalizer: normalizers.Normalizer, vocab_size: int, min_frequency: int
) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


TokenizerTrainer = Callable[[Sequence[str], normalizers.Normalizer, int, int], Tokenizer]
TOKENIZER_KINDS: dict[str, TokenizerTrainer] = {
    "wordpiece": _train_wordpiece,
    "bpe": _train_byte_level_bpe,
}


def train_tokenizer(
    texts: Sequence[str],
    kind: str = "wordpiece",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    normalize: bool = True,
    collapse_repeats: bool = True,
) -> Tokenizer:
    """Train a tokenizer on ``texts``; the same texts in the same order give the same tokenizer.

    Args:
        texts: training texts (the train split only, so that val/test stay unseen).
        kind: "wordpiece" (BERT-style pre-tokenizer) or "bpe" (byte-level, never unknown).
        vocab_size: target vocabulary size, special tokens included.
        min_frequency: a merge must be seen this often to enter the vocabulary.
        lowercase: lowercase texts (see :func:`build_normalizer`).
        normalize: tweet normalisation (see :func:`build_normalizer`).
        collapse_repeats: shorten character runs when ``normalize`` is on.

    Returns:
        A tokenizer with [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 that wraps every text
        as "[CLS] text [SEP]".

    Raises:
        AttncoachError: an unknown kind.
    """
    if kind not in TOKENIZER_KINDS:
        raise AttncoachError(f"unknown tokenizer '{kind}' (known: {', '.join(TOKENIZER_KINDS)})")
    normalizer = build_normalizer(normalize, lowercase, collapse_repeats)
    tok = TOKENIZER_KINDS[kind](list(texts), normalizer, vocab_size, min_frequency)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, tok.token_to_id(CLS)), (SEP, tok.token_to_id(SEP))],
    )
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    """Write the tokenizer (normalizer included) as one ``tokenizer.json``, atomically."""
    atomic_write_text(Path(path), tok.to_str(pretty=True))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a ``tokenizer.json``.

    Raises:
        AttncoachError: the file is missing or is not a tokenizer.
    """
    path = Path(path)
    if not path.is_file():
        raise AttncoachError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON or a bad layout
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AttncoachError(f"tokenizer file {path} is not a valid tokenizer.json ({reason})") from None


def pad_token_id(tok: Tokenizer) -> int:
    """The id of [PAD] (0 for tokenizers trained here).

    Raises:
        AttncoachError: the tokenizer has no [PAD] token.
    """
    pad = tok.token_to_id(PAD)
    if pad is None:
        raise AttncoachError(f"the tokenizer has no {PAD} token")
    return pad


def encode_texts(tok: Tokenizer, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids for each text, at most ``max_length`` long.

    Args:
        tok: the tokenizer.
        texts: texts to encode.
        max_length: the most ids per text, special tokens included; None = no limit.

    Returns:
        Ids per text; a long text loses its end but keeps its closing ``[SEP]``.
    """
    ids = [enc.ids for enc in tok.encode_batch_fast(list(texts))]  # without character offsets: ~15 % faster
    if max_length is None:
        return ids
    tail = closing_special_count(tok)
    return [truncate_ids(one, max_length, tail) for one in ids]


def closing_special_count(tok: Tokenizer) -> int:
    """How many special tokens the tokenizer puts after a text (1, [SEP], for ours)."""
    mask = tok.encode("hello").special_tokens_mask
    count = 0
    while count < len(mask) - 1 and mask[-1 - count]:  # never the first token
        count += 1
    return count


def truncate_ids(ids: list[int], max_length: int, keep_tail: int = 1) -> list[int]:
    """Cut ``ids`` to ``max_length``, keeping its last ``keep_tail`` ids (the closing specials)."""
    if len(ids) <= max_length:
        return ids
    tail = min(keep_tail, max_length - 1)
    return ids[: max_length - tail] + ids[len(ids) - tail :]


def auto_max_length(lengths: Iterable[int], quantile: float = 0.99, cap: int = 256) -> int:
    """A sequence length that fits ``quantile`` of the texts, as a multiple of 8.

    Args:
        lengths: token counts per text, special tokens included.
        quantile: the share of texts that should fit uncut.
        cap: the largest allowed result.

    Returns:
        The quantile rounded up to a multiple of 8, at least 8 and at most ``cap``.
    """
    values = np.fromiter(lengths, dtype=np.int64)
    if values.size == 0:
        raise ValueError("auto_max_length needs at least one length")
    needed = float(np.quantile(values, quantile, method="inverted_cdf"))  # the smallest length that fits the share
    return min(cap, max(8, 8 * math.ceil(needed / 8)))
