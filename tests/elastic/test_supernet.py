"""Sub-net samplers (contract over every registered one) and the sandwich step's gradients."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from attncoach.elastic.space import ElasticSpace
from attncoach.elastic.supernet import SUBNET_SAMPLERS, InPlaceDistillation, SandwichSampler, make_sampler
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.tasks import TASKS
from attncoach.train.settings import load_run_config as load_config

CONFIG = EncoderConfig(vocab_size=50, dim=16, layers=4, heads=4, ffn_dim=32, dropout=0.0, attention_dropout=0.0)


@pytest.mark.parametrize("name", sorted(SUBNET_SAMPLERS))
@pytest.mark.parametrize(
    "space",
    [ElasticSpace(), ElasticSpace(widths=(0.5, 1.0), depths=(0.25, 1.0), ffn_widths=(0.25, 1.0), per_layer=True)],
)
def test_every_sampler_keeps_the_contract(name, space):
    sampler = make_sampler(name, space, CONFIG, random_subnets=2, seed=3)
    model = TextClassifier(CONFIG, num_labels=3)
    for step in range(20):
        subnets = sampler.sample(step)
        assert subnets[0] == SubnetConfig(), "the first sub-net is the teacher: the full model"
        for subnet in subnets:
            model.encoder.check_subnet(subnet)
        assert sampler.sample(step) == subnets, "a sample must be a function of (seed, step)"
    twin = make_sampler(name, space, CONFIG, random_subnets=2, seed=3)
    twin.load_state_dict(sampler.state_dict())
    assert [twin.sample(s) for s in range(5)] == [sampler.sample(s) for s in range(5)]


def test_sandwich_has_the_smallest_and_random_members_of_the_space():
    sampler = SandwichSampler(ElasticSpace(), CONFIG, random_subnets=1, seed=0)
    smallest = sampler.sample(0)[1]
    assert smallest == SubnetConfig(layers=(0, 3), heads=(1,) * 4, ffn=(8,) * 4)
    drawn = {sampler.sample(step)[2] for step in range(200)}
    heads = {s.heads[0] for s in drawn}
    assert heads == {1, 2, 3, 4}, "every width of the space is drawn"
    assert {s.layers for s in drawn} == {(0, 3), (0, 1, 2, 3)}, "both depths are drawn"
    assert all(s.ffn[0] == 8 * s.heads[0] for s in drawn), "FFN width follows head width without ffn_widths"
    assert sampler.sample(1) != sampler.sample(0) or sampler.sample(2) != sampler.sample(0)
    other_seed = SandwichSampler(ElasticSpace(), CONFIG, random_subnets=1, seed=1)
    assert [other_seed.sample(s) for s in range(20)] != [sampler.sample(s) for s in range(20)]


def test_per_layer_sampling_mixes_widths():
    space = ElasticSpace(widths=(0.25, 0.5, 1.0), per_layer=True)
    sampler = SandwichSampler(space, CONFIG, random_subnets=1, seed=0)
    mixed = [s for s in (sampler.sample(step)[2] for step in range(50)) if len(set(s.heads)) > 1]
    assert mixed, "per_layer draws a width per layer"


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (6, 9), generator=g)
    mask = torch.ones(6, 9, dtype=torch.bool)
    mask[3:, 6:] = False
    return ids, mask, torch.randint(0, 3, (6,), generator=g)


class _Fixed(SandwichSampler):
    def __init__(self, subnets):
        self.subnets = subnets

    def sample(self, step):
        return list(self.subnets)


@pytest.mark.parametrize("distill", ["none", "logits", "hidden"])
def test_sandwich_gradient_is_the_gradient_of_the_summed_losses(distill):
    torch.manual_seed(0)
    model = TextClassifier(CONFIG, num_labels=3, head_dropout=0.0)
    ids, mask, gold = _batch()
    subnets = [
        SubnetConfig(),
        SubnetConfig(layers=(0, 3), heads=(1,) * 4, ffn=(8,) * 4),
        SubnetConfig(layers=(1, 2), heads=(2, 3, 4, 1), ffn=(16, 8, 32, 24)),
    ]
    task = TASKS["text_classification"](label_smoothing=0.1)
    step = InPlaceDistillation(_Fixed(subnets), task, distill=distill, temperature=2.0, hidden_weight=0.5)
    model.zero_grad()
    batch = {"input_ids": ids, "attention_mask": mask, "labels": gold}
    losses = step.accumulate(model, batch, step=0, autocast=contextlib.nullcontext)
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert model.subnet == SubnetConfig(), "the full model is active again afterwards"
    assert losses.subnets == 3

    # the same loss written out by hand, one graph
    model.zero_grad()
    hidden = model.encoder(ids, mask)
    teacher = model.head(hidden, mask)
    total = F.cross_entropy(teacher, gold, label_smoothing=0.1)
    for sub in subnets[1:]:
        model.set_subnet(sub)
        h = model.encoder(ids, mask)
        logits = model.head(h, mask)
        if distill == "none":
            total = total + F.cross_entropy(logits, gold, label_smoothing=0.1)
            continue
        soft = F.softmax(teacher.detach() / 2.0, -1)
        total = total + 4.0 * F.kl_div(F.log_softmax(logits / 2.0, -1), soft, reduction="batchmean")
        if distill == "hidden":
            diff = ((h - hidden.detach()) ** 2)[mask].mean()
            total = total + 0.5 * diff
    model.set_subnet(None)
    total.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[name], p.grad, atol=1e-6, rtol=1e-5, msg=name)
    assert losses.largest == pytest.approx(F.cross_entropy(teacher, gold, label_smoothing=0.1).item(), abs=1e-6)


def test_distillation_pulls_the_small_subnet_towards_the_teacher():
    torch.manual_seed(0)
    model = TextClassifier(CONFIG, num_labels=3, head_dropout=0.0)
    for module in model.modules():  # large weights: the sub-net starts far from the full model
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.5)
    ids, mask, gold = _batch(1)
    small = SubnetConfig(layers=(0,), heads=(1,) * 4, ffn=(8,) * 4)
    step = InPlaceDistillation(_Fixed([SubnetConfig(), small]), TASKS["text_classification"](), distill="logits")
    batch = {"input_ids": ids, "attention_mask": mask, "labels": gold}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    first = None
    for i in range(30):
        optimizer.zero_grad()
        losses = step.accumulate(model, batch, step=i, autocast=contextlib.nullcontext)
        optimizer.step()
        first = losses.smallest if first is None else first
    assert losses.smallest < first / 2, (first, losses.smallest)


@pytest.mark.parametrize(
    "override, words",
    [
        ("elastic.widths=[0.5]", "must include 1.0"),
        ("elastic.widths=[0, 1]", "fractions in (0, 1]"),
        ("elastic.depths=[]", "non-empty"),
        ("elastic.ffn_widths=[1.5]", "elastic.ffn_widths"),
        ("elastic.distill=soft", "elastic.distill"),
        ("elastic.sampler=greedy", "elastic.sampler"),
        ("elastic.rewire=sometimes", "elastic.rewire"),
        ("elastic.random_subnets=-1", "elastic.random_subnets"),
        ("elastic.temperature=0", "elastic.temperature"),
        ("elastic.width=0.5", "unknown config key"),
    ],
)
def test_bad_elastic_config_is_refused(override, words):
    with pytest.raises(AttncoachError, match=None) as info:
        load_config(None, [override])
    assert words in str(info.value), str(info.value)


def test_elastic_config_accepts_yaml_booleans_for_rewire():
    assert load_config(None, ["elastic.rewire=true"]).elastic.rewire is True
    assert load_config(None, ["elastic.rewire=auto"]).elastic.rewire == "auto"
