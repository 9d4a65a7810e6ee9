"""Tests for MultiHeadSelfAttention: parity with torch, elastic heads, head gates."""

import pytest
import torch
from torch import nn

from attncoach.models.attention import MultiHeadSelfAttention

DIM, HEADS, B, T = 16, 4, 3, 6


def load_from_torch_mha(attn: MultiHeadSelfAttention, reference: nn.MultiheadAttention) -> None:
    """Copies the weights of a torch ``nn.MultiheadAttention`` into ``attn``."""
    with torch.no_grad():
        attn.qkv.weight.copy_(reference.in_proj_weight)
        attn.qkv.bias.copy_(reference.in_proj_bias)
        attn.out.weight.copy_(reference.out_proj.weight)
        attn.out.bias.copy_(reference.out_proj.bias)


@pytest.fixture
def attn() -> MultiHeadSelfAttention:
    torch.manual_seed(0)
    module = MultiHeadSelfAttention(DIM, HEADS)
    with torch.no_grad():  # non-zero biases, so that bias slicing is exercised too
        module.qkv.bias.normal_()
        module.out.bias.normal_()
    return module.eval()


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(B, T, DIM)


def padding_mask() -> torch.Tensor:
    lengths = torch.tensor([T, 4, 1])
    return torch.arange(T)[None, :] < lengths[:, None]  # (B, T), True = real


def test_matches_torch_multihead_attention_without_mask(attn, x):
    reference = nn.MultiheadAttention(DIM, HEADS, batch_first=True).eval()
    load_from_torch_mha(attn, reference)
    with torch.no_grad():
        expected, _ = reference(x, x, x, need_weights=False)
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=0)


def test_matches_torch_multihead_attention_with_padding_mask(attn, x):
    reference = nn.MultiheadAttention(DIM, HEADS, batch_first=True).eval()
    load_from_torch_mha(attn, reference)
    mask = padding_mask()
    with torch.no_grad():
        # torch's key_padding_mask is True where a key is IGNORED, the opposite of ours.
        expected, _ = reference(x, x, x, key_padding_mask=~mask, need_weights=False)
        ours = attn(x, key_padding_mask=mask)
    # torch's fast path may zero the outputs at padded query positions; compare real ones.
    torch.testing.assert_close(ours[mask], expected[mask], atol=1e-5, rtol=0)
    assert torch.isfinite(ours).all()


def test_padded_keys_do_not_affect_real_tokens(attn, x):
    mask = padding_mask()
    noisy = x.clone()
    noisy[~mask] = 100.0
    with torch.no_grad():
        torch.testing.assert_close(attn(noisy, mask)[mask], attn(x, mask)[mask], atol=1e-6, rtol=0)


def test_zero_gate_equals_zeroed_output_projection_columns(attn, x):
    head, head_dim = 2, DIM // HEADS
    gate = torch.ones(HEADS)
    gate[head] = 0.0
    with torch.no_grad():
        attn.set_head_gate(gate)
        gated = attn(x, padding_mask())
        attn.set_head_gate(None)
        attn.out.weight[:, head * head_dim : (head + 1) * head_dim] = 0.0
        torch.testing.assert_close(gated, attn(x, padding_mask()), atol=1e-6, rtol=0)


def test_all_ones_gate_takes_fast_path_and_matches(attn, x):
    with torch.no_grad():
        ungated = attn(x)
        attn.set_head_gate(torch.ones(HEADS))
        assert attn._gate_is_identity
        assert torch.equal(attn(x), ungated)
        attn.set_head_gate(torch.tensor([1.0, 0.5, 1.0, 1.0]))
        assert not attn._gate_is_identity
        assert not torch.equal(attn(x), ungated)
        attn.set_head_gate(None)
        assert attn._gate_is_identity
        assert torch.equal(attn(x), ungated)


def test_gate_requiring_grad_receives_head_importance(attn, x):
    gate = torch.ones(HEADS, requires_grad=True)
    attn.set_head_gate(gate)
    assert not attn._gate_is_identity  # a grad-tracking gate always multiplies
    attn(x).pow(2).sum().backward()
    assert gate.grad is not None and gate.grad.shape == (HEADS,)
    assert (gate.grad.abs() > 0).all()


def test_head_gate_is_not_in_state_dict(attn):
    assert "head_gate" not in attn.state_dict()
    assert attn.head_gate.shape == (HEADS,)


def test_bad_gate_shape_raises(attn):
    with pytest.raises(ValueError, match="shape"):
        attn.set_head_gate(torch.ones(HEADS + 1))


def test_dim_not_divisible_by_heads_raises():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(10, 4)


@pytest.mark.parametrize("active", [1, 3])
def test_active_heads_equal_gating_off_the_remaining_heads(attn, x, active):
    gate = (torch.arange(HEADS) < active).float()
    mask = padding_mask()
    with torch.no_grad():
        attn.set_head_gate(gate)
        expected = attn(x, mask)
        attn.set_head_gate(None)
        attn.active_heads = active
        torch.testing.assert_close(attn(x, mask), expected, atol=1e-6, rtol=0)


def test_active_heads_compose_with_gate(attn, x):
    with torch.no_grad():
        attn.active_heads = 3
        attn.set_head_gate(torch.tensor([1.0, 0.0, 1.0, 1.0]))
        both = attn(x)
        attn.active_heads = HEADS
        attn.set_head_gate(torch.tensor([1.0, 0.0, 1.0, 0.0]))
        torch.testing.assert_close(both, attn(x), atol=1e-6, rtol=0)


def test_num_active_parameters(attn):
    assert attn.num_active_parameters() == sum(p.numel() for p in attn.parameters())
    attn.active_heads = 1
    width = DIM // HEADS
    assert attn.num_active_parameters() == 3 * width * (DIM + 1) + DIM * width + DIM


def test_attention_dropout_only_in_training(x):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(DIM, HEADS, dropout=0.5)
    attn.eval()
    with torch.no_grad():
        assert torch.equal(attn(x), attn(x))
        attn.train()
        assert not torch.equal(attn(x), attn(x))
