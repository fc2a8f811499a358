"""Properties every scorer variant must have: permutation equivariance, padding invariance, no NaN.

Run over SetRank (msab/imsab x pre/post-LN x initial rank on/off x context on/off) and the MLP.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from ltr.models import build_scorer

F_IN, C_IN, MAX_RANK = 6, 3, 5
TOL = {"atol": 1e-5, "rtol": 1e-5}

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    (
        "setrank",
        {
            "num_features": F_IN,
            "d_model": 16,
            "num_heads": 4,
            "num_blocks": 2,
            "d_ff": 32,
            "num_inducing": 3,
            "max_rank": MAX_RANK,
            "block": block,
            "norm_first": norm_first,
            "use_initial_rank": rank,
            "context_dim": C_IN if context else 0,
        },
    )
    for block, norm_first, rank, context in itertools.product(
        ["msab", "imsab"], [True, False], [False, True], [False, True]
    )
] + [
    ("mlp", {"num_features": F_IN, "hidden_sizes": (16, 8)}),
    ("mlp", {"num_features": F_IN, "hidden_sizes": (16,), "context_dim": C_IN}),
]


def variant_id(v: tuple[str, dict[str, Any]]) -> str:
    name, cfg = v
    parts = [name, cfg.get("block", "")]
    if name == "setrank":
        parts.append("preLN" if cfg["norm_first"] else "postLN")
        parts.append("rank" if cfg["use_initial_rank"] else "")
    parts.append("ctx" if cfg.get("context_dim") else "")
    return "-".join(p for p in parts if p)


def make_model(variant: tuple[str, dict[str, Any]]) -> nn.Module:
    torch.manual_seed(0)
    model = build_scorer(*variant)
    with torch.no_grad():  # non-trivial LayerNorm affines and rank embeddings
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def uses(variant: tuple[str, dict[str, Any]], key: str) -> bool:
    return bool(variant[1].get(key))


def inputs(b: int, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Features [B, n, F], initial ranks 1..n shuffled per list (some above MAX_RANK), context."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, n, F_IN, generator=g)
    rank = torch.stack([torch.randperm(n, generator=g) + 1 for _ in range(b)])
    context = torch.randn(b, C_IN, generator=g)
    return features, rank, context


def score(model: nn.Module, features: Tensor, mask: Tensor, rank: Tensor, ctx: Tensor) -> Tensor:
    with torch.no_grad():
        return model(features, mask, rank, ctx)


PARAMS = pytest.mark.parametrize("variant", VARIANTS, ids=[variant_id(v) for v in VARIANTS])


@PARAMS
def test_shuffling_candidates_shuffles_scores(variant: tuple[str, dict[str, Any]]) -> None:
    model = make_model(variant)
    features, rank, ctx = inputs(3, 8, seed=1)
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[1, 5:] = False
    rank = rank.masked_fill(~mask, 0)
    base = score(model, features, mask, rank, ctx)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(2))
    shuffled = score(model, features[:, perm], mask[:, perm], rank[:, perm], ctx)
    torch.testing.assert_close(shuffled[mask[:, perm]], base[:, perm][mask[:, perm]], **TOL)


@PARAMS
def test_padded_slots_with_garbage_leave_real_scores_unchanged(
    variant: tuple[str, dict[str, Any]],
) -> None:
    model = make_model(variant)
    features, rank, ctx = inputs(2, 5, seed=3)
    base = score(model, features, torch.ones(2, 5, dtype=torch.bool), rank, ctx)

    # 9 slots: real items at scattered positions, garbage (huge, inf, NaN, wild ranks) elsewhere
    real_slots = torch.tensor([0, 2, 3, 6, 8])
    n = 9
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[:, real_slots] = True
    g = torch.Generator().manual_seed(4)
    padded = 1e4 * torch.randn(2, n, F_IN, generator=g)
    padded[0, 1, 0] = float("nan")
    padded[1, 4, 2] = float("inf")
    padded[:, real_slots] = features
    padded_rank = torch.randint(-3, 1000, (2, n), generator=g)
    padded_rank[:, real_slots] = rank
    out = score(model, padded, mask, padded_rank, ctx)
    torch.testing.assert_close(out[:, real_slots], base, **TOL)


@PARAMS
def test_fully_padded_list_is_finite_and_leaves_other_lists_alone(
    variant: tuple[str, dict[str, Any]],
) -> None:
    model = make_model(variant)
    features, rank, ctx = inputs(3, 6, seed=5)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1] = False
    features[1] = float("nan")
    rank[1] = 0
    out = score(model, features, mask, rank, ctx)
    assert torch.isfinite(out).all()
    for i in (0, 2):
        s = slice(i, i + 1)
        torch.testing.assert_close(
            out[s], score(model, features[s], mask[s], rank[s], ctx[s]), **TOL
        )


@PARAMS
def test_gradients_are_finite_with_padding_and_garbage(variant: tuple[str, dict[str, Any]]) -> None:
    model = make_model(variant).train()
    features, rank, ctx = inputs(3, 6, seed=6)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    mask[2] = False
    features[~mask] = float("nan")
    out = model(features, mask, rank.masked_fill(~mask, 0), ctx)
    out[mask].square().sum().backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@PARAMS
def test_optional_inputs_are_used_when_configured(variant: tuple[str, dict[str, Any]]) -> None:
    model = make_model(variant)
    features, rank, ctx = inputs(2, 6, seed=7)
    mask = torch.ones(2, 6, dtype=torch.bool)
    base = score(model, features, mask, rank, ctx)
    other_rank = score(model, features, mask, rank.flip(-1), ctx)
    other_ctx = score(model, features, mask, rank, ctx + 1.0)
    assert torch.allclose(base, other_rank) != uses(variant, "use_initial_rank")
    assert torch.allclose(base, other_ctx) != uses(variant, "context_dim")
