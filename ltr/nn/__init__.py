"""Neural building blocks shared by the rankers and the language models."""

from ltr.nn.attention import KVCache, LayerCache, MultiHeadAttention, attention_mask
from ltr.nn.blocks import ACTIVATIONS, IMSAB, MAB, MSAB, FeedForward, make_activation
from ltr.nn.positional import (
    LearnedPositionalEncoding,
    RotaryEmbedding,
    Rotation,
    SinusoidalPositionalEncoding,
    rotate,
    sinusoidal_table,
)

__all__ = [
    "ACTIVATIONS",
    "IMSAB",
    "MAB",
    "MSAB",
    "FeedForward",
    "KVCache",
    "LayerCache",
    "LearnedPositionalEncoding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "Rotation",
    "SinusoidalPositionalEncoding",
    "attention_mask",
    "make_activation",
    "rotate",
    "sinusoidal_table",
]
