"""Positional encodings: fixed sinusoidal (Vaswani et al., 2017) and learned embeddings.

Both map integer positions ``[...]`` to vectors ``[..., d_model]`` that are added to token or item
embeddings. Sets (SetRank without the initial-rank signal) use neither; SetRank's ordinal
embedding of an initial rank is a :class:`LearnedPositionalEncoding` with ``padding_idx=0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ltr.errors import ConfigError


def sinusoidal_table(num_positions: int, d_model: int) -> Tensor:
    """The sinusoidal table ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    Args:
        num_positions: number of rows (positions ``0 .. num_positions - 1``).
        d_model: encoding size; must be even.

    Returns:
        ``[num_positions, d_model]`` float32.
    """
    if d_model % 2 != 0:
        raise ConfigError(f"sinusoidal encodings need an even d_model, got {d_model}")
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
    )  # (d/2,)
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)  # (P, d)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal encodings for positions ``0 .. max_len - 1`` (no parameters)."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """Look up the encodings.

        Args:
            positions: ``[...]`` int64 positions in ``[0, max_len)``.

        Returns:
            ``[..., d_model]``.
        """
        return self.table[positions]


class LearnedPositionalEncoding(nn.Module):
    """Learned embeddings for positions ``0 .. max_len - 1``.

    With ``padding_idx`` set, that position maps to a zero vector that receives no gradient (used
    for "no position / padded slot").
    """

    def __init__(self, max_len: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model, padding_idx=padding_idx)
        nn.init.normal_(self.embedding.weight, std=0.02)
        if padding_idx is not None:
            with torch.no_grad():
                self.embedding.weight[padding_idx].zero_()

    def forward(self, positions: Tensor) -> Tensor:
        """Look up the embeddings.

        Args:
            positions: ``[...]`` int64 positions in ``[0, max_len)``.

        Returns:
            ``[..., d_model]``.
        """
        return self.embedding(positions)
