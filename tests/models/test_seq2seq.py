"""The translation model: teacher forcing, the KV cache, beam search, sub-nets of both stacks and their export."""

import pytest
import torch

from attncoach.elastic.export import export_subnet
from attncoach.elastic.space import subnet_for
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.seq2seq import TranslationModel


def _model(shared: bool = True, norm_first: bool = True) -> TranslationModel:
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=30, dim=16, layers=5, heads=4, ffn_dim=32, max_position=24, norm_first=norm_first)
    return TranslationModel(config, encoder_layers=2, target_vocab_size=None if shared else 25).eval()


SOURCE = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]])


@pytest.mark.parametrize("norm_first", [True, False])
def test_cached_steps_give_the_teacher_forced_logits(norm_first):
    model = _model(norm_first=norm_first)
    target = torch.tensor([[2, 11, 12, 13], [2, 14, 15, 16]])
    full = model(SOURCE, SOURCE != 0, target)  # (B, T, V)
    beams = model._start(model.encode(SOURCE, SOURCE != 0), SOURCE != 0, 1)
    for t in range(target.shape[1]):
        beams.tokens = target[:, : t + 1]
        stepped = model._next_log_probs(beams, use_cache=True)
        assert torch.allclose(stepped, torch.log_softmax(full[:, t], -1), atol=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_the_cache_changes_no_translation(beam):
    model = _model(shared=False)
    with_cache = model.generate(SOURCE, beam=beam, max_length=12)
    assert with_cache == model.generate(SOURCE, beam=beam, max_length=12, use_cache=False)
    assert len(with_cache) == 2 and all(len(t) <= 12 for t in with_cache)


def test_beam_search_scores_at_least_greedy():
    model = _model()
    encoded = model.encode(SOURCE, SOURCE != 0)

    def log_prob(tokens):
        target = torch.tensor([[model.bos_id, *tokens]])
        gold = torch.tensor([[*tokens, model.eos_id]])
        logits = model(SOURCE[:1], SOURCE[:1] != 0, target)
        return torch.log_softmax(logits, -1).gather(-1, gold[..., None]).sum().item()

    assert encoded.shape[0] == 2
    greedy = model.generate(SOURCE[:1], max_length=30)[0]
    beam = model.generate(SOURCE[:1], beam=4, max_length=30, length_penalty=0.0)[0]
    if model.eos_id not in greedy and len(greedy) < 30:  # both finished: the beam's raw score is no worse
        assert log_prob(beam) >= log_prob(greedy) - 1e-4


def test_a_beam_below_one_is_refused():
    with pytest.raises(ValueError, match="beam size"):
        _model().generate(SOURCE, beam=0)


def test_sub_nets_cover_both_stacks_and_export_identically():
    model = _model(shared=False)
    subnet = subnet_for(model.encoder.config, width=0.5, depth=0.6)
    assert any(i < 2 for i in subnet.layers) and any(i >= 2 for i in subnet.layers)
    model.set_subnet(subnet)
    target = torch.tensor([[2, 11, 12], [2, 14, 0]])
    expected = model(SOURCE, SOURCE != 0, target)
    small = export_subnet(model, subnet)
    assert small.encoder.encoder_layers == sum(1 for i in subnet.layers if i < 2)
    assert torch.allclose(small(SOURCE, SOURCE != 0, target), expected, atol=1e-5)
    assert small.generate(SOURCE, max_length=8) == model.generate(SOURCE, max_length=8)
    assert small.encoder.num_parameters() == model.encoder.num_parameters(active_only=True)


def test_a_sub_net_without_a_decoder_layer_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="no decoder layer"):
        model.set_subnet(SubnetConfig(layers=(0, 1)))
    with pytest.raises(ValueError, match="no encoder layer"):
        model.set_subnet(SubnetConfig(layers=(3,)))


def test_config_round_trip_and_bad_keys():
    model = _model(shared=False)
    twin = TranslationModel.from_config_dict(model.config_dict())
    assert twin.config_dict() == model.config_dict()
    with pytest.raises(ValueError, match="unknown TranslationModel config key"):
        TranslationModel.from_config_dict({**model.config_dict(), "oops": 1})
    with pytest.raises(ValueError, match="encoder_layers"):
        TranslationModel(EncoderConfig(vocab_size=10, dim=8, layers=2, heads=2, ffn_dim=8), encoder_layers=2)
