"""Tests for the classification head, pooling registry and TextClassifier."""

import json

import pytest
import torch
import torch.nn.functional as F

from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.heads import POOLINGS, ClassificationHead, get_pooling

VOCAB, LABELS = 40, 3


def tiny_model(**overrides) -> TextClassifier:
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=VOCAB, dim=16, layers=2, heads=2, ffn_dim=32, max_position=16)
    return TextClassifier(config, num_labels=LABELS, **overrides)


def test_get_pooling_lists_valid_names():
    assert set(POOLINGS) >= {"cls", "mean", "max"}
    with pytest.raises(ValueError, match="'cls', 'max', 'mean'"):
        get_pooling("attention")


def test_mean_and_max_pooling_ignore_padding():
    hidden = torch.tensor([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(get_pooling("mean")(hidden, mask), torch.tensor([[2.0, -3.0]]))
    assert torch.equal(get_pooling("max")(hidden, mask), torch.tensor([[3.0, -2.0]]))
    assert torch.equal(get_pooling("cls")(hidden, mask), torch.tensor([[1.0, -2.0]]))


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
def test_appending_padding_does_not_change_logits(pooling):
    model = tiny_model(pooling=pooling).eval()
    ids = torch.randint(1, VOCAB, (2, 5))
    padded = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    mask = torch.arange(9)[None, :].expand(2, 9) < 5  # (2, 9), True = real
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask), model(ids), atol=1e-5, rtol=0)


def test_head_with_hidden_layer():
    head = ClassificationHead(16, LABELS, pooling="max", hidden=True)
    assert head.dense is not None
    assert head(torch.randn(2, 4, 16)).shape == (2, LABELS)


def test_forward_shape_and_subnet_delegation():
    model = tiny_model().eval()
    ids = torch.randint(1, VOCAB, (4, 6))
    with torch.no_grad():
        full = model(ids)
        assert full.shape == (4, LABELS)
        model.set_subnet(SubnetConfig(layers=(1,), heads=(1, 1)))
        assert model.subnet == model.encoder.subnet == SubnetConfig(layers=(1,), heads=(1, 1))
        assert not torch.allclose(model(ids), full)
        model.set_subnet(None)
        assert torch.equal(model(ids), full)


def test_config_dict_rebuild_gives_identical_logits():
    model = tiny_model(pooling="max", head_dropout=0.2, head_hidden=True).eval()
    data = json.loads(json.dumps(model.config_dict()))
    assert data["pooling"] == "max" and data["num_labels"] == LABELS
    twin = TextClassifier.from_config_dict(data).eval()
    twin.load_state_dict(model.state_dict())
    ids = torch.randint(1, VOCAB, (3, 5))
    with torch.no_grad():
        assert torch.equal(twin(ids), model(ids))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"poolling": "mean"}, "poolling"),
        ({"num_labels": None}, "num_labels"),
        ({"pooling": "median"}, "median"),
    ],
)
def test_from_config_dict_rejects_bad_configs(change, message):
    data = {**tiny_model().config_dict(), **change}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(ValueError, match=message):
        TextClassifier.from_config_dict(data)


def test_state_dict_saves_with_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model()
    state = model.state_dict()
    assert all(tensor.is_contiguous() for tensor in state.values())
    assert len({tensor.data_ptr() for tensor in state.values()}) == len(state)  # nothing tied
    assert not any("head_gate" in name for name in state)
    save_file(state, tmp_path / "model.safetensors")
    loaded = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def test_tiny_model_overfits_tiny_batch():
    model = tiny_model(head_dropout=0.0)
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB, (8, 6))
    labels = torch.arange(8) % LABELS
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss = F.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
