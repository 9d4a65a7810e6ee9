"""Tests for causal attention, ElasticEncoder.encode and the SASRec NextItemModel."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attncoach.models.attention import MultiHeadSelfAttention
from attncoach.models.encoder import ElasticEncoder, EncoderConfig, SubnetConfig
from attncoach.models.next_item import NextItemModel

NUM_ITEMS, B, T = 20, 3, 8


def tiny_config(**overrides) -> EncoderConfig:
    settings = dict(vocab_size=NUM_ITEMS + 1, dim=16, layers=3, heads=4, ffn_dim=32, max_position=T)
    return EncoderConfig(**{**settings, **overrides})


@pytest.fixture
def model() -> NextItemModel:
    torch.manual_seed(0)
    return NextItemModel(tiny_config(), NUM_ITEMS).eval()


def lengths() -> torch.Tensor:
    return torch.tensor([T, 5, 1])


def right_padded_items(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Item ids ``(B, T)`` with real items first, then padding (0), and the mask."""
    generator = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (B, T), generator=generator)
    mask = torch.arange(T)[None, :] < lengths()[:, None]  # (B, T)
    return items.masked_fill(~mask, 0), mask


# --- causal attention and ElasticEncoder.encode ---------------------------------------------


def test_causal_attention_matches_torch_with_a_causal_mask():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 4).eval()
    reference = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        attn.qkv.weight.copy_(reference.in_proj_weight)
        attn.qkv.bias.copy_(reference.in_proj_bias)
        attn.out.weight.copy_(reference.out_proj.weight)
        attn.out.bias.copy_(reference.out_proj.bias)
    x = torch.randn(2, 6, 16)
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)  # torch: True = may NOT attend
    with torch.no_grad():
        expected, _ = reference(x, x, x, attn_mask=future, need_weights=False)
        torch.testing.assert_close(attn(x, causal=True), expected, atol=1e-5, rtol=0)
        # With an all-real padding mask the combined-mask path must agree with is_causal.
        all_real = torch.ones(2, 6, dtype=torch.bool)
        torch.testing.assert_close(attn(x, all_real, causal=True), attn(x, causal=True), atol=1e-6, rtol=0)


def test_encoder_forward_is_embeddings_then_encode():
    torch.manual_seed(0)
    encoder = ElasticEncoder(tiny_config()).eval()
    ids, mask = right_padded_items()
    with torch.no_grad():
        expected = encoder.encode(encoder.embeddings(ids), mask)
        assert torch.equal(encoder(ids, mask), expected)


def test_encoder_state_dict_keys_are_unchanged():
    keys = set(ElasticEncoder(tiny_config(layers=1)).state_dict())
    assert "embeddings.word.weight" in keys
    assert "layers.0.attn.qkv.weight" in keys
    assert "final_norm.weight" in keys


# --- NextItemModel: causality and padding ---------------------------------------------------


@pytest.mark.parametrize("padded", [False, True])
def test_later_items_never_change_earlier_outputs(model, padded):
    items, mask = right_padded_items()
    if not padded:
        items, mask = items[:1], mask[:1]  # the full-length row: no padding at all
    with torch.no_grad():
        base = model(items, mask)
        for row in range(items.shape[0]):
            n = int(mask[row].sum())
            for t in range(n):
                changed = items.clone()
                changed[row, t] = changed[row, t] % NUM_ITEMS + 1  # another real item
                out = model(changed, mask)
                torch.testing.assert_close(out[row, :t], base[row, :t], atol=1e-6, rtol=0)
                assert not torch.allclose(out[row, t], base[row, t])  # it does change its own


def test_padding_never_changes_real_outputs(model):
    items, mask = right_padded_items()
    noise = torch.randint(1, NUM_ITEMS + 1, items.shape, generator=torch.Generator().manual_seed(7))
    junk = torch.where(mask, items, noise)  # garbage ids in the padded slots
    with torch.no_grad():
        base = model(items, mask)
        torch.testing.assert_close(model(junk, mask)[mask], base[mask], atol=1e-6, rtol=0)
        for row, n in enumerate(lengths().tolist()):  # same as running the history unpadded
            alone = model(items[row : row + 1, :n])
            torch.testing.assert_close(alone[0], base[row, :n], atol=1e-5, rtol=0)
        assert torch.isfinite(base).all()


def test_default_mask_is_item_ids_not_padding(model):
    items, mask = right_padded_items()
    with torch.no_grad():
        assert torch.equal(model(items), model(items, mask))


# --- NextItemModel: scores, sub-nets, config ------------------------------------------------


def test_scores_use_the_tied_item_embedding(model):
    assert model.item_embedding is model.encoder.embeddings.word
    table = model.encoder.embeddings.word.weight
    assert sum(p is table for p in model.parameters()) == 1  # one item matrix
    hidden = torch.randn(B, T, 16)
    scores = model.scores(hidden)
    assert scores.shape == (B, T, NUM_ITEMS + 1)
    assert scores[..., 0].isneginf().all()
    torch.testing.assert_close(scores[..., 1:], hidden @ table[1:].T)
    items, mask = right_padded_items()
    model.scores(model(items, mask))[mask].logsumexp(-1).sum().backward()
    assert table.grad is not None and table.grad[1:].abs().sum() > 0
    assert torch.equal(table.grad[0], torch.zeros(16))  # the padding row gets no grad


def test_subnet_switching(model):
    items, mask = right_padded_items()
    with torch.no_grad():
        full = model(items, mask)
        subnet = SubnetConfig(layers=(0, 2), heads=(4, 2, 1), ffn=(32, 16, 8))
        model.set_subnet(subnet)
        assert model.subnet == subnet and model.encoder.subnet == subnet
        small = model(items, mask)
        assert small.shape == full.shape
        assert not torch.allclose(small, full)
        assert model.encoder.num_parameters(active_only=True) < model.encoder.num_parameters()
        model.set_subnet(None)
        assert model.subnet == SubnetConfig()
        torch.testing.assert_close(model(items, mask), full, atol=0, rtol=0)


def test_config_dict_round_trip(model):
    data = json.loads(json.dumps(model.config_dict()))
    assert set(data) == {"encoder", "num_items"}
    twin = NextItemModel.from_config_dict(data).eval()
    twin.load_state_dict(model.state_dict())
    assert twin.config_dict() == model.config_dict()
    items, mask = right_padded_items()
    with torch.no_grad():
        assert torch.equal(twin(items, mask), model(items, mask))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"num_items": NUM_ITEMS}, "encoder"),
        ({"encoder": tiny_config().to_dict()}, "num_items"),
        ({"encoder": tiny_config().to_dict(), "num_items": NUM_ITEMS, "items": 3}, "items"),
    ],
)
def test_from_config_dict_rejects_bad_keys(data, message):
    with pytest.raises(ValueError, match=message):
        NextItemModel.from_config_dict(data)


@pytest.mark.parametrize(
    ("config", "num_items", "message"),
    [
        (tiny_config(), NUM_ITEMS + 1, "vocab_size"),
        (tiny_config(pad_id=3), NUM_ITEMS, "pad_id"),
        (tiny_config(type_vocab_size=2), NUM_ITEMS, "type_vocab_size"),
        (tiny_config(vocab_size=1), 0, "num_items"),
    ],
)
def test_rejects_configs_that_do_not_fit(config, num_items, message):
    with pytest.raises(ValueError, match=message):
        NextItemModel(config, num_items)


# --- learnability ---------------------------------------------------------------------------


def test_learns_the_successor_pattern():
    """Histories i, i+1, i+2, ... (wrapping at num_items): the next item is always i+1.

    A one-layer model fits this in about 50 Adam steps; 100 run in well under a second on a CPU.
    """
    torch.manual_seed(0)
    num_items, length = 12, 6
    config = EncoderConfig(
        vocab_size=num_items + 1,
        dim=16,
        layers=1,
        heads=2,
        ffn_dim=32,
        max_position=length,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model = NextItemModel(config, num_items)
    starts = torch.arange(num_items)[:, None]  # (N, 1)
    sequence = (starts + torch.arange(length + 1)) % num_items + 1  # (N, T + 1), ids 1..N
    lengths = torch.arange(num_items) % length + 1  # histories of every length 1..T
    mask = torch.arange(length)[None, :] < lengths[:, None]  # (N, T)
    items = sequence[:, :-1].masked_fill(~mask, 0)
    targets = sequence[:, 1:].masked_fill(~mask, 0)  # 0 = no target (padding)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        logits = model.scores(model(items, mask))  # (N, T, num_items + 1)
        loss = F.cross_entropy(logits[mask], targets[mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        hidden = model(items, mask)
        last = hidden[torch.arange(num_items), lengths - 1]  # prediction after the history
        predicted = model.scores(last).argmax(-1)
    assert torch.equal(predicted, sequence[torch.arange(num_items), lengths])
    assert loss.item() < 0.1
