"""MultiHeadAttention vs an explicit per-head softmax(QK^T/sqrt(hs))V and nn.MultiheadAttention."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ltr.errors import ConfigError
from ltr.nn.attention import MultiHeadAttention, attention_mask

D_MODEL, HEADS = 12, 3


def reference_attention(
    mha: MultiHeadAttention, query: Tensor, key_value: Tensor, allowed: Tensor | None
) -> Tensor:
    """Explicit loop over batch rows and heads; ``allowed`` is ``[B, Lq, Lk]`` bool or None."""
    b, lq, d = query.shape
    lk = key_value.shape[1]
    hs = d // mha.num_heads
    q_all = query @ mha.q_proj.weight.T + mha.q_proj.bias
    k_all = key_value @ mha.k_proj.weight.T + mha.k_proj.bias
    v_all = key_value @ mha.v_proj.weight.T + mha.v_proj.bias
    out = torch.zeros(b, lq, d, dtype=query.dtype)
    for i in range(b):
        for h in range(mha.num_heads):
            cols = slice(h * hs, (h + 1) * hs)
            scores = q_all[i, :, cols] @ k_all[i, :, cols].T / math.sqrt(hs)  # (Lq, Lk)
            if allowed is not None:
                scores = scores.masked_fill(~allowed[i], float("-inf"))
            weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
            weights = weights / weights.sum(dim=-1, keepdim=True)
            out[i, :, cols] = weights @ v_all[i, :, cols]
    assert lk == k_all.shape[1]
    return out @ mha.out_proj.weight.T + mha.out_proj.bias


def make_mha(dropout: float = 0.0) -> MultiHeadAttention:
    torch.manual_seed(0)
    return MultiHeadAttention(D_MODEL, HEADS, dropout=dropout).double().eval()


def padding_allowed(key_mask: Tensor, lq: int) -> Tensor:
    return key_mask[:, None, :].expand(-1, lq, -1)  # (B, Lq, Lk)


def causal_allowed(lq: int, lk: int) -> Tensor:
    return torch.tensor([[j <= i for j in range(lk)] for i in range(lq)])


def test_self_attention_without_mask_matches_reference() -> None:
    mha = make_mha()
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(mha(x, x), reference_attention(mha, x, x, None))


def test_cross_attention_with_padding_matches_reference_and_torch_mha() -> None:
    mha = make_mha()
    q = torch.randn(3, 4, D_MODEL, dtype=torch.float64)
    kv = torch.randn(3, 6, D_MODEL, dtype=torch.float64)
    key_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]]).bool()
    out = mha(q, kv, key_padding_mask=key_mask)
    torch.testing.assert_close(out, reference_attention(mha, q, kv, padding_allowed(key_mask, 4)))

    torch_mha = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True).double().eval()
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(
            torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight])
        )
        torch_mha.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        torch_mha.out_proj.weight.copy_(mha.out_proj.weight)
        torch_mha.out_proj.bias.copy_(mha.out_proj.bias)
    expected, _ = torch_mha(q, kv, kv, key_padding_mask=~key_mask, need_weights=False)
    torch.testing.assert_close(out, expected)


def test_causal_matches_reference() -> None:
    mha = make_mha()
    x = torch.randn(2, 6, D_MODEL, dtype=torch.float64)
    allowed = causal_allowed(6, 6).expand(2, -1, -1)
    torch.testing.assert_close(mha(x, x, is_causal=True), reference_attention(mha, x, x, allowed))


def test_causal_with_padding_matches_reference() -> None:
    mha = make_mha()
    x = torch.randn(2, 6, D_MODEL, dtype=torch.float64)
    key_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]]).bool()  # right padding
    allowed = causal_allowed(6, 6) & padding_allowed(key_mask, 6)
    out = mha(x, x, key_padding_mask=key_mask, is_causal=True)
    expected = reference_attention(mha, x, x, allowed)
    # every real query sees at least itself, so the reference is defined on real rows
    torch.testing.assert_close(out[key_mask], expected[key_mask])


def test_fully_padded_row_is_finite_and_does_not_touch_other_rows() -> None:
    mha = make_mha()
    x = torch.randn(3, 5, D_MODEL, dtype=torch.float64, requires_grad=True)
    key_mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
    out = mha(x, x, key_padding_mask=key_mask)
    assert torch.isfinite(out).all()
    for i in (0, 2):
        alone = mha(x[i : i + 1], x[i : i + 1], key_padding_mask=key_mask[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], alone)
    out[key_mask].sum().backward()
    assert torch.isfinite(x.grad).all()


def test_causal_query_whose_visible_keys_are_all_padding_is_finite() -> None:
    mha = make_mha()
    x = torch.randn(1, 5, D_MODEL, dtype=torch.float64)
    key_mask = torch.tensor([[0, 0, 1, 1, 1]]).bool()  # left padding: queries 0, 1 see no real key
    out = mha(x, x, key_padding_mask=key_mask, is_causal=True)
    assert torch.isfinite(out).all()
    allowed = causal_allowed(5, 5)[None] & padding_allowed(key_mask, 5)
    expected = reference_attention(mha, x, x, allowed)
    torch.testing.assert_close(out[0, 2:], expected[0, 2:])


def test_attention_mask_by_hand() -> None:
    key_mask = torch.tensor([[True, True, False], [False, False, False]])
    got = attention_mask(key_mask, 3, 3, is_causal=True)
    expected = torch.tensor(
        [
            [[1, 0, 0], [1, 1, 0], [1, 1, 0]],
            [[1, 1, 1], [1, 1, 1], [1, 1, 1]],  # nothing visible: opened to every key
        ]
    ).bool()
    assert got is not None
    assert torch.equal(got[:, 0], expected)
    assert attention_mask(None, 3, 3, is_causal=True) is None


def test_dropout_only_in_training() -> None:
    mha = make_mha(dropout=0.5)
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(mha(x, x), reference_attention(mha, x, x, None))
    mha.train()
    torch.manual_seed(1)
    first = mha(x, x)
    second = mha(x, x)
    assert not torch.allclose(first, second)


def test_d_model_must_divide_into_heads() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        MultiHeadAttention(10, 3)
