"""Elastic transformer encoder: one set of weights, many sub-networks.

Every layer can run with its first ``k`` heads and a prefix of its FFN neurons, and the
encoder can skip layers (DynaBERT, Hou et al., 2020; Once-for-All, Cai et al., 2020).
:class:`SubnetConfig` names a sub-network and :meth:`ElasticEncoder.set_subnet` switches to it
by slicing weight views at run time; no weight is ever copied.

Example:
    >>> config = EncoderConfig(vocab_size=100, dim=32, layers=2, heads=4, ffn_dim=64)
    >>> encoder = ElasticEncoder(config)
    >>> ids = torch.randint(1, 100, (2, 7))
    >>> encoder.set_subnet(SubnetConfig(layers=(1,), heads=(4, 2), ffn=(64, 32)))
    >>> encoder(ids).shape
    torch.Size([2, 7, 32])
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attncoach.models.attention import MultiHeadSelfAttention

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,  # exact (erf) GELU, as in BERT
    "relu": F.relu,
}

_POSITIVE_FIELDS = ("vocab_size", "dim", "layers", "heads", "ffn_dim", "max_position", "layer_norm_eps")


def _check_known_keys(cls: type, data: Mapping[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ValueError(f"unknown {cls.__name__} key {key!r}; valid keys: {sorted(known)}")


@dataclass
class EncoderConfig:
    """Architecture of an :class:`ElasticEncoder` (of its full, largest sub-network).

    Attributes:
        vocab_size: Number of token ids.
        dim: Hidden width ``D``.
        layers: Number of encoder layers.
        heads: Attention heads per layer; ``dim`` must be divisible by it unless ``head_dim``
            is given.
        ffn_dim: Width of the feed-forward hidden layer.
        max_position: Longest sequence the learned position embeddings cover.
        dropout: Dropout on embeddings and on the attention and FFN outputs (residual branches).
        attention_dropout: Dropout on attention probabilities.
        activation: FFN activation, a key of ``ACTIVATIONS``.
        norm_first: ``True`` for pre-LN (with a final LayerNorm), ``False`` for BERT-style
            post-LN.
        layer_norm_eps: Epsilon of every LayerNorm.
        type_vocab_size: Number of token types (BERT segments); 0 disables them.
        pad_id: Id of the padding token; its embedding row starts at zero and gets no grad.
        head_dim: Width of each attention head; ``None`` = ``dim // heads``.
        layer_heads: Heads of each layer (one value per layer); ``None`` = ``heads`` in
            every layer. Set by :func:`attncoach.elastic.export.export_subnet`.
        layer_ffn: FFN width of each layer; ``None`` = ``ffn_dim`` in every layer.

    Example:
        >>> config = EncoderConfig(vocab_size=100, dim=32, layers=2, heads=4, head_dim=8,
        ...                        layer_heads=[4, 1], layer_ffn=[64, 16])
        >>> config.heads_per_layer(), config.ffn_per_layer(), config.resolved_head_dim()
        ((4, 1), (64, 16), 8)
    """

    vocab_size: int
    dim: int = 128
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 512
    max_position: int = 128
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    norm_first: bool = True
    layer_norm_eps: float = 1e-5
    type_vocab_size: int = 0
    pad_id: int = 0
    head_dim: int | None = None
    layer_heads: list[int] | None = None
    layer_ffn: list[int] | None = None

    def __post_init__(self) -> None:
        for name in ("layer_heads", "layer_ffn"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))  # so that configs compare equal
        for field in dataclasses.fields(self):
            self._check_type(field.name, field.type)
        for name in _POSITIVE_FIELDS:
            self._require(name, getattr(self, name) > 0, "positive")
        if self.head_dim is None:
            self._require("dim", self.dim % self.heads == 0, f"divisible by heads ({self.heads})")
        else:
            self._require("head_dim", self.head_dim > 0, "positive")
        for name in ("layer_heads", "layer_ffn"):
            values = getattr(self, name)
            if values is not None:
                rule = f"a list of {self.layers} values (one per layer), each >= 1"
                self._require(name, len(values) == self.layers and min(values) >= 1, rule)
        self._require("dropout", 0 <= self.dropout < 1, "in [0, 1)")
        self._require("attention_dropout", 0 <= self.attention_dropout < 1, "in [0, 1)")
        self._require("activation", self.activation in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}")
        self._require("type_vocab_size", self.type_vocab_size >= 0, ">= 0")
        self._require("pad_id", 0 <= self.pad_id < self.vocab_size, "in [0, vocab_size)")

    def _check_type(self, name: str, type_name: str) -> None:
        # Annotations are strings here (``from __future__ import annotations``): "int",
        # "int | None", "list[int] | None".
        value = getattr(self, name)
        base = type_name.removesuffix(" | None")
        if value is None and base != type_name:
            return
        if base.startswith("list["):
            item = base[len("list[") : -1]
            ok = isinstance(value, list) and all(_is_instance(v, item) for v in value)
        else:
            ok = _is_instance(value, base)
        if not ok:
            got = f"{type(value).__name__} {value!r}"
            raise ValueError(f"EncoderConfig.{name} must be {type_name}, got {got}")

    def _require(self, name: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ValueError(f"EncoderConfig.{name} must be {rule}, got {getattr(self, name)!r}")

    def resolved_head_dim(self) -> int:
        """Width of each attention head: ``head_dim``, else ``dim // heads``."""
        return self.dim // self.heads if self.head_dim is None else self.head_dim

    def heads_per_layer(self) -> tuple[int, ...]:
        """Heads of each layer: ``layer_heads``, else ``heads`` in every layer."""
        if self.layer_heads is None:
            return (self.heads,) * self.layers
        return tuple(self.layer_heads)

    def ffn_per_layer(self) -> tuple[int, ...]:
        """FFN width of each layer: ``layer_ffn``, else ``ffn_dim`` in every layer."""
        if self.layer_ffn is None:
            return (self.ffn_dim,) * self.layers
        return tuple(self.layer_ffn)

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderConfig:
        """Builds a config from :meth:`to_dict` output; keys added later may be missing.

        Raises:
            ValueError: If ``data`` has an unknown key, or a value is invalid.
        """
        _check_known_keys(cls, data)
        if "vocab_size" not in data:
            raise ValueError("EncoderConfig needs the key 'vocab_size'")
        return cls(**data)


_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _is_instance(value: Any, type_name: str) -> bool:
    """Whether ``value`` is of the plain type named ``type_name``; a bool is no number."""
    if isinstance(value, bool) and type_name != "bool":
        return False
    return isinstance(value, _TYPES[type_name])


def _as_int_tuple(name: str, values: Sequence[int] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError:
        message = f"SubnetConfig.{name} must be a sequence of ints, got {values!r}"
        raise ValueError(message) from None


@dataclass(frozen=True)
class SubnetConfig:
    """Which part of an :class:`ElasticEncoder` runs. ``None`` everywhere is the full model.

    Attributes:
        layers: Indices of the active layers, strictly increasing; ``None`` = all layers.
        heads: Per layer of the full model, how many heads run (the first ``k``);
            ``None`` = all heads.
        ffn: Per layer of the full model, how many FFN neurons run (a prefix);
            ``None`` = the full width.

    Example:
        >>> sub = SubnetConfig(layers=(0, 2), heads=(4, 4, 2), ffn=None)
        >>> SubnetConfig.from_dict(sub.to_dict()) == sub
        True
        >>> print(sub)
        layers=0,2 heads=4,4,2 ffn=all
    """

    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    ffn: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            values = _as_int_tuple(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, values)  # frozen: normalise lists to tuples
        if self.layers is not None:
            if not self.layers:
                raise ValueError("SubnetConfig.layers must name at least one layer")
            if any(b <= a for a, b in zip(self.layers, self.layers[1:])):
                message = f"SubnetConfig.layers must be strictly increasing, got {self.layers}"
                raise ValueError(message)

    def to_dict(self) -> dict[str, list[int] | None]:
        """Returns the config as a JSON-serialisable dict (tuples become lists)."""
        data = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            data[field.name] = None if value is None else list(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubnetConfig:
        """Builds a config from :meth:`to_dict` output.

        Raises:
            ValueError: If ``data`` has an unknown key, or a value is invalid.
        """
        _check_known_keys(cls, data)
        return cls(**data)

    def __str__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            parts.append(f"{field.name}={'all' if value is None else ','.join(map(str, value))}")
        return " ".join(parts)


class Embeddings(nn.Module):
    """Word + learned position (+ token type) embeddings, then LayerNorm and dropout."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_id)
        self.position = nn.Embedding(config.max_position, config.dim)
        self.token_type = nn.Embedding(config.type_vocab_size, config.dim) if config.type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Embeds ``(B, T)`` token ids into ``(B, T, D)``.

        Raises:
            ValueError: If the sequence is longer than ``max_position``, or token types are
                given to a model without them.
        """
        length = input_ids.shape[1]
        if length > self.position.num_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position {self.position.num_embeddings}")
        positions = torch.arange(length, device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.position(positions)  # (B, T, D)
        x = x + self._token_type_embedding(input_ids, token_type_ids)
        return self.dropout(self.norm(x))

    def _token_type_embedding(self, input_ids: Tensor, token_type_ids: Tensor | None) -> Tensor | float:
        if self.token_type is None:
            if token_type_ids is not None:
                raise ValueError("token_type_ids given but the model has type_vocab_size=0")
            return 0.0
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.token_type(token_type_ids)  # (B, T, D)


class FeedForward(nn.Module):
    """Position-wise FFN whose hidden width can shrink to a prefix of its neurons.

    Args:
        dim: Input and output width.
        ffn_dim: Full hidden width.
        activation: A key of ``ACTIVATIONS``.

    As in BERT, there is no dropout inside the FFN (the layer drops its output instead); on
    the CPU every dropout mask costs a random draw per element, and this hidden layer is
    the widest tensor of the layer.

    Attributes:
        active_width: How many hidden neurons run (the first ``active_width``).
    """

    def __init__(self, dim: int, ffn_dim: int, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.activation = ACTIVATIONS[activation]
        self.ffn_dim = ffn_dim
        self.active_width = ffn_dim

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``(B, T, D)`` to ``(B, T, D)`` through ``active_width`` hidden neurons."""
        width = self.active_width
        if width == self.ffn_dim:
            return self.fc2(self.activation(self.fc1(x)))
        h = self.activation(F.linear(x, self.fc1.weight[:width], self.fc1.bias[:width]))  # (B, T, w)
        return F.linear(h, self.fc2.weight[:, :width], self.fc2.bias)  # (B, T, D)

    def num_active_parameters(self) -> int:
        """Number of parameters used by the active neurons."""
        dim = self.fc2.out_features
        return self.active_width * (2 * dim + 1) + dim

    def extra_repr(self) -> str:
        return f"active_width={self.active_width}"


class EncoderLayer(nn.Module):
    """Self-attention and FFN blocks with residuals, in pre-LN or post-LN (BERT) order.

    Args:
        config: Architecture of the encoder.
        heads: Heads of this layer; ``None`` = ``config.heads``.
        ffn_dim: FFN width of this layer; ``None`` = ``config.ffn_dim``.
    """

    def __init__(self, config: EncoderConfig, heads: int | None = None, ffn_dim: int | None = None) -> None:
        super().__init__()
        self.attn = MultiHeadSelfAttention(
            config.dim,
            config.heads if heads is None else heads,
            dropout=config.attention_dropout,
            head_dim=config.resolved_head_dim(),
        )
        self.attn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        ffn_width = config.ffn_dim if ffn_dim is None else ffn_dim
        self.ffn = FeedForward(config.dim, ffn_width, config.activation)
        self.ffn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.norm_first = config.norm_first

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Maps ``(B, T, D)`` to ``(B, T, D)``.

        Args:
            x: Input of shape ``(B, T, D)``.
            key_padding_mask: Optional bool ``(B, T)``, True for real tokens.
            causal: If ``True``, each position attends only to itself and earlier positions.
        """
        if self.norm_first:
            x = x + self.dropout(self.attn(self.attn_norm(x), key_padding_mask, causal))
            return x + self.dropout(self.ffn(self.ffn_norm(x)))
        x = self.attn_norm(x + self.dropout(self.attn(x, key_padding_mask, causal)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))

    def num_active_parameters(self) -> int:
        """Number of parameters used by the active heads and neurons."""
        norms = sum(p.numel() for p in [*self.attn_norm.parameters(), *self.ffn_norm.parameters()])
        return self.attn.num_active_parameters() + self.ffn.num_active_parameters() + norms


class ElasticEncoder(nn.Module):
    """Transformer encoder whose active layers, heads and FFN widths switch at run time.

    Args:
        config: Architecture of the full model; each layer has its own heads and FFN width.
        embeddings: What turns the inputs into ``(B, T, D)``, called as ``embeddings(inputs,
            token_type_ids)``; None = token :class:`Embeddings` of ``config`` (an image model
            passes its patch embedding, :class:`attncoach.models.image.PatchEmbeddings`).
    """

    def __init__(self, config: EncoderConfig, embeddings: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config) if embeddings is None else embeddings
        shapes = zip(config.heads_per_layer(), config.ffn_per_layer())
        self.layers = nn.ModuleList(EncoderLayer(config, h, n) for h, n in shapes)
        # Pre-LN leaves the residual stream unnormalised, so it ends with a LayerNorm.
        self.final_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps) if config.norm_first else nn.Identity()
        self._subnet = SubnetConfig()
        self._active_layers = tuple(range(config.layers))
        self.apply(init_bert_weights)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """Encodes token ids with the active sub-network.

        Args:
            input_ids: Long tensor ``(B, T)``.
            attention_mask: Optional ``(B, T)``, true/1 for real tokens, false/0 for padding.
            token_type_ids: Optional long ``(B, T)``; only for ``type_vocab_size > 0``.

        Returns:
            Hidden states ``(B, T, D)``.
        """
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, D)
        return self.encode(x, attention_mask)

    def encode(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Runs the active layers and the final norm on already-embedded inputs.

        Args:
            x: Embedded inputs ``(B, T, D)``, e.g. the output of :attr:`embeddings`.
            mask: Optional ``(B, T)``, true/1 for real positions, false/0 for padding.
            causal: If ``True``, each position attends only to itself and earlier real
                positions, so its output does not depend on later ones.

        Returns:
            Hidden states ``(B, T, D)``.

        Example:
            >>> config = EncoderConfig(vocab_size=20, dim=16, layers=2, heads=2, ffn_dim=32)
            >>> encoder = ElasticEncoder(config).eval()
            >>> x = encoder.embeddings(torch.randint(1, 20, (2, 5)))  # (B, T, D)
            >>> encoder.encode(x, torch.ones(2, 5, dtype=torch.bool), causal=True).shape
            torch.Size([2, 5, 16])
        """
        mask = None if mask is None else mask.to(torch.bool)
        for index in self._active_layers:
            x = self.layers[index](x, mask, causal)  # (B, T, D)
        return self.final_norm(x)

    @property
    def subnet(self) -> SubnetConfig:
        """The active sub-network (``SubnetConfig()`` for the full model)."""
        return self._subnet

    def set_subnet(self, subnet: SubnetConfig | None) -> None:
        """Switches the active sub-network without copying any weight.

        Args:
            subnet: What to run; ``None`` restores the full model.

        Raises:
            ValueError: If ``subnet`` does not fit this model.
        """
        subnet = SubnetConfig() if subnet is None else subnet
        self.check_subnet(subnet)
        full = self.config
        heads = subnet.heads if subnet.heads is not None else full.heads_per_layer()
        widths = subnet.ffn if subnet.ffn is not None else full.ffn_per_layer()
        for layer, layer_heads, width in zip(self.layers, heads, widths):
            layer.attn.active_heads = layer_heads
            layer.ffn.active_width = width
        all_layers = tuple(range(full.layers))
        self._active_layers = all_layers if subnet.layers is None else subnet.layers
        self._subnet = subnet

    def check_subnet(self, subnet: SubnetConfig) -> None:
        """Raise ValueError when ``subnet`` does not fit this model (see :meth:`set_subnet`)."""
        full = self.config
        if subnet.layers is not None and not all(0 <= i < full.layers for i in subnet.layers):
            message = f"subnet layers {subnet.layers} out of range for a {full.layers}-layer model"
            raise ValueError(message)
        _check_per_layer("heads", subnet.heads, full.heads_per_layer())
        _check_per_layer("ffn", subnet.ffn, full.ffn_per_layer())

    def num_parameters(self, active_only: bool = False) -> int:
        """Counts parameters of the full model, or of the active sub-network only."""
        if not active_only:
            return sum(p.numel() for p in self.parameters())
        shared = (self.embeddings, self.final_norm)
        count = sum(p.numel() for module in shared for p in module.parameters())
        return count + sum(self.layers[i].num_active_parameters() for i in self._active_layers)


def _check_per_layer(name: str, values: tuple[int, ...] | None, maxima: tuple[int, ...]) -> None:
    if values is None:
        return
    layers = len(maxima)
    if len(values) != layers:
        message = f"subnet {name} needs one value per layer ({layers}), got {len(values)}: {values}"
        raise ValueError(message)
    for index, (value, maximum) in enumerate(zip(values, maxima)):
        if not 1 <= value <= maximum:
            raise ValueError(f"subnet {name}[{index}] = {value} must be in [1, {maximum}]")


def init_bert_weights(module: nn.Module) -> None:
    """BERT initialisation for one module; use as ``model.apply(init_bert_weights)``.

    Linear and Embedding weights ~ N(0, 0.02), zero biases, zero padding rows, and
    LayerNorms at weight 1, bias 0.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
