"""The optimizer: AdamW over parameter groups with their own base learning rates.

Groups differ in weight decay (matrices only; none on biases, norms and embeddings) and in
base LR: with ``train.layer_lr_decay`` = d < 1, encoder layer i of L (1-based, top = L)
trains at ``lr * d**(L - i)`` and the embeddings at ``lr * d**L`` (layer-wise LR decay,
Clark et al. 2020, ELECTRA), so that a pretrained encoder's lower layers move least; the
task head trains at ``train.head_lr`` (default ``train.lr``). Each group keeps its
``base_lr``; the schedule multiplies it every step.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from attncoach.config import TrainConfig

_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.")


def _depth(name: str, layers: int) -> int | None:
    """0 for embeddings, i for encoder layer i (1-based), L for the final norm; None for the head."""
    if name.startswith("encoder.embeddings."):
        return 0
    match = _LAYER.match(name)
    if match:
        return int(match.group(1)) + 1
    if name.startswith("encoder."):
        return layers
    return None


def freeze_lower_layers(model: torch.nn.Module, layers: int) -> list[str]:
    """Stop training the embeddings and the lowest ``layers`` encoder layers; returns their parameter names.

    Their parameters no longer require grad, so :func:`parameter_groups` leaves them out of the
    optimizer and autograd records nothing below the first layer that trains: each step's
    backward pass skips the frozen prefix (Lee et al. 2019 found that the lower layers of a
    pretrained encoder change least in fine-tuning). ``layers = 0`` freezes nothing; all of them
    (with the final norm of a pre-LN encoder) leaves only the task head training.

    Raises:
        ValueError: ``layers`` is more than the encoder has.

    Example:
        >>> frozen = freeze_lower_layers(model, 2)  # doctest: +SKIP
        >>> frozen[0]                               # doctest: +SKIP
        'encoder.embeddings.word.weight'
    """
    if layers <= 0:
        return []
    total = model.encoder.config.layers
    if layers > total:
        raise ValueError(f"cannot freeze {layers} layers of an encoder with {total}")
    frozen = []
    for name, param in model.named_parameters():
        depth = _depth(name, total)
        if depth is not None and depth <= layers:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def parameter_groups(model: torch.nn.Module, t: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups keyed by (base LR, weight decay), in a stable order.

    Example:
        >>> groups = parameter_groups(model, TrainConfig(lr=1e-3, layer_lr_decay=0.5))  # doctest: +SKIP
        >>> sorted({g["base_lr"] for g in groups})                                     # doctest: +SKIP
        [0.00025, 0.0005, 0.001]
    """
    layers = getattr(getattr(model, "encoder", None), "config", None)
    depth_total = layers.layers if layers is not None else 0
    head_lr = t.head_lr if t.head_lr is not None else t.lr
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = _depth(name, depth_total)
        decay = 1.0 if t.layer_lr_decay is None else t.layer_lr_decay
        base_lr = head_lr if depth is None else t.lr * decay ** (depth_total - depth)
        plain = param.ndim < 2 or "norm" in name or "embed" in name
        groups.setdefault((base_lr, 0.0 if plain else t.weight_decay), []).append(param)
    return [{"params": params, "base_lr": lr, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`; the fused kernel where this torch has one for the device."""
    try:
        return torch.optim.AdamW(parameter_groups(model, t), lr=t.lr, betas=tuple(t.betas), fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for these parameters
        return torch.optim.AdamW(parameter_groups(model, t), lr=t.lr, betas=tuple(t.betas))
