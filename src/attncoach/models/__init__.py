"""Models: elastic attention encoder, task heads and the text classifier."""

from attncoach.models.attention import MultiHeadSelfAttention
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import (
    ACTIVATIONS,
    ElasticEncoder,
    Embeddings,
    EncoderConfig,
    EncoderLayer,
    FeedForward,
    SubnetConfig,
    init_bert_weights,
)
from attncoach.models.heads import POOLINGS, ClassificationHead, get_pooling, register_pooling

__all__ = [
    "ACTIVATIONS",
    "POOLINGS",
    "ClassificationHead",
    "ElasticEncoder",
    "Embeddings",
    "EncoderConfig",
    "EncoderLayer",
    "FeedForward",
    "MultiHeadSelfAttention",
    "SubnetConfig",
    "TextClassifier",
    "get_pooling",
    "init_bert_weights",
    "register_pooling",
]
