"""Text classifier: an elastic encoder with a classification head.

:meth:`TextClassifier.config_dict` is what a run saves as ``model_config.json`` next to
``model.safetensors``; :meth:`TextClassifier.from_config_dict` rebuilds the model from it.

Example:
    >>> config = EncoderConfig(vocab_size=50, dim=16, heads=2, ffn_dim=32)
    >>> model = TextClassifier(config, num_labels=3)
    >>> twin = TextClassifier.from_config_dict(model.config_dict())
    >>> _ = twin.load_state_dict(model.state_dict())
    >>> model(torch.randint(1, 50, (4, 6))).shape
    torch.Size([4, 3])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from attncoach.models.encoder import ElasticEncoder, EncoderConfig, init_bert_weights
from attncoach.models.heads import ClassificationHead
from attncoach.models.stack import StackModel, check_config_keys

_CONFIG_KEYS = ("encoder", "num_labels", "pooling", "head_dropout", "head_hidden")


class TextClassifier(StackModel):
    """Sequence classifier over an :class:`ElasticEncoder`.

    Args:
        encoder_config: Architecture of the encoder.
        num_labels: Number of classes.
        pooling: A key of ``attncoach.models.heads.POOLINGS``.
        head_dropout: Dropout on the pooled vector.
        head_hidden: Whether the head has a dense + GELU layer before the output.
    """

    def __init__(
        self,
        encoder_config: EncoderConfig,
        num_labels: int,
        pooling: str = "mean",
        head_dropout: float = 0.1,
        head_hidden: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = ElasticEncoder(encoder_config)
        self.head = ClassificationHead(
            encoder_config.dim, num_labels, pooling, dropout=head_dropout, hidden=head_hidden
        )
        self.head.apply(init_bert_weights)
        self.num_labels = num_labels

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """Classifies a batch with the active sub-network.

        Args:
            input_ids: Long tensor ``(B, T)``.
            attention_mask: Optional ``(B, T)``, true/1 for real tokens, false/0 for padding.
            token_type_ids: Optional long ``(B, T)``; only for ``type_vocab_size > 0``.

        Returns:
            Logits ``(B, num_labels)``.
        """
        mask = None if attention_mask is None else attention_mask.to(torch.bool)
        hidden = self.encoder(input_ids, mask, token_type_ids)  # (B, T, D)
        return self.head(hidden, mask)

    def config_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable description from which the model can be rebuilt."""
        return {
            "encoder": self.encoder.config.to_dict(),
            "num_labels": self.num_labels,
            "pooling": self.head.pooling_name,
            "head_dropout": self.head.dropout.p,
            "head_hidden": self.head.dense is not None,
        }

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> TextClassifier:
        """Builds a freshly initialised model from :meth:`config_dict` output.

        Raises:
            ValueError: If a key is unknown or ``encoder`` / ``num_labels`` is missing.
        """
        check_config_keys("TextClassifier", data, _CONFIG_KEYS, ("encoder", "num_labels"))
        settings = dict(data)
        encoder_config = EncoderConfig.from_dict(settings.pop("encoder"))
        return cls(encoder_config, **settings)
