"""Positional encodings: fixed sinusoidal (Vaswani et al., 2017), learned embeddings, and rotary
positions (RoFormer, Su et al., 2021).

The first two map integer positions ``[...]`` to vectors ``[..., d_model]`` that are added to
token or item embeddings. Sets (SetRank without the initial-rank signal) use neither; SetRank's
ordinal embedding of an initial rank is a :class:`LearnedPositionalEncoding` with
``padding_idx=0``.

Rotary positions are not added to anything: attention turns each head's query and key at
position ``p`` by angles ``p * theta_i`` (:func:`rotate`), so a query-key score depends on the
two tokens and on their distance, never on where the pair sits in the sequence.
"""

from __future__ import annotations

import math
from typing import NamedTuple

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


class Rotation(NamedTuple):
    """Rotary positions of ``T`` positions: ``turn = exp(j p theta_i)``, ``[T, head_size / 2]``
    complex, one unit number per pair of a head's dimensions (see :func:`rotate`). Built once
    per forward pass and used by every layer's queries and keys."""

    turn: Tensor


def rotate(x: Tensor, rotation: Rotation) -> Tensor:
    """Turn each pair of dimensions ``(2i, 2i + 1)`` of ``x`` by its position's angle ``i``.

    Read as a complex number ``z_i = x[2i] + j x[2i + 1]``, pair ``i`` at position ``p`` becomes
    ``z_i * exp(j p theta_i)``. Lengths are kept, and ``<rotate(q, m), rotate(k, n)>`` depends on
    ``m - n`` only.

    Args:
        x: ``[..., T, head_size]`` queries or keys.
        rotation: the turns of the ``T`` positions.

    Returns:
        ``[..., T, head_size]``, in ``x``'s dtype.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 / fp16 turn in float32
    turn = rotation.turn.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
    pairs = x.to(dtype).unflatten(-1, (-1, 2))  # (..., T, hs/2, 2)
    # view_as_complex reads pairs in place when they lie side by side on even offsets
    strides = pairs.stride()
    if strides[-1] != 1 or any(st % 2 for st in strides[:-1]) or pairs.storage_offset() % 2:
        pairs = pairs.contiguous()
    turned = torch.view_as_real(torch.view_as_complex(pairs) * turn)  # (..., T, hs/2, 2)
    return turned.flatten(-2).to(x.dtype)  # (..., T, hs)


class RotaryEmbedding(nn.Module):
    """Rotary positions for ``0 .. max_len - 1``: angle ``p * base^(-2i / head_size)`` for pair
    ``i`` at position ``p`` (no parameters; the tables are rebuilt, not saved)."""

    def __init__(self, head_size: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_size % 2 != 0:
            raise ConfigError(
                f"rotary positions turn pairs of a head's dimensions, so the head size "
                f"(d_model / num_heads) must be even, got {head_size}"
            )
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)
        angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv_freq  # (P, hs/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, positions: Tensor) -> Rotation:
        """The turns of ``positions`` (``[T]`` int64 in ``[0, max_len)``)."""
        cos, sin = self.cos[positions], self.sin[positions]  # (T, hs/2)
        dtype = torch.promote_types(cos.dtype, torch.float32)  # torch.complex takes no bf16
        return Rotation(torch.complex(cos.to(dtype), sin.to(dtype)))
