"""Masked-language model: the elastic encoder with a BERT-style MLM head (domain pretraining).

The head is BERT's (Devlin et al. 2019): a dense layer, GELU and LayerNorm, then scores over the
vocabulary by a dot product with the word embedding table (tied weights, as in BERT) plus a bias
per token. Only the encoder is what a later run fine-tunes (``model.backbone``); the head is kept
in the model directory so that pretraining can continue from it.

Example:
    >>> config = EncoderConfig(vocab_size=50, dim=16, heads=2, ffn_dim=32)
    >>> model = MaskedLanguageModel(config)
    >>> twin = MaskedLanguageModel.from_config_dict(model.config_dict())
    >>> _ = twin.load_state_dict(model.state_dict())
    >>> model(torch.randint(5, 50, (4, 6))).shape  # (B, T, V)
    torch.Size([4, 6, 50])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attncoach.models.encoder import ElasticEncoder, EncoderConfig, init_bert_weights
from attncoach.models.stack import StackModel, check_config_keys

_CONFIG_KEYS = ("encoder",)


class MaskedLMHead(nn.Module):
    """Dense + GELU + LayerNorm, then logits over the vocabulary from a (tied) token table and a bias.

    Args:
        dim: Hidden width of the encoder.
        vocab_size: Number of token ids.
        eps: Epsilon of the LayerNorm.
    """

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, table: Tensor) -> Tensor:
        """Maps hidden states ``(..., D)`` to logits ``(..., V)`` with the token table ``(V, D)``."""
        x = self.norm(F.gelu(self.dense(hidden)))  # (..., D)
        return F.linear(x, table, self.bias)  # (..., V)


class MaskedLanguageModel(StackModel):
    """An :class:`ElasticEncoder` that predicts masked tokens (see the module docstring).

    Args:
        encoder_config: Architecture of the encoder (its ``vocab_size`` is the tokenizer's).
    """

    def __init__(self, encoder_config: EncoderConfig) -> None:
        super().__init__()
        self.encoder = ElasticEncoder(encoder_config)
        self.mlm_head = MaskedLMHead(encoder_config.dim, encoder_config.vocab_size, encoder_config.layer_norm_eps)
        self.mlm_head.apply(init_bert_weights)

    def token_logits(self, hidden: Tensor) -> Tensor:
        """Logits over the vocabulary ``(..., V)`` of hidden states ``(..., D)`` (e.g. the masked positions only)."""
        return self.mlm_head(hidden, self.encoder.embeddings.word.weight)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits over the vocabulary at every position, ``(B, T, V)``, with the active sub-network."""
        mask = None if attention_mask is None else attention_mask.to(torch.bool)
        return self.token_logits(self.encoder(input_ids, mask))  # (B, T, V)

    def config_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable description from which the model can be rebuilt."""
        return {"encoder": self.encoder.config.to_dict()}

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> MaskedLanguageModel:
        """Builds a freshly initialised model from :meth:`config_dict` output.

        Raises:
            ValueError: If a key is unknown or ``encoder`` is missing.
        """
        check_config_keys("MaskedLanguageModel", data, _CONFIG_KEYS, _CONFIG_KEYS)
        return cls(EncoderConfig.from_dict(data["encoder"]))
