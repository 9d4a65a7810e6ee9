"""Data: sources (CSV/TSV/JSONL, built-in corpora), splits, tokenizers and batching.

The recipe needs one call, :func:`prepare_data`; the parts are public for evaluation on
new files and for the curriculum samplers.
"""

from attncoach.data.batching import EncodedSplit, LengthBucketBatchSampler, collate
from attncoach.data.builtin import BUILTIN_CORPORA, DEFAULT_BUILTIN, load_builtin, register_builtin
from attncoach.data.example import Example
from attncoach.data.prepare import PreparedData, encode_examples, label_names, prepare_data
from attncoach.data.readers import FORMATS, Columns, read_table
from attncoach.data.sources import read_examples, source_name
from attncoach.data.splits import SPLITS, dedupe, split_examples
from attncoach.data.tokenizer import (
    SPECIAL_TOKENS,
    auto_max_length,
    encode_texts,
    load_tokenizer,
    pad_token_id,
    save_tokenizer,
    train_tokenizer,
)

__all__ = [
    "BUILTIN_CORPORA",
    "DEFAULT_BUILTIN",
    "FORMATS",
    "SPECIAL_TOKENS",
    "SPLITS",
    "Columns",
    "EncodedSplit",
    "Example",
    "LengthBucketBatchSampler",
    "PreparedData",
    "auto_max_length",
    "collate",
    "dedupe",
    "encode_examples",
    "encode_texts",
    "label_names",
    "load_builtin",
    "load_tokenizer",
    "pad_token_id",
    "prepare_data",
    "read_examples",
    "read_table",
    "register_builtin",
    "save_tokenizer",
    "source_name",
    "split_examples",
    "train_tokenizer",
]
