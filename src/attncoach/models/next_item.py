"""Next-item recommendation: SASRec (Kang & McAuley, 2018) on the elastic encoder.

A user's history of item ids is embedded, run through the encoder with causal self-attention
(each position sees only itself and earlier items), and the hidden state at every position is
scored against every item by a dot product with the item embedding table, which is shared
between input and output (tied weights).

Item ids are ``1..num_items``; id 0 is padding. Histories are **right padded**, like the text
batches: the real items come first and padding after. The prediction of the item that follows
a history of length ``n`` is read at position ``n - 1``; causality makes it independent of
whatever follows (padding or later items), so one pass trains every prefix at once.

There is no separate item embedding module: :class:`attncoach.models.encoder.Embeddings`
already is SASRec's input layer (item + learned position embeddings, LayerNorm and dropout,
with a zero, gradient-free padding row via ``padding_idx``). Its ``word`` table is the item
table, so there is one item matrix, the state dict has the encoder's usual keys, and sub-net
switching works unchanged.

Example:
    >>> config = EncoderConfig(vocab_size=11, dim=16, layers=2, heads=2, ffn_dim=32, max_position=8)
    >>> model = NextItemModel(config, num_items=10).eval()
    >>> items = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])  # right padded, 0 = padding
    >>> mask = items != 0
    >>> hidden = model(items, mask)  # (B, T, D)
    >>> lengths = mask.sum(dim=1)
    >>> scores = model.scores(hidden[torch.arange(2), lengths - 1])  # (B, num_items + 1)
    >>> scores.shape, bool(scores[:, 0].isneginf().all())
    (torch.Size([2, 11]), True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attncoach.models.encoder import ElasticEncoder, EncoderConfig
from attncoach.models.quantized import Int8Embedding
from attncoach.models.stack import StackModel, check_config_keys

_CONFIG_KEYS = ("encoder", "num_items")
PAD_ITEM = 0


class NextItemModel(StackModel):
    """SASRec: a causal :class:`ElasticEncoder` over item histories with tied item scores.

    Args:
        encoder_config: Architecture of the encoder. ``vocab_size`` must be
            ``num_items + 1`` (id 0 is padding), ``pad_id`` 0, ``type_vocab_size`` 0, and
            ``max_position`` is the longest history the model takes.
        num_items: Number of real items; their ids are ``1..num_items``.

    Raises:
        ValueError: If ``encoder_config`` does not fit ``num_items``.
    """

    causal = True  # each position attends to itself and earlier items only (read by attention probes)

    def __init__(self, encoder_config: EncoderConfig, num_items: int) -> None:
        super().__init__()
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"num_items must be a positive int, got {num_items!r}")
        if encoder_config.vocab_size != num_items + 1:
            raise ValueError(
                f"encoder vocab_size must be num_items + 1 = {num_items + 1} (id 0 is padding), "
                f"got {encoder_config.vocab_size}"
            )
        if encoder_config.pad_id != PAD_ITEM:
            raise ValueError(f"encoder pad_id must be {PAD_ITEM}, got {encoder_config.pad_id}")
        if encoder_config.type_vocab_size != 0:
            raise ValueError(f"encoder type_vocab_size must be 0 (no segments), got {encoder_config.type_vocab_size}")
        self.encoder = ElasticEncoder(encoder_config)
        self.num_items = num_items

    @property
    def item_embedding(self) -> nn.Embedding:
        """The item table ``(num_items + 1, D)``, used for both the inputs and the scores."""
        return self.encoder.embeddings.word

    def forward(self, item_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Encodes right-padded histories causally with the active sub-network.

        Args:
            item_ids: Long tensor ``(B, T)`` of item ids, 0 for padding, ``T <= max_position``.
            attention_mask: Optional ``(B, T)``, true/1 for real items, false/0 for padding;
                ``None`` = ``item_ids != 0``.

        Returns:
            Hidden states ``(B, T, D)``; position ``t`` summarises items ``0..t`` and predicts
            the item at ``t + 1``.
        """
        if attention_mask is None:
            attention_mask = item_ids != PAD_ITEM
        x = self.encoder.embeddings(item_ids)  # (B, T, D)
        return self.encoder.encode(x, attention_mask, causal=True)  # (B, T, D)

    def item_logits(self, hidden: Tensor) -> Tensor:
        """Scores of the real items only, ``(..., num_items)``: column ``j`` is item ``j + 1`` (training)."""
        return _float32_scores(hidden, self.item_embedding.weight[1:])

    def scores(self, hidden: Tensor) -> Tensor:
        """Scores every item for each hidden state by a dot product with the item table.

        Args:
            hidden: Hidden states ``(..., D)``, e.g. from :meth:`forward`.

        Returns:
            Logits ``(..., num_items + 1)``; column 0 (padding) is ``-inf``, so it gets zero
            probability under a softmax and is never the top item.
        """
        logits = self._table_logits(hidden)  # (..., num_items + 1)
        return logits.index_fill(-1, torch.tensor([PAD_ITEM], device=logits.device), float("-inf"))

    def next_item_scores(self, item_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Scores of every item as the next one after each right-padded history: :meth:`scores` of
        the hidden state at its last real position.

        Args:
            item_ids: Long tensor ``(B, T)``, 0 for padding; every row holds at least one item.
            attention_mask: Optional ``(B, T)``; ``None`` = ``item_ids != 0``.

        Returns:
            ``(B, num_items + 1)``, column 0 (padding) ``-inf``.
        """
        if attention_mask is None:
            attention_mask = item_ids != PAD_ITEM
        mask = attention_mask.to(torch.bool)
        hidden = self(item_ids, mask)  # (B, T, D)
        last = hidden[torch.arange(item_ids.shape[0], device=item_ids.device), mask.sum(dim=1) - 1]  # (B, D)
        return self.scores(last)

    def _table_logits(self, hidden: Tensor) -> Tensor:
        table = self.item_embedding
        if isinstance(table, Int8Embedding):  # an int8 model: an int8 product with the int8 table
            return table.project(hidden)
        return _float32_scores(hidden, table.weight)

    def config_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable description from which the model can be rebuilt."""
        return {"encoder": self.encoder.config.to_dict(), "num_items": self.num_items}

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> NextItemModel:
        """Builds a freshly initialised model from :meth:`config_dict` output.

        Raises:
            ValueError: If a key is unknown or missing, or a value is invalid.
        """
        check_config_keys("NextItemModel", data, _CONFIG_KEYS, _CONFIG_KEYS)
        return cls(EncoderConfig.from_dict(data["encoder"]), data["num_items"])


def _float32_scores(hidden: Tensor, table: Tensor) -> Tensor:
    """``hidden @ table.T`` in float32, under bf16 autocast too: bf16 keeps 8 bits of mantissa, so the
    scores of thousands of items would be rounded into ties (steps of 1/16 near a score of 10),
    which coarsens both the loss over every item and the ranking that val metrics read."""
    if not torch.is_autocast_enabled(hidden.device.type):  # float32 already (and an export sees a plain product)
        return F.linear(hidden, table)
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return F.linear(hidden.float(), table.float())
