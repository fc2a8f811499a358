"""Positional encodings against the textbook formula."""

from __future__ import annotations

import math

import pytest
import torch

from ltr.errors import ConfigError
from ltr.nn.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
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
