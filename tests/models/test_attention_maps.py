"""attention_maps: the softmax weights each layer applies, per head, with padding and causality masked."""

from __future__ import annotations

import torch

from attncoach.models import EncoderConfig, SubnetConfig, TextClassifier
from attncoach.models.attention import MultiHeadSelfAttention
from attncoach.models.attention_maps import attention_maps
from attncoach.models.next_item import NextItemModel


def _classifier() -> TextClassifier:
    torch.manual_seed(0)
    return TextClassifier(EncoderConfig(vocab_size=40, dim=16, layers=3, heads=4, ffn_dim=32), num_labels=3)


def test_shapes_rows_sum_to_one_and_padding_gets_nothing():
    model = _classifier()
    ids = torch.tensor([[2, 5, 9, 11, 3], [2, 7, 3, 0, 0]])
    mask = ids != 0
    maps = attention_maps(model, ids, mask)
    assert [tuple(m.shape) for m in maps] == [(2, 4, 5, 5)] * 3
    for probs in maps:
        assert torch.allclose(probs.sum(-1)[0], torch.ones(4, 5), atol=1e-5)
        assert torch.allclose(probs[1, :, :3].sum(-1), torch.ones(4, 3), atol=1e-5)  # the real queries
        assert probs[1, :, :, 3:].abs().max() == 0  # no query attends to padding
    assert model.training  # the model's mode is given back


def test_the_weights_are_the_ones_the_layer_applies():
    attn = MultiHeadSelfAttention(dim=16, heads=4).eval()
    x, mask = torch.randn(2, 6, 16), torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    probs = attn.attention_probs(x, mask)  # (B, h, T, T)
    v = attn._split_heads(attn._project_qkv(x)[2])  # (B, h, T, Dh)
    context = (probs @ v).transpose(1, 2).reshape(2, 6, 16)
    assert torch.allclose(attn.out(context), attn(x, mask), atol=1e-5)


def test_a_sub_net_shows_its_active_layers_and_heads():
    model = _classifier()
    model.set_subnet(SubnetConfig(layers=(0, 2), heads=(2, 4, 1), ffn=None))
    maps = attention_maps(model, torch.tensor([[2, 5, 9, 3]]))
    assert [m.shape[1] for m in maps] == [2, 1]


def test_a_next_item_model_attends_to_earlier_items_only():
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=21, dim=16, layers=2, heads=2, ffn_dim=32, max_position=8, pad_id=0)
    maps = attention_maps(NextItemModel(config, num_items=20), torch.tensor([[3, 7, 1, 9]]))
    for probs in maps:
        assert torch.triu(probs[0], diagonal=1).abs().max() == 0
        assert torch.allclose(probs.sum(-1), torch.ones(1, 2, 4), atol=1e-5)
