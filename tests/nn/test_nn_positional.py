"""Positional encodings against the textbook formula; rotary positions against complex
multiplication."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltr.errors import ConfigError
from ltr.nn.attention import MultiHeadAttention
from ltr.nn.positional import (
    LearnedPositionalEncoding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    rotate,
    sinusoidal_table,
)


def test_sinusoidal_table_matches_formula() -> None:
    d = 8
    table = sinusoidal_table(20, d)
    for pos in (0, 1, 7, 19):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_module_looks_up_positions() -> None:
    enc = SinusoidalPositionalEncoding(d_model=6, max_len=10)
    positions = torch.tensor([[3, 0], [9, 3]])
    out = enc(positions)
    assert out.shape == (2, 2, 6)
    assert out[0, 0, 0].item() == pytest.approx(math.sin(3.0), abs=1e-6)
    assert out[1, 0, 1].item() == pytest.approx(math.cos(9.0), abs=1e-6)
    torch.testing.assert_close(out[0, 0], out[1, 1])


def test_sinusoidal_needs_even_width() -> None:
    with pytest.raises(ConfigError, match="even"):
        sinusoidal_table(4, 5)


def test_learned_padding_index_is_zero_and_gets_no_gradient() -> None:
    torch.manual_seed(0)
    enc = LearnedPositionalEncoding(max_len=5, d_model=4, padding_idx=0)
    out = enc(torch.tensor([[0, 2, 0, 4]]))
    assert torch.equal(out[0, 0], torch.zeros(4))
    assert out[0, 1].abs().sum() > 0
    out.sum().backward()
    grad = enc.embedding.weight.grad
    assert torch.equal(grad[0], torch.zeros(4))
    assert torch.equal(grad[2], torch.ones(4))


def test_rotation_is_complex_multiplication_by_the_position_angle() -> None:
    """Pair i of a head at position p, read as x[2i] + j x[2i+1], is multiplied by
    exp(j p / 10000^(2i/hs)) (RoFormer, eq. 34), computed here with numpy complex numbers."""
    hs, positions = 8, np.array([0, 1, 5, 30])
    x = np.random.default_rng(0).normal(size=(2, 3, len(positions), hs))  # (B, nh, T, hs)
    rotary = RotaryEmbedding(hs, max_len=32)
    got = rotate(torch.tensor(x), rotary(torch.tensor(positions))).numpy()
    z = x[..., 0::2] + 1j * x[..., 1::2]  # (B, nh, T, hs/2)
    theta = 10000.0 ** (-np.arange(0, hs, 2) / hs)  # (hs/2,)
    turned = z * np.exp(1j * positions[:, None] * theta)  # (B, nh, T, hs/2)
    expected = np.stack([turned.real, turned.imag], axis=-1).reshape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(  # position 0 turns nothing; lengths are kept everywhere
        got[..., 0, :], x[..., 0, :], rtol=0, atol=0
    )
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-6)


def test_rotated_scores_depend_on_the_distance_only() -> None:
    rotary = RotaryEmbedding(16, max_len=64)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 16, generator=g), torch.randn(1, 16, generator=g)

    def score(m: int, n: int) -> float:
        qm = rotate(q, rotary(torch.tensor([m])))
        kn = rotate(k, rotary(torch.tensor([n])))
        return float(qm @ kn.T)

    for m, n in ((5, 2), (2, 5), (9, 9)):
        for shift in (1, 17, 40):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-5)
    assert abs(score(5, 2) - score(5, 3)) > 1e-3  # another distance, another score


def test_rotary_attention_is_the_same_wherever_the_sequence_starts() -> None:
    """Self-attention with rotary positions gives the same output for positions 0..T-1 and
    s..s+T-1; with absolute positions added to the input it would not."""
    torch.manual_seed(2)
    attn = MultiHeadAttention(16, 2).double().eval()
    rotary = RotaryEmbedding(8, max_len=64)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    at = {s: attn(x, x, is_causal=True, rotation=rotary(torch.arange(s, s + 7))) for s in (0, 20)}
    torch.testing.assert_close(at[20], at[0], rtol=0, atol=1e-6)
    plain = attn(x, x, is_causal=True)
    assert not torch.allclose(plain, at[0], atol=1e-3)  # the rotation does change attention


def test_rotation_keeps_a_low_precision_dtype() -> None:
    rotary = RotaryEmbedding(4, max_len=8)
    x = torch.randn(2, 5, 4).to(torch.bfloat16)
    assert rotate(x, rotary(torch.arange(5))).dtype == torch.bfloat16


def test_rotary_needs_an_even_head_size() -> None:
    with pytest.raises(ConfigError, match=r"head size .* must be even, got 5"):
        RotaryEmbedding(5, max_len=8)


def test_rotation_of_strided_views_equals_rotation_of_copies() -> None:
    """Queries arrive as transposed views, and a slice can start at an odd offset: the turn
    reads them in place where it can and copies where it must, with the same result."""
    rotary = RotaryEmbedding(4, max_len=8)
    base = torch.randn(2, 5, 3 * 4 + 1)
    for view in (base[..., 1:5], base[..., :12].unflatten(-1, (3, 4)).transpose(1, 2)):
        positions = torch.arange(view.shape[-2])
        torch.testing.assert_close(
            rotate(view, rotary(positions)), rotate(view.contiguous(), rotary(positions))
        )
