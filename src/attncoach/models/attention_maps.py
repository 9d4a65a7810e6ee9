"""Attention maps: the softmax weights of every active layer and head, for looking at a model.

:func:`attention_maps` runs an ordinary forward pass of any attncoach model (a text
classifier, from scratch or on a pretrained backbone such as MiniLM, or a next-item model)
with forward hooks on its attention modules, and recomputes each layer's weights from the
input that layer received. Training never goes through here, so its speed is untouched.

Example:
    >>> from attncoach.models import EncoderConfig, TextClassifier
    >>> model = TextClassifier(EncoderConfig(vocab_size=30, dim=16, layers=2, heads=4, ffn_dim=32), 3)
    >>> maps = attention_maps(model, torch.tensor([[2, 7, 9, 3, 0]]), torch.tensor([[1, 1, 1, 1, 0]]))
    >>> [tuple(m.shape) for m in maps]
    [(1, 4, 5, 5), (1, 4, 5, 5)]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


@torch.no_grad()
def attention_maps(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None) -> list[Tensor]:
    """The attention weights of each active layer of ``model`` on one batch, in eval mode.

    Args:
        model: a model with ``encoder.layers[i].attn`` (every attncoach model), called as
            ``model(input_ids, attention_mask)``.
        input_ids: ``(B, T)`` token or item ids.
        attention_mask: ``(B, T)``, true/1 for real positions; None = all real.

    Returns:
        One float32 tensor ``(B, H_l, T, T)`` per active layer (on the model's device), in order: ``[b, h, q, k]`` is
        how much query ``q`` attends to key ``k`` in head ``h``; rows of real queries sum to 1,
        and padding (or, in a causal model, a later position) gets 0.
    """
    layers = model.encoder.layers
    captured: dict[int, Tensor] = {}

    def keep(index: int) -> Any:
        def hook(module: Any, args: tuple, kwargs: dict, out: Any) -> None:
            x, mask, causal = _attention_inputs(args, kwargs)
            captured[index] = module.attention_probs(x, mask, causal)

        return hook

    hooks = [layer.attn.register_forward_hook(keep(i), with_kwargs=True) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        model(input_ids, attention_mask)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return [captured[i] for i in sorted(captured)]


def _attention_inputs(args: tuple, kwargs: dict) -> tuple[Tensor, Tensor | None, bool]:
    """``(x, key_padding_mask, causal)`` of a call of ``MultiHeadSelfAttention.forward``."""
    names = ("x", "key_padding_mask", "causal")
    given = {**dict(zip(names, args)), **kwargs}
    return given["x"], given.get("key_padding_mask"), bool(given.get("causal", False))
