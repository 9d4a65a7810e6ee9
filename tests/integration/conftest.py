"""Fixtures for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from attncoach.cli import main
from tinydata import FILLER_WORDS, SENTIMENT_WORDS, tiny_overrides


@pytest.fixture
def tiny_bert(tmp_path: Path) -> Path:
    """A random 2-layer BERT in Hugging Face layout, with a vocab.txt covering the tiny corpus."""
    transformers = pytest.importorskip("transformers")
    directory = tmp_path / "tiny-bert"
    words = sorted({w for ws in SENTIMENT_WORDS.values() for w in ws} | set(FILLER_WORDS))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "#", *words, *map(str, range(10))]
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def run(tiny_csv, tmp_path) -> Path:
    """A finished tiny run of a 4-layer model (room for depth sub-nets)."""
    out = tmp_path / "run"
    args = [a for a in tiny_overrides(tiny_csv, out, 30) if not a.startswith(("model.layers", "model.ffn_dim"))]
    assert main(["train", "--quiet", *args, "model.layers=4", "model.ffn_dim=32"]) == 0
    return out
