"""Tests for the elastic encoder: configs, FFN prefix widths, sub-net switching."""

import json

import pytest
import torch
import torch.nn.functional as F

from attncoach.models.encoder import ElasticEncoder, EncoderConfig, FeedForward, SubnetConfig

VOCAB, B, T = 50, 2, 7


def tiny_config(**overrides) -> EncoderConfig:
    settings = dict(vocab_size=VOCAB, dim=16, layers=3, heads=4, ffn_dim=32, max_position=16)
    return EncoderConfig(**{**settings, **overrides})


@pytest.fixture
def encoder() -> ElasticEncoder:
    torch.manual_seed(0)
    return ElasticEncoder(tiny_config()).eval()


@pytest.fixture
def ids() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(1, VOCAB, (B, T))


def mask() -> torch.Tensor:
    return torch.tensor([[True] * T, [True] * 4 + [False] * (T - 4)])


# --- EncoderConfig -------------------------------------------------------------------------


def test_encoder_config_round_trip_through_json():
    config = tiny_config(norm_first=False, type_vocab_size=2, activation="relu")
    assert EncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_encoder_config_refuses_unknown_key():
    data = {**tiny_config().to_dict(), "hiden_dim": 3}
    with pytest.raises(ValueError, match="hiden_dim"):
        EncoderConfig.from_dict(data)


def test_encoder_config_needs_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        EncoderConfig.from_dict({"dim": 16})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dim": 10}, "divisible"),
        ({"layers": 0}, "layers must be positive"),
        ({"ffn_dim": -1}, "ffn_dim must be positive"),
        ({"dropout": 1.0}, "dropout"),
        ({"activation": "swish"}, "activation"),
        ({"pad_id": VOCAB}, "pad_id"),
        ({"type_vocab_size": -1}, "type_vocab_size"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"dim": 16.0}, "dim must be int"),
        ({"norm_first": 1}, "norm_first must be bool"),
        ({"heads": True}, "heads must be int"),
    ],
)
def test_encoder_config_rejects_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


# --- SubnetConfig --------------------------------------------------------------------------


def test_subnet_config_round_trip_and_str():
    subnet = SubnetConfig(layers=[0, 2], heads=[4, 1, 2], ffn=None)
    assert subnet.layers == (0, 2)  # lists are normalised to tuples
    assert SubnetConfig.from_dict(json.loads(json.dumps(subnet.to_dict()))) == subnet
    assert str(subnet) == "layers=0,2 heads=4,1,2 ffn=all"
    assert hash(subnet) == hash(SubnetConfig(layers=(0, 2), heads=(4, 1, 2)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": ()}, "at least one"),
        ({"layers": (1, 0)}, "strictly increasing"),
        ({"layers": (1, 1)}, "strictly increasing"),
        ({"heads": (1.5, 2)}, "sequence of ints"),
    ],
)
def test_subnet_config_rejects_malformed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SubnetConfig(**kwargs)


def test_subnet_config_refuses_unknown_key():
    with pytest.raises(ValueError, match="width"):
        SubnetConfig.from_dict({"width": [1]})


# --- FeedForward ---------------------------------------------------------------------------


def test_ffn_prefix_equals_smaller_ffn_with_sliced_weights():
    torch.manual_seed(0)
    full, small = FeedForward(8, 24), FeedForward(8, 10)
    with torch.no_grad():
        small.fc1.weight.copy_(full.fc1.weight[:10])
        small.fc1.bias.copy_(full.fc1.bias[:10])
        small.fc2.weight.copy_(full.fc2.weight[:, :10])
        small.fc2.bias.copy_(full.fc2.bias)
    x = torch.randn(2, 5, 8)
    full.active_width = 10
    torch.testing.assert_close(full(x), small(x), atol=1e-6, rtol=0)


def test_ffn_full_width_equals_plain_computation():
    torch.manual_seed(0)
    ffn = FeedForward(8, 24, activation="relu")
    x = torch.randn(2, 5, 8)
    expected = ffn.fc2(F.relu(ffn.fc1(x)))
    assert torch.equal(ffn(x), expected)


# --- ElasticEncoder ------------------------------------------------------------------------


def run_layers_by_hand(encoder: ElasticEncoder, ids, attention_mask, layers) -> torch.Tensor:
    x = encoder.embeddings(ids)
    for index in layers:
        x = encoder.layers[index](x, attention_mask)
    return encoder.final_norm(x)


def test_full_model_equals_running_every_layer(encoder, ids):
    with torch.no_grad():
        expected = run_layers_by_hand(encoder, ids, mask(), range(3))
        assert torch.equal(encoder(ids, mask()), expected)


def test_layer_subset_equals_running_only_those_layers(encoder, ids):
    encoder.set_subnet(SubnetConfig(layers=(0, 2)))
    with torch.no_grad():
        expected = run_layers_by_hand(encoder, ids, mask(), (0, 2))
        assert torch.equal(encoder(ids, mask()), expected)


def test_head_subnet_equals_gating_off_heads(encoder, ids):
    with torch.no_grad():
        for layer, active in zip(encoder.layers, (4, 1, 3)):
            layer.attn.set_head_gate((torch.arange(4) < active).float())
        expected = encoder(ids, mask())
        for layer in encoder.layers:
            layer.attn.set_head_gate(None)
        encoder.set_subnet(SubnetConfig(heads=(4, 1, 3)))
        torch.testing.assert_close(encoder(ids, mask()), expected, atol=1e-5, rtol=0)


def test_set_subnet_none_restores_full_outputs_exactly(encoder, ids):
    with torch.no_grad():
        full = encoder(ids, mask())
        encoder.set_subnet(SubnetConfig(layers=(1,), heads=(1, 2, 3), ffn=(8, 16, 4)))
        assert encoder.subnet == SubnetConfig(layers=(1,), heads=(1, 2, 3), ffn=(8, 16, 4))
        assert not torch.allclose(encoder(ids, mask()), full)
        encoder.set_subnet(None)
        assert encoder.subnet == SubnetConfig()
        assert torch.equal(encoder(ids, mask()), full)


def test_set_subnet_copies_no_weights(encoder, ids):
    before = {name: t.data_ptr() for name, t in encoder.state_dict().items()}
    encoder.set_subnet(SubnetConfig(layers=(0, 1), heads=(2, 2, 2), ffn=(8, 8, 8)))
    encoder(ids, mask()).sum().backward()
    after = {name: t.data_ptr() for name, t in encoder.state_dict().items()}
    assert after == before


@pytest.mark.parametrize(
    ("subnet", "message"),
    [
        (SubnetConfig(layers=(0, 3)), "out of range"),
        (SubnetConfig(layers=(-1, 0)), "out of range"),
        (SubnetConfig(heads=(4, 0, 4)), r"heads\[1\] = 0"),
        (SubnetConfig(heads=(4, 4, 5)), r"heads\[2\] = 5"),
        (SubnetConfig(heads=(4, 4)), "one value per layer"),
        (SubnetConfig(ffn=(32, 0, 32)), r"ffn\[1\] = 0"),
        (SubnetConfig(ffn=(33, 32, 32)), r"ffn\[0\] = 33"),
        (SubnetConfig(ffn=(32, 32, 32, 32)), "one value per layer"),
    ],
)
def test_invalid_subnet_raises_and_keeps_current_one(encoder, subnet, message):
    current = SubnetConfig(layers=(1,))
    encoder.set_subnet(current)
    with pytest.raises(ValueError, match=message):
        encoder.set_subnet(subnet)
    assert encoder.subnet == current


def test_unused_layers_get_no_gradient(encoder, ids):
    encoder.set_subnet(SubnetConfig(layers=(1,), ffn=(32, 8, 32)))
    out = encoder(ids)
    # A plain sum of LayerNorm outputs has zero gradient; weight it randomly.
    (out * torch.randn_like(out)).sum().backward()
    assert encoder.layers[0].attn.qkv.weight.grad is None
    assert encoder.layers[1].ffn.fc1.weight.grad[8:].abs().sum() == 0
    assert encoder.layers[1].ffn.fc1.weight.grad[:8].abs().sum() > 0


def test_num_parameters_active_only_matches_smaller_models():
    torch.manual_seed(0)
    big = ElasticEncoder(tiny_config())
    assert big.num_parameters(active_only=True) == big.num_parameters()
    big.set_subnet(SubnetConfig(layers=(0, 2), ffn=(8, 32, 8)))
    small = ElasticEncoder(tiny_config(layers=2, ffn_dim=8))
    assert big.num_parameters(active_only=True) == small.num_parameters()


def test_post_ln_and_pre_ln_both_run(ids):
    torch.manual_seed(0)
    pre = ElasticEncoder(tiny_config(norm_first=True))
    post = ElasticEncoder(tiny_config(norm_first=False))
    assert "final_norm.weight" in pre.state_dict()
    assert "final_norm.weight" not in post.state_dict()
    for encoder in (pre, post):
        out = encoder(ids, mask())
        assert out.shape == (B, T, 16) and torch.isfinite(out).all()


def test_token_type_embeddings(ids):
    torch.manual_seed(0)
    encoder = ElasticEncoder(tiny_config(type_vocab_size=2)).eval()
    types = torch.zeros_like(ids)
    types[:, 3:] = 1
    with torch.no_grad():
        assert torch.equal(encoder(ids), encoder(ids, token_type_ids=torch.zeros_like(ids)))
        assert not torch.allclose(encoder(ids, token_type_ids=types), encoder(ids))


def test_token_types_without_type_vocab_raise(encoder, ids):
    with pytest.raises(ValueError, match="type_vocab_size"):
        encoder(ids, token_type_ids=torch.zeros_like(ids))


def test_too_long_sequence_raises(encoder):
    with pytest.raises(ValueError, match="max_position"):
        encoder(torch.ones(1, 17, dtype=torch.long))


def test_integer_attention_mask_is_accepted(encoder, ids):
    with torch.no_grad():
        assert torch.equal(encoder(ids, mask().long()), encoder(ids, mask()))


def test_weight_init(encoder):
    word = encoder.embeddings.word.weight
    assert torch.equal(word[0], torch.zeros(16))
    assert 0.01 < word[1:].std().item() < 0.03
    layer = encoder.layers[0]
    assert torch.equal(layer.attn.qkv.bias, torch.zeros(48))
    assert torch.equal(layer.attn_norm.weight, torch.ones(16))
