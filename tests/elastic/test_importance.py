"""Head/neuron importance and rewiring: scores, gate gradients, invariance of the full model."""

import pytest
import torch
import torch.nn.functional as F

from attncoach.elastic.importance import importance, rewire
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig


def _model_and_batches(seed=0, norm_first=True):
    torch.manual_seed(seed)
    cfg = EncoderConfig(
        vocab_size=60,
        dim=16,
        layers=2,
        heads=4,
        ffn_dim=32,
        max_position=16,
        dropout=0.0,
        attention_dropout=0.0,
        norm_first=norm_first,
        type_vocab_size=0 if norm_first else 2,
    )
    model = TextClassifier(cfg, num_labels=3, head_dropout=0.0)
    batches = []
    for _ in range(3):
        ids = torch.randint(5, 60, (8, 10))
        mask = torch.ones(8, 10, dtype=torch.bool)
        mask[:3, 7:] = False
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids[:, 0] % 3})
    return model, batches


def test_scores_have_the_model_shape_and_leave_it_untouched():
    model, batches = _model_and_batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = importance(model, batches)
    assert [s.shape for s in scores.heads] == [torch.Size([4])] * 2
    assert [s.shape for s in scores.neurons] == [torch.Size([32])] * 2
    assert all((s >= 0).all() and s.sum() > 0 for s in scores.heads + scores.neurons)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(layer.attn._gate_is_identity for layer in model.encoder.layers)


def test_head_importance_is_the_gate_gradient():
    model, batches = _model_and_batches()
    scores = importance(model, batches[:1])
    layer = model.encoder.layers[1]
    gate = torch.ones(4, requires_grad=True)
    layer.attn.set_head_gate(gate)
    F.cross_entropy(model(batches[0]["input_ids"], batches[0]["attention_mask"]), batches[0]["labels"]).backward()
    layer.attn.set_head_gate(None)
    assert torch.allclose(scores.heads[1], gate.grad.abs())


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN scratch", "post-LN BERT layout"])
def test_rewiring_keeps_the_full_model_and_sorts_importance(norm_first):
    model, batches = _model_and_batches(norm_first=norm_first)
    model.eval()
    x = batches[0]
    before = model(x["input_ids"], x["attention_mask"])
    rewire(model, importance(model, batches))
    after = model(x["input_ids"], x["attention_mask"])
    assert torch.allclose(before, after, atol=1e-6)
    again = importance(model, batches)
    for s in again.heads + again.neurons:
        assert torch.all(s[:-1] >= s[1:] - 1e-6), s  # most important first
