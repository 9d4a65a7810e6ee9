"""int8 models: dynamic int8 Linear layers and int8 embedding tables, stored as plain tensors.

:func:`quantize_int8` turns a float model (a :class:`TextClassifier`, a :class:`NextItemModel`)
into one whose every ``nn.Linear`` is an :class:`Int8Linear` and every ``nn.Embedding`` an
:class:`Int8Embedding`. Both keep their weight as an int8 matrix with one float32 scale per
row (symmetric: ``weight ≈ weight_int8 * weight_scale[:, None]``), so the state dict is
ordinary tensors that ``safetensors`` stores, about a quarter of the float bytes.

- :class:`Int8Linear` quantises its input on the fly (per batch: *dynamic* quantisation) and
  multiplies in int8 with PyTorch's quantized CPU kernels (``torch.ops.quantized``, FBGEMM /
  oneDNN / QNNPACK, whichever the build has), 2-4x faster than float32 on a MiniLM-size
  layer. Where the kernels are missing (a CUDA input, a build without them) it multiplies by
  the dequantised weight instead: the same numbers, no speed-up.
- :class:`Int8Embedding` is weight-only: a lookup dequantises just the rows it reads. The
  token table of a small model is most of its bytes, so this is what makes the file small.
  For a next-item model the item table is also the output layer (tied):
  :meth:`Int8Embedding.project` scores hidden states against it with the same int8 kernel.

:func:`int8_skeleton` builds the empty int8 modules of a config, for loading a saved int8
model (``attncoach.models.saved`` reads ``"quantization": "int8"``).

Example:
    >>> from attncoach.models import EncoderConfig, TextClassifier
    >>> config = EncoderConfig(vocab_size=50, dim=16, layers=1, heads=2, ffn_dim=32)
    >>> model = quantize_int8(TextClassifier(config, num_labels=3).eval())
    >>> type(model.encoder.layers[0].ffn.fc1).__name__, model.encoder.embeddings.word.weight_int8.dtype
    ('Int8Linear', torch.int8)
    >>> model(torch.randint(1, 50, (2, 5))).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INT8 = "int8"  # the value of "quantization" in model_config.json


def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantisation with one scale per row: ``weight ≈ q * scale[:, None]``.

    Returns:
        ``q`` (int8, the shape of ``weight``) and ``scale`` (float32, one per row; an all-zero
        row, such as a padding embedding, gets scale 1 and stays exactly zero).

    Example:
        >>> q, scale = quantize_rows(torch.tensor([[0.5, -1.0], [0.0, 0.0]]))
        >>> q.tolist(), scale.tolist()
        ([[64, -127], [0, 0]], [0.007874015718698502, 1.0])
    """
    weight = weight.detach().float()
    peak = weight.abs().amax(dim=1)  # (rows,)
    scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
    q = torch.clamp(torch.round(weight / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


class _Int8Rows(nn.Module):
    """An int8 matrix with a float32 scale per row (the weight of both int8 modules)."""

    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        self.register_buffer("weight_int8", torch.zeros(rows, cols, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(rows))
        self._packed: Any = None  # the weight prepacked for the quantized kernel, built on first use

    @property
    def weight(self) -> Tensor:
        """The dequantised float32 weight (for code that slices a weight: a sub-net run in place)."""
        return self.weight_int8.float() * self.weight_scale[:, None]

    def _set_rows(self, weight: Tensor) -> None:
        q, scale = quantize_rows(weight)
        self.weight_int8.copy_(q)
        self.weight_scale.copy_(scale)
        self._packed = None

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._packed = None  # new weights: pack again
        super()._load_from_state_dict(*args, **kwargs)

    def _linear(self, x: Tensor, bias: Tensor | None) -> Tensor:
        """``x @ weight.T + bias`` in int8 when the quantized kernels can, else with the dequantised weight."""
        if x.device.type == "cpu" and x.dtype == torch.float32:
            packed = self._packed_weight(bias)
            if packed is not None:
                return torch.ops.quantized.linear_dynamic(x.contiguous(), packed, _REDUCE_RANGE.get(_engine(), False))
        return F.linear(x, self.weight.to(x.dtype), None if bias is None else bias.to(x.dtype))

    def _packed_weight(self, bias: Tensor | None) -> Any:
        if self._packed is None:
            self._packed = _pack(self.weight_int8, self.weight_scale, bias)
        return None if self._packed is False else self._packed  # False: the kernels are not available here


# FBGEMM and x86 (their int8 dot products can overflow on CPUs without VNNI) quantise activations
# to 7 bits, as torch.ao.quantization.quantize_dynamic does on them.
_REDUCE_RANGE = {"fbgemm": True, "x86": True}


def _engine() -> str:
    return str(torch.backends.quantized.engine)


def _pack(q: Tensor, scale: Tensor, bias: Tensor | None) -> Any:
    """The weight prepacked for ``torch.ops.quantized.linear_dynamic``, or False where that cannot run."""
    if q.device.type != "cpu" or _engine() == "none":
        return False
    zero_points = torch.zeros(q.shape[0], dtype=torch.long)
    try:
        with warnings.catch_warnings():  # torch marks quantized tensors as deprecated; the kernels remain
            warnings.simplefilter("ignore")
            # q * scale quantises back to exactly q with the same scales
            weight = torch.quantize_per_channel(q.float() * scale[:, None], scale.double(), zero_points, 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(weight, None if bias is None else bias.float())
    except (RuntimeError, AttributeError, NotImplementedError):  # a build without quantized kernels
        return False


class Int8Linear(_Int8Rows):
    """A ``Linear`` with an int8 weight (a scale per output row), float input and output.

    State: ``weight_int8`` ``(out, in)`` int8, ``weight_scale`` ``(out,)``, ``bias`` ``(out,)``
    when the layer has one.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(out_features, in_features)
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """The int8 copy of a float ``Linear``."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            layer._set_rows(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach().float())
        return layer

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in)`` -> ``(..., out)``."""
        return self._linear(x, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int8Embedding(_Int8Rows):
    """An embedding table stored in int8 with a scale per row; a lookup dequantises the rows it reads.

    State: ``weight_int8`` ``(num_embeddings, embedding_dim)`` int8, ``weight_scale`` ``(num_embeddings,)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__(num_embeddings, embedding_dim)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding) -> Int8Embedding:
        """The int8 copy of a float ``Embedding``."""
        table = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx)
        with torch.no_grad():
            table._set_rows(embedding.weight)
        return table

    def forward(self, ids: Tensor) -> Tensor:
        """Long ids ``(...)`` -> float32 vectors ``(..., embedding_dim)``."""
        rows = F.embedding(ids, self.weight_int8).float()  # (..., D)
        return rows * self.weight_scale[ids].unsqueeze(-1)

    def project(self, hidden: Tensor) -> Tensor:
        """``hidden @ table.T``: each hidden state ``(..., D)`` scored against every row (tied output layer)."""
        return self._linear(hidden, None)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of ``model`` (in eval mode): every Linear and Embedding quantised; ``model`` is unchanged.

    Only a fixed model can be quantised: a sub-net of an elastic model is exported first
    (:func:`attncoach.elastic.export.export_subnet`), since the int8 kernels run whole layers.
    """
    quantized = copy.deepcopy(model).float().cpu().eval()
    _replace(quantized, Int8Linear.from_linear, Int8Embedding.from_embedding)
    return quantized


def int8_skeleton(model: nn.Module) -> nn.Module:
    """``model`` with each Linear and Embedding replaced by an int8 module of its shape (weights zero), to load into."""
    _replace(
        model,
        lambda m: Int8Linear(m.in_features, m.out_features, bias=m.bias is not None),
        lambda m: Int8Embedding(m.num_embeddings, m.embedding_dim, m.padding_idx),
    )
    return model.eval()


def is_int8(model: nn.Module) -> bool:
    """Whether ``model`` holds int8 modules."""
    return any(isinstance(m, _Int8Rows) for m in model.modules())


def _replace(model: nn.Module, linear: Any, embedding: Any) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, linear(child))
        elif isinstance(child, nn.Embedding):
            setattr(model, name, embedding(child))
        else:
            _replace(child, linear, embedding)


__all__ = ["INT8", "Int8Embedding", "Int8Linear", "int8_skeleton", "is_int8", "quantize_int8", "quantize_rows"]
