"""ONNX graphs of both tasks: dynamic batch and sequence axes, parity with torch, int8 graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.models.next_item import NextItemModel
from attncoach.models.onnx_graph import OPSET, OnnxModel, export_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SHAPES = [(1, 1), (2, 7), (5, 12), (3, 16)]  # (batch, sequence): neither is the exported example's


def _inputs(vocab: int, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, vocab, (batch, length))
    if length > 2:
        ids[0, length // 2 :] = 0  # right padding in the first row
    return ids, (ids != 0).long()


def _exported(folder: Path, vocab: int, build, task: str):
    """A seeded tiny model of ``task`` (``build(config)``), its ONNX graph under ``folder``, the record."""
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=vocab, dim=16, layers=2, heads=2, ffn_dim=32, max_position=16)
    model = build(config).eval()
    path = folder / "model.onnx"
    return model, path, export_onnx(model, task, path)


@pytest.fixture(scope="module")
def classifier_graph(tmp_path_factory):
    build = lambda config: TextClassifier(config, num_labels=3)
    return _exported(tmp_path_factory.mktemp("clf"), 60, build, "text_classification")


def test_classifier_graph_matches_torch_at_any_batch_and_length(classifier_graph):
    model, path, record = classifier_graph
    assert record == {
        "file": "model.onnx",
        "opset": OPSET,
        "inputs": ["input_ids", "attention_mask"],
        "output": "logits",
        "quantization": None,
    }
    assert OPSET >= 17
    graph = OnnxModel(path, "text_classification")
    assert graph.num_labels == 3 and not graph.training
    torch.manual_seed(1)
    for batch, length in SHAPES:
        ids, mask = _inputs(60, batch, length)
        with torch.inference_mode():
            expected = model(ids, mask)
        assert graph(ids, mask).shape == (batch, 3)
        torch.testing.assert_close(graph(ids, mask), expected, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def next_item_graph(tmp_path_factory):
    build = lambda config: NextItemModel(config, num_items=30)
    return _exported(tmp_path_factory.mktemp("rec"), 31, build, "next_item")


def test_next_item_graph_matches_torch_scores(next_item_graph):
    model, path, record = next_item_graph
    assert record["output"] == "scores"
    graph = OnnxModel(path, "next_item")
    assert graph.num_items == 30
    torch.manual_seed(2)
    for batch, length in SHAPES:
        ids, mask = _inputs(31, batch, length)
        with torch.inference_mode():
            expected = model.next_item_scores(ids, mask)
        scores = graph.next_item_scores(ids, mask)
        assert scores.shape == (batch, 31) and bool(scores[:, 0].isneginf().all())
        torch.testing.assert_close(scores[:, 1:], expected[:, 1:], atol=1e-5, rtol=1e-4)


def test_an_int8_graph_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=400, dim=32, layers=1, heads=2, ffn_dim=64, max_position=16)
    model = TextClassifier(config, num_labels=3).eval()
    export_onnx(model, "text_classification", tmp_path / "fp32.onnx")
    record = export_onnx(model, "text_classification", tmp_path / "int8.onnx", quantize=True)
    assert record["quantization"] == "int8"
    assert (tmp_path / "int8.onnx").stat().st_size < 0.5 * (tmp_path / "fp32.onnx").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "int8.onnx"]  # nothing else left
    ids, mask = _inputs(400, 4, 9)
    with torch.inference_mode():
        expected = model(ids, mask)
    logits = OnnxModel(tmp_path / "int8.onnx", "text_classification")(ids, mask)
    assert (logits - expected).abs().max() < 0.05


def test_a_file_that_is_no_graph_is_one_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(AttncoachError, match="is not a valid ONNX model") as err:
        OnnxModel(bad, "text_classification")
    assert "\n" not in str(err.value)
