"""Image classifier: a ViT (Dosovitskiy et al., 2021) on the elastic encoder.

An image ``(C, H, W)`` is cut into ``P x P`` patches, each flattened and projected to the
encoder width by one linear layer; learned position embeddings are added (after a learned
``[CLS]`` token when the pooling is ``cls``), then LayerNorm and dropout, as the token
:class:`attncoach.models.encoder.Embeddings` do. :class:`PatchEmbeddings` is the encoder's
``embeddings``, so ``model.encoder`` is an ordinary :class:`ElasticEncoder`: sub-nets,
rewiring, export slicing and int8 work on it unchanged. Images have no padding: every
patch is a real token.

Example:
    >>> config = EncoderConfig(vocab_size=1, dim=16, layers=2, heads=2, ffn_dim=32, max_position=17)
    >>> model = ImageClassifier(config, image_size=(8, 8), channels=1, patch_size=2, num_labels=10, pooling="cls")
    >>> model(torch.rand(4, 1, 8, 8)).shape
    torch.Size([4, 10])
    >>> twin = ImageClassifier.from_config_dict(model.config_dict())
    >>> _ = twin.load_state_dict(model.state_dict())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from attncoach.models.encoder import ElasticEncoder, EncoderConfig, init_bert_weights
from attncoach.models.heads import ClassificationHead
from attncoach.models.stack import StackModel, check_config_keys

_CONFIG_KEYS = ("encoder", "image_size", "channels", "patch_size", "num_labels", "pooling", "head_dropout")


def patch_tokens(image_size: Sequence[int], patch_size: int, cls_token: bool) -> int:
    """How many tokens an image becomes: its patches, plus one for a ``[CLS]`` token.

    Raises:
        ValueError: the patch size does not divide the image's height and width.

    Example:
        >>> patch_tokens((28, 28), 4, cls_token=True)
        50
    """
    height, width = image_size
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch size {patch_size} must divide the image's height {height} and width {width}")
    return (height // patch_size) * (width // patch_size) + int(cls_token)


class PatchEmbeddings(nn.Module):
    """Patches of an image, linearly projected, plus learned positions (and ``[CLS]``), then LayerNorm and dropout.

    Args:
        image_size: ``(H, W)`` of every image.
        channels: ``C`` (1 for grey, 3 for RGB).
        patch_size: ``P``; it must divide ``H`` and ``W``.
        dim: the encoder width ``D``.
        cls_token: prepend a learned ``[CLS]`` token.
        dropout: dropout after the norm.
        layer_norm_eps: epsilon of the LayerNorm.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        channels: int,
        patch_size: int,
        dim: int,
        cls_token: bool,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.tokens = patch_tokens(image_size, patch_size, cls_token)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels, self.patch_size = channels, patch_size
        self.grid = (self.image_size[0] // patch_size, self.image_size[1] // patch_size)
        self.projection = nn.Linear(channels * patch_size * patch_size, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.position = nn.Parameter(torch.zeros(1, self.tokens, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, pixels: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Embeds images ``(B, C, H, W)`` (float, about [0, 1]) into ``(B, T, D)``.

        Raises:
            ValueError: the images are not ``(C, H, W)`` of this model, or token types are given.
        """
        if token_type_ids is not None:
            raise ValueError("images have no token types")
        expected = (self.channels, *self.image_size)
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != expected:
            raise ValueError(f"images must be (B, {', '.join(map(str, expected))}), got {tuple(pixels.shape)}")
        c, p, (gh, gw) = self.channels, self.patch_size, self.grid
        patches = pixels.reshape(-1, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
        x = self.projection(patches.reshape(-1, gh * gw, c * p * p))  # (B, N, D), patches in reading order
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        return self.dropout(self.norm(x + self.position))

    def token_names(self) -> list[str]:
        """How attention maps name the tokens: ``[CLS]``, then ``r<row>c<col>`` per patch."""
        names = [f"r{r}c{c}" for r in range(self.grid[0]) for c in range(self.grid[1])]
        return (["[CLS]"] if self.cls is not None else []) + names


class ImageClassifier(StackModel):
    """A ViT: :class:`PatchEmbeddings` in front of an :class:`ElasticEncoder`, and a classification head.

    Args:
        encoder_config: the encoder; ``max_position`` must be the token count
            (:func:`patch_tokens`); ``vocab_size`` is unused (there is no token table; give 1).
        image_size: ``(H, W)``.
        channels: ``C``.
        patch_size: ``P``.
        num_labels: classes.
        pooling: ``cls`` (a ``[CLS]`` token is added and read) or ``mean`` / ``max`` over the patches.
        head_dropout: dropout on the pooled vector.

    Raises:
        ValueError: a patch size that does not divide the image, or a ``max_position`` that is not the token count.
    """

    def __init__(
        self,
        encoder_config: EncoderConfig,
        image_size: Sequence[int],
        channels: int,
        patch_size: int,
        num_labels: int,
        pooling: str = "cls",
        head_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        embeddings = PatchEmbeddings(
            image_size,
            channels,
            patch_size,
            encoder_config.dim,
            cls_token=pooling == "cls",
            dropout=encoder_config.dropout,
            layer_norm_eps=encoder_config.layer_norm_eps,
        )
        if encoder_config.max_position != embeddings.tokens:
            raise ValueError(
                f"encoder max_position must be the {embeddings.tokens} tokens of an image, got {encoder_config.max_position}"
            )
        self.encoder = ElasticEncoder(encoder_config, embeddings=embeddings)
        self.head = ClassificationHead(encoder_config.dim, num_labels, pooling, dropout=head_dropout)
        self.head.apply(init_bert_weights)
        self.num_labels = num_labels

    @property
    def patches(self) -> PatchEmbeddings:
        """The patch embedding (``encoder.embeddings``)."""
        return self.encoder.embeddings

    def forward(self, pixels: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, num_labels)`` of images ``(B, C, H, W)`` with the active sub-network.

        ``attention_mask`` is accepted for the call every attncoach model answers (``model(inputs,
        mask)``) and ignored: every token of an image is real.
        """
        hidden = self.encoder(pixels)  # (B, T, D)
        return self.head(hidden)

    def config_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description from which the model can be rebuilt."""
        patches = self.patches
        return {
            "encoder": self.encoder.config.to_dict(),
            "image_size": list(patches.image_size),
            "channels": patches.channels,
            "patch_size": patches.patch_size,
            "num_labels": self.num_labels,
            "pooling": self.head.pooling_name,
            "head_dropout": self.head.dropout.p,
        }

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> ImageClassifier:
        """A freshly initialised model from :meth:`config_dict` output.

        Raises:
            ValueError: a key is unknown or missing, or a value is invalid.
        """
        check_config_keys("ImageClassifier", data, _CONFIG_KEYS, _CONFIG_KEYS[:5])
        settings = dict(data)
        return cls(EncoderConfig.from_dict(settings.pop("encoder")), **settings)
