"""Head and FFN-neuron importance, and rewiring so that prefix sub-nets keep the best ones.

- Head importance (Michel et al., 2019, "Are Sixteen Heads Really Better than One?"):
  ``I_h = sum over batches of |dL / d gate_h|``, with a gate of ones on each head's output.
- Neuron importance (DynaBERT, Hou et al., 2020; Molchanov et al., 2017): for FFN neuron j,
  ``|sum over its weights w of w * dL/dw|`` (its row of fc1 with the bias, its column of
  fc2), accumulated over batches.
- Rewiring (DynaBERT): permute each layer's heads and neurons in order of decreasing
  importance. The full model computes exactly the same function afterwards; a sub-net that
  keeps the first ``k`` heads or neurons then keeps the most important ones.

Example:
    >>> scores = importance(model, batches)             # doctest: +SKIP
    >>> rewire(model, scores)                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from attncoach.models.classifier import TextClassifier
from attncoach.tasks import TASKS, Task


@dataclass
class Importance:
    """Per-layer importance scores of a model's heads and FFN neurons."""

    heads: list[Tensor]  # per layer: (heads,)
    neurons: list[Tensor]  # per layer: (ffn_dim,)


def importance(model: torch.nn.Module, batches: Iterable[dict[str, Tensor]], task: Task | None = None) -> Importance:
    """Accumulate head and neuron importance over labelled batches (full model, eval mode).

    Args:
        model: the model (an elastic stack under ``model.encoder``); its weights and gradients
            are left as they were.
        batches: the task's batches (e.g. ``input_ids``, ``attention_mask`` and ``labels``).
        task: whose loss the importance is the gradient of; None = ``text_classification``.
    """
    if task is None:
        task = TASKS["text_classification"]()
    layers = model.encoder.layers
    was_training = model.training
    model.eval()
    gates = [torch.ones(layer.attn.heads, requires_grad=True) for layer in layers]
    heads = [torch.zeros(layer.attn.heads) for layer in layers]
    neurons = [torch.zeros(layer.ffn.ffn_dim) for layer in layers]
    saved_grads = [p.grad for p in model.parameters()]
    try:
        for layer, gate in zip(layers, gates):
            layer.attn.set_head_gate(gate)
        for batch in batches:
            model.zero_grad(set_to_none=True)
            for gate in gates:
                gate.grad = None
            task.step(model, batch).loss.backward()
            for i, layer in enumerate(layers):
                heads[i] += gates[i].grad.abs()
                neurons[i] += _neuron_scores(layer.ffn)
    finally:
        for layer in layers:
            layer.attn.set_head_gate(None)
        for p, grad in zip(model.parameters(), saved_grads):
            p.grad = grad
        model.train(was_training)
    return Importance(heads, neurons)


def _neuron_scores(ffn: torch.nn.Module) -> Tensor:
    """|sum of w * grad w| over each neuron's fc1 row (with bias) and fc2 column."""
    w1, b1, w2 = ffn.fc1.weight, ffn.fc1.bias, ffn.fc2.weight
    score = (w1 * w1.grad).sum(dim=1) + b1 * b1.grad + (w2 * w2.grad).sum(dim=0)  # (ffn_dim,)
    return score.detach().abs()


@torch.no_grad()
def rewire(model: TextClassifier, scores: Importance) -> None:
    """Reorder every layer's heads and FFN neurons by decreasing importance, in place.

    The model's outputs do not change; only the order of heads and neurons inside each
    layer does, so that prefix sub-nets keep the most important ones.
    """
    for layer, head_scores, neuron_scores in zip(model.encoder.layers, scores.heads, scores.neurons):
        _permute_heads(layer.attn, torch.argsort(head_scores, descending=True, stable=True))
        _permute_neurons(layer.ffn, torch.argsort(neuron_scores, descending=True, stable=True))


def _permute_heads(attn: torch.nn.Module, order: Tensor) -> None:
    inner, head_dim = attn.heads * attn.head_dim, attn.head_dim  # inner width I, may differ from D
    # output features of q, k and v, grouped by head: (3, H, Dh) -> new head order
    rows = torch.arange(3 * inner).view(3, attn.heads, head_dim)[:, order].reshape(-1)
    attn.qkv.weight.copy_(attn.qkv.weight[rows])
    if attn.qkv.bias is not None:
        attn.qkv.bias.copy_(attn.qkv.bias[rows])
    cols = torch.arange(inner).view(attn.heads, head_dim)[order].reshape(-1)
    attn.out.weight.copy_(attn.out.weight[:, cols])


def _permute_neurons(ffn: torch.nn.Module, order: Tensor) -> None:
    ffn.fc1.weight.copy_(ffn.fc1.weight[order])
    ffn.fc1.bias.copy_(ffn.fc1.bias[order])
    ffn.fc2.weight.copy_(ffn.fc2.weight[:, order])
