"""int8 models: per-row quantisation, int8 Linear and embedding modules, parity with the float model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.next_item import NextItemModel
from attncoach.models.quantized import (
    Int8Embedding,
    Int8Linear,
    int8_skeleton,
    is_int8,
    quantize_int8,
    quantize_rows,
)


def _classifier(seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    config = EncoderConfig(vocab_size=80, dim=32, layers=2, heads=4, ffn_dim=64, max_position=16)
    return TextClassifier(config, num_labels=5).eval()


def _next_item(seed: int = 0) -> NextItemModel:
    torch.manual_seed(seed)
    config = EncoderConfig(vocab_size=41, dim=32, layers=2, heads=4, ffn_dim=64, max_position=12)
    return NextItemModel(config, num_items=40).eval()


def _batch(vocab: int, rows: int = 6, length: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    ids = torch.randint(1, vocab, (rows, length))
    ids[1, 4:] = 0  # right padding
    ids[2, 7:] = 0
    return ids, ids != 0


def test_rows_are_quantised_symmetrically_with_one_scale_each():
    torch.manual_seed(0)
    weight = torch.randn(20, 16)
    weight[3] = 0.0  # a padding row stays exactly zero
    q, scale = quantize_rows(weight)
    assert q.dtype == torch.int8 and scale.shape == (20,) and int(q.abs().max()) == 127
    error = (q.float() * scale[:, None] - weight).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-7).all())  # rounding error: at most half a step
    assert bool((q[3] == 0).all()) and scale[3] == 1.0


def test_every_linear_and_embedding_of_the_model_is_int8_and_the_source_is_unchanged():
    model = _classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantized = quantize_int8(model)
    assert is_int8(quantized) and not is_int8(model)
    assert not any(isinstance(m, (nn.Linear, nn.Embedding)) for m in quantized.modules())
    embeddings = quantized.encoder.embeddings
    assert isinstance(embeddings.word, Int8Embedding) and isinstance(embeddings.position, Int8Embedding)
    assert isinstance(quantized.head.out, Int8Linear)
    weights = quantized.state_dict()
    assert weights["encoder.embeddings.word.weight_int8"].dtype == torch.int8
    assert weights["encoder.layers.0.ffn.fc1.weight_int8"].shape == (64, 32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_int8_classifier_logits_stay_close_to_the_float_ones():
    model = _classifier()
    quantized = quantize_int8(model)
    ids, mask = _batch(80)
    with torch.inference_mode():
        reference, logits = model(ids, mask), quantized(ids, mask)
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max() + 1e-3
    assert bool((logits.argmax(-1) == reference.argmax(-1)).float().mean() >= 5 / 6)


def test_int8_next_item_scores_use_the_int8_item_table_and_keep_padding_out():
    model = _next_item()
    quantized = quantize_int8(model)
    ids, mask = _batch(41)
    with torch.inference_mode():
        reference, scores = model.next_item_scores(ids, mask), quantized.next_item_scores(ids, mask)
    assert scores.shape == (6, 41) and bool(scores[:, 0].isneginf().all())
    assert (scores[:, 1:] - reference[:, 1:]).abs().max() < 0.05 * reference[:, 1:].abs().max() + 1e-3
    top_reference, top = reference.topk(5).indices, scores.topk(5).indices
    overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top_reference, top)) / top.numel()
    assert overlap >= 0.8


def test_next_item_scores_read_the_last_real_position():
    model = _next_item()
    ids, mask = _batch(41)
    with torch.inference_mode():
        hidden = model(ids, mask)
        expected = model.scores(hidden[torch.arange(6), mask.sum(1) - 1])
        assert torch.equal(model.next_item_scores(ids, mask), expected)
        assert torch.equal(model.next_item_scores(ids), expected)  # the mask defaults to ids != 0


def test_a_saved_int8_state_loads_into_the_skeleton_of_its_config():
    model = quantize_int8(_classifier())
    twin = int8_skeleton(TextClassifier.from_config_dict(model.config_dict()))
    twin.load_state_dict(model.state_dict())
    ids, mask = _batch(80)
    with torch.inference_mode():
        assert torch.equal(twin(ids, mask), model(ids, mask))


def test_without_the_quantized_kernels_a_layer_multiplies_by_its_dequantised_weight():
    torch.manual_seed(0)
    layer = Int8Linear.from_linear(nn.Linear(16, 8))
    x = torch.randn(3, 16)
    fast = layer(x)
    layer._packed = False  # as on a build without torch.ops.quantized
    slow = layer(x)
    assert torch.allclose(slow, F.linear(x, layer.weight, layer.bias))
    assert (fast - slow).abs().max() < 0.05  # the kernel also quantises the input: close, not equal


def test_an_int8_model_still_runs_a_subnet_in_place():
    quantized = quantize_int8(_classifier())
    ids, mask = _batch(80)
    quantized.set_subnet(SubnetConfig(layers=(1,), heads=(2, 2), ffn=(16, 16)))
    with torch.inference_mode():
        assert quantized(ids, mask).shape == (6, 5)


@pytest.mark.parametrize("make", [_classifier, _next_item])
def test_int8_weights_take_about_a_quarter_of_the_float_bytes(make):
    model = make()

    def nbytes(m: nn.Module) -> int:
        return sum(t.numel() * t.element_size() for t in m.state_dict().values())

    assert nbytes(quantize_int8(model)) < 0.4 * nbytes(model)
