"""Multi-head self-attention with elastic heads and per-head gates.

Two independent knobs act on the heads of :class:`MultiHeadSelfAttention`:

- ``active_heads`` (set by the elastic encoder): only the first ``k`` heads are computed, by
  slicing views of the projection weights. Nothing is copied, and compute shrinks with ``k``.
- ``head_gate`` (a ``(heads,)`` buffer): each head's output is multiplied by its gate before
  the output projection. Setting a gate that requires grad gives ``dL/d gate``, the head
  importance score of Michel et al., 2019 ("Are Sixteen Heads Really Better than One?").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _head_width(dim: int, heads: int, head_dim: int | None) -> int:
    """``head_dim``, or ``dim // heads`` (which must divide evenly)."""
    if head_dim is None and dim % heads != 0:
        raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
    return dim // heads if head_dim is None else head_dim


class MultiHeadSelfAttention(nn.Module):
    """Self-attention over ``heads`` heads of size ``head_dim`` (default ``dim // heads``).

    The input projection is fused: ``qkv.weight`` stacks the query, key and value weights
    along its output dimension in that order, the layout of
    ``torch.nn.MultiheadAttention.in_proj_weight``. The heads together are ``heads * head_dim``
    wide (the inner width ``I``), which equals ``dim`` unless ``head_dim`` is given, as in an
    exported sub-net that kept fewer heads.

    Args:
        dim: Model width ``D``; must be divisible by ``heads`` unless ``head_dim`` is given.
        heads: Number of attention heads ``H``.
        dropout: Dropout on the attention probabilities (training mode only).
        bias: Whether the projections have biases.
        head_dim: Width ``Dh`` of each head; ``None`` = ``dim // heads``.

    Example:
        >>> attn = MultiHeadSelfAttention(dim=16, heads=4)
        >>> x = torch.randn(2, 5, 16)
        >>> mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
        >>> attn(x, key_padding_mask=mask).shape
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.dim, self.heads, self.dropout, self.active_heads = dim, heads, dropout, heads
        self.head_dim = _head_width(dim, heads, head_dim)
        self.inner_dim = heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * self.inner_dim, bias=bias)  # [q; k; v] rows, each (I, D)
        self.out = nn.Linear(self.inner_dim, dim, bias=bias)
        self.register_buffer("head_gate", torch.ones(heads), persistent=False)
        self._gate_is_identity = True

    def set_head_gate(self, gate: Tensor | None) -> None:
        """Sets the per-head output gate.

        Args:
            gate: A ``(heads,)`` tensor, or ``None`` for all ones (no gating). A gate that
                requires grad is kept in the autograd graph, so after ``backward()`` its
                ``.grad`` holds ``dL/d gate`` per head.

        Raises:
            ValueError: If ``gate`` does not have shape ``(heads,)``.
        """
        if gate is None:
            self.head_gate = torch.ones_like(self.head_gate, requires_grad=False)
            self._gate_is_identity = True
            return
        if gate.shape != (self.heads,):
            raise ValueError(f"head gate must have shape ({self.heads},), got {tuple(gate.shape)}")
        self.head_gate = gate.to(device=self.head_gate.device, dtype=self.head_gate.dtype)
        self._gate_is_identity = not gate.requires_grad and bool((gate == 1).all())

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Attends every token to every real token, or only to real tokens up to itself.

        Args:
            x: Input of shape ``(B, T, D)``.
            key_padding_mask: Optional bool ``(B, T)``, ``True`` for real tokens and
                ``False`` for padding. A row with no real token gives NaN outputs; so does,
                with ``causal=True``, a position with no real token at or before it (never
                the case with right padding).
            causal: If ``True``, position ``t`` attends only to positions ``<= t``
                (autoregressive, as in GPT or SASRec).

        Returns:
            Tensor of shape ``(B, T, D)``.

        Example:
            >>> attn = MultiHeadSelfAttention(dim=8, heads=2).eval()
            >>> x = torch.randn(1, 4, 8)
            >>> later = x.clone()
            >>> later[0, 3] += 1.0  # changing the last token does not change earlier outputs
            >>> torch.allclose(attn(x, causal=True)[0, :3], attn(later, causal=True)[0, :3])
            True
        """
        batch, length, _ = x.shape
        q, k, v = (self._split_heads(t) for t in self._project_qkv(x))  # each (B, h, T, Dh)
        mask = None
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, T), True = may attend
            if causal:
                allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()  # (T, T)
                mask = mask & allowed  # (B, 1, T, T): real keys at or before the query
        dropout_p = self.dropout if self.training else 0.0
        is_causal = causal and mask is None  # SDPA builds the lower-triangular mask itself
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        if not self._gate_is_identity:
            context = context * self.head_gate[: self.active_heads, None, None]  # (B, h, T, Dh)
        context = context.transpose(1, 2).reshape(batch, length, -1)  # (B, T, h * Dh)
        return self._project_out(context)

    def forward_cached(self, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One decoding step of causal self-attention: the new position attends to the cached keys and values of
        every earlier position and to itself (a KV cache: earlier positions are never projected again).

        Args:
            x: The new position, ``(B, 1, D)``.
            past: Keys and values of the earlier positions, each ``(B, h, t, Dh)`` for the ``h`` active heads,
                or ``None`` at the first position.

        Returns:
            The output ``(B, 1, D)`` and the cache extended by this position, each ``(B, h, t + 1, Dh)``.

        Example:
            >>> attn = MultiHeadSelfAttention(dim=8, heads=2).eval()
            >>> x = torch.randn(1, 3, 8)
            >>> past, steps = None, []
            >>> for t in range(3):
            ...     out, past = attn.forward_cached(x[:, t : t + 1], past)
            ...     steps.append(out)
            >>> torch.allclose(torch.cat(steps, 1), attn(x, causal=True), atol=1e-6)
            True
        """
        if x.shape[1] != 1:
            raise ValueError(f"forward_cached takes one new position at a time, got {x.shape[1]}")
        q, k, v = (self._split_heads(t) for t in self._project_qkv(x))  # each (B, h, 1, Dh)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, h, t + 1, Dh)
            v = torch.cat([past[1], v], dim=2)
        context = F.scaled_dot_product_attention(q, k, v)  # the one query may see every cached key
        if not self._gate_is_identity:
            context = context * self.head_gate[: self.active_heads, None, None]
        context = context.transpose(1, 2).reshape(x.shape[0], 1, -1)  # (B, 1, h * Dh)
        return self._project_out(context), (k, v)

    @torch.no_grad()
    def attention_probs(self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """The softmax attention weights that :meth:`forward` applies to the same inputs (before dropout).

        Computed apart from :meth:`forward`, which lets SDPA fuse them away; for looking at, not training.

        Returns:
            ``(B, h, T, T)`` for the ``h`` active heads; row ``t`` is query ``t``'s distribution over
            the keys (0 on padding, and on later positions when ``causal``).

        Example:
            >>> attn = MultiHeadSelfAttention(dim=8, heads=2)
            >>> p = attn.attention_probs(torch.randn(1, 3, 8), torch.tensor([[True, True, False]]))
            >>> p.shape, bool(torch.allclose(p.sum(-1), torch.ones(1, 2, 3))), float(p[..., 2].abs().max())
            (torch.Size([1, 2, 3, 3]), True, 0.0)
        """
        q, k, _ = (self._split_heads(t) for t in self._project_qkv(x))  # each (B, h, T, Dh)
        scores = (q @ k.transpose(-1, -2)).float() / self.head_dim**0.5  # (B, h, T, T)
        length = x.shape[1]
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask.to(torch.bool)[:, None, None, :], float("-inf"))
        if causal:
            later = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)  # (T, T)
            scores = scores.masked_fill(later, float("-inf"))
        return F.softmax(scores, dim=-1).nan_to_num(0.0)  # a query with no key to see: all zeros

    def num_active_parameters(self) -> int:
        """Number of parameters used by the currently active heads."""
        width = self.active_heads * self.head_dim
        has_bias = self.qkv.bias is not None
        qkv = 3 * width * (self.dim + has_bias)
        out = self.dim * width + (self.dim if self.out.bias is not None else 0)
        return qkv + out

    def _project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.active_heads == self.heads:
            return self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, I)
        # Keep the first k heads of q, k and v: row blocks of the stacked weight, as views.
        width = self.active_heads * self.head_dim
        weight = self.qkv.weight.view(3, self.inner_dim, self.dim)  # (3, I, D)
        bias = None if self.qkv.bias is None else self.qkv.bias.view(3, self.inner_dim)
        return tuple(
            F.linear(x, weight[i, :width], None if bias is None else bias[i, :width]) for i in range(3)
        )  # 3 x (B, T, k * Dh)

    def _project_out(self, context: Tensor) -> Tensor:
        if self.active_heads == self.heads:
            return self.out(context)
        width = self.active_heads * self.head_dim
        return F.linear(context, self.out.weight[:, :width], self.out.bias)  # (B, T, D)

    def _split_heads(self, t: Tensor) -> Tensor:
        batch, length, _ = t.shape
        return t.view(batch, length, -1, self.head_dim).transpose(1, 2)  # (B, h, T, Dh)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}, active_heads={self.active_heads}"


class CrossAttention(nn.Module):
    """Attention from decoder positions (queries) to the encoder's outputs (keys and values), with elastic heads.

    Like :class:`MultiHeadSelfAttention`, only the first ``active_heads`` heads run, as views of the weights.
    The encoder's keys and values are projected once per source (:meth:`memory`) and reused at every
    decoding step.

    Args:
        dim: Model width ``D``.
        heads: Number of heads ``H``.
        dropout: Dropout on the attention probabilities (training mode only).
        head_dim: Width of each head; ``None`` = ``dim // heads``.

    Example:
        >>> cross = CrossAttention(dim=16, heads=4).eval()
        >>> memory = cross.memory(torch.randn(2, 7, 16))  # keys, values: (B, h, S, Dh)
        >>> cross(torch.randn(2, 3, 16), memory, torch.ones(2, 7, dtype=torch.bool)).shape
        torch.Size([2, 3, 16])
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.heads, self.dropout, self.active_heads = dim, heads, dropout, heads
        self.head_dim = _head_width(dim, heads, head_dim)
        self.inner_dim = heads * self.head_dim
        self.q = nn.Linear(dim, self.inner_dim)
        self.kv = nn.Linear(dim, 2 * self.inner_dim)  # [k; v] rows, each (I, D)
        self.out = nn.Linear(self.inner_dim, dim)

    def memory(self, encoded: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of the encoder's outputs ``(B, S, D)`` for the active heads, each ``(B, h, S, Dh)``."""
        if self.active_heads == self.heads:
            k, v = self.kv(encoded).chunk(2, dim=-1)  # 2 x (B, S, I)
        else:
            width = self.active_heads * self.head_dim
            weight = self.kv.weight.view(2, self.inner_dim, self.dim)  # (2, I, D)
            bias = self.kv.bias.view(2, self.inner_dim)
            k, v = (F.linear(encoded, weight[i, :width], bias[i, :width]) for i in range(2))
        return self._split_heads(k), self._split_heads(v)

    def forward(self, x: Tensor, memory: tuple[Tensor, Tensor], memory_mask: Tensor | None = None) -> Tensor:
        """Attends every position of ``x`` ``(B, T, D)`` to the real source positions.

        Args:
            x: Decoder states ``(B, T, D)``.
            memory: :meth:`memory` of the encoder's outputs.
            memory_mask: Optional bool ``(B, S)``, True on real source tokens.

        Returns:
            ``(B, T, D)``.
        """
        batch, length, _ = x.shape
        width = self.active_heads * self.head_dim
        if self.active_heads == self.heads:
            q = self.q(x)
        else:
            q = F.linear(x, self.q.weight[:width], self.q.bias[:width])  # (B, T, h * Dh)
        q = self._split_heads(q)  # (B, h, T, Dh)
        mask = None if memory_mask is None else memory_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, S)
        dropout_p = self.dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, memory[0], memory[1], attn_mask=mask, dropout_p=dropout_p)
        context = context.transpose(1, 2).reshape(batch, length, -1)  # (B, T, h * Dh)
        if self.active_heads == self.heads:
            return self.out(context)
        return F.linear(context, self.out.weight[:, :width], self.out.bias)

    def num_active_parameters(self) -> int:
        """Number of parameters used by the active heads."""
        width = self.active_heads * self.head_dim
        return 3 * width * (self.dim + 1) + self.dim * width + self.dim

    def _split_heads(self, t: Tensor) -> Tensor:
        batch, length, _ = t.shape
        return t.view(batch, length, -1, self.head_dim).transpose(1, 2)  # (B, h, T, Dh)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}, active_heads={self.active_heads}"
