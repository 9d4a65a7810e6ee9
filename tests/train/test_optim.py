"""Parameter groups: weight decay on matrices only, layer-wise LR decay, head LR."""

import pytest
import torch

from attncoach.config import TrainConfig
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.train.optim import freeze_lower_layers, make_optimizer, parameter_groups


def _model(layers=3):
    return TextClassifier(EncoderConfig(vocab_size=50, dim=8, layers=layers, heads=2, ffn_dim=16), num_labels=3)


def _lr_of(model, groups):
    by_id = {id(p): g for g in groups for p in g["params"]}
    return {name: (by_id[id(p)]["base_lr"], by_id[id(p)]["weight_decay"]) for name, p in model.named_parameters()}


def test_plain_groups_cover_every_parameter_once():
    model = _model()
    groups = parameter_groups(model, TrainConfig(lr=1e-3, weight_decay=0.1))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    lrs = _lr_of(model, groups)
    assert {lr for lr, _ in lrs.values()} == {1e-3}
    assert lrs["encoder.layers.0.attn.qkv.weight"][1] == 0.1
    assert lrs["encoder.layers.0.attn.qkv.bias"][1] == 0.0
    assert lrs["encoder.embeddings.word.weight"][1] == 0.0
    assert lrs["encoder.layers.1.ffn_norm.weight"][1] == 0.0


def test_layer_lr_decay_and_head_lr():
    model = _model(layers=3)
    lrs = _lr_of(model, parameter_groups(model, TrainConfig(lr=1.0, layer_lr_decay=0.5, head_lr=3.0)))
    assert lrs["encoder.layers.2.ffn.fc1.weight"][0] == 1.0  # top layer: full LR
    assert lrs["encoder.layers.1.ffn.fc1.weight"][0] == 0.5
    assert lrs["encoder.layers.0.attn.qkv.weight"][0] == 0.25
    assert lrs["encoder.embeddings.word.weight"][0] == 0.125  # below the lowest layer
    assert lrs["encoder.final_norm.weight"][0] == 1.0
    assert lrs["head.out.weight"][0] == 3.0


def test_optimizer_steps_with_group_lrs():
    model = _model()
    opt = make_optimizer(model, TrainConfig(lr=1e-2, layer_lr_decay=0.8))
    before = model.encoder.layers[0].ffn.fc1.weight.detach().clone()
    model(torch.randint(1, 50, (2, 5))).sum().backward()
    opt.step()
    assert not torch.equal(before, model.encoder.layers[0].ffn.fc1.weight)
    assert all("base_lr" in g for g in opt.state_dict()["param_groups"])


@pytest.mark.parametrize("override", ["train.layer_lr_decay=0", "train.layer_lr_decay=1.5", "train.head_lr=-1"])
def test_bad_values_are_refused(override):
    from attncoach.errors import AttncoachError
    from attncoach.train.settings import load_run_config as load_config

    with pytest.raises(AttncoachError, match=override.split("=")[0]):
        load_config(None, [override])


def test_freezing_lower_layers_leaves_them_out_and_unchanged():
    model = _model(layers=3)
    frozen = freeze_lower_layers(model, 2)
    assert frozen[0] == "encoder.embeddings.word.weight"
    assert {n.split(".")[2] for n in frozen if n.startswith("encoder.layers.")} == {"0", "1"}
    assert not any(n.startswith(("encoder.layers.2.", "head")) for n in frozen)
    groups = parameter_groups(model, TrainConfig(lr=1e-2))
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in in_optimizer}
    assert names == {n for n, _ in model.named_parameters()} - set(frozen)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, TrainConfig(lr=1e-2))
    ids = torch.randint(1, 50, (4, 6))
    torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved.isdisjoint(frozen)
    assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)  # no backward below layer 3


def test_freezing_every_layer_or_none():
    model = _model(layers=2)
    assert freeze_lower_layers(model, 0) == []
    everything = freeze_lower_layers(model, 2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if n not in everything
    }
    assert all(n.startswith("head") for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="cannot freeze 3 layers of an encoder with 2"):
        freeze_lower_layers(_model(layers=2), 3)
