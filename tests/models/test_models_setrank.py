"""SetRank specifics: config validation, input errors, rank clipping, IMSAB's O(n*M) structure."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from ltr.errors import ConfigError
from ltr.models import MLPConfig, SetRank, SetRankConfig


def small(**overrides: Any) -> SetRankConfig:
    base: dict[str, Any] = {"num_features": 4, "d_model": 8, "num_heads": 2, "d_ff": 16}
    return SetRankConfig(**(base | overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30, "num_heads": 4}, "divisible by num_heads"),
        ({"num_features": 0}, "num_features must be >= 1"),
        ({"num_blocks": 0}, "num_blocks must be >= 1"),
        ({"block": "transformer"}, "block must be one of imsab, msab"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"dropout": -0.1}, "dropout must be"),
        ({"norm_first": "yes"}, "norm_first must be true or false"),
        ({"use_initial_rank": 1}, "use_initial_rank must be true or false"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"num_inducing": 0}, "num_inducing must be >= 1"),
        ({"max_rank": 0}, "max_rank must be >= 1"),
        ({"context_dim": -1}, "context_dim must be >= 0"),
        ({"d_model": 8.0}, "d_model must be an integer"),
        ({"num_heads": True}, "num_heads must be an integer"),
    ],
)
def test_setrank_config_rejects_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        small(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_sizes": (8, 0)}, r"hidden_sizes\[1\] must be >= 1"),
        ({"hidden_sizes": 8}, "hidden_sizes must be a list"),
        ({"activation": "softmax"}, "activation must be one of"),
        ({"dropout": 2}, "dropout must be"),
    ],
)
def test_mlp_config_rejects_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MLPConfig(num_features=3, **overrides)


def test_mlp_config_stores_hidden_sizes_as_tuple() -> None:
    assert MLPConfig(num_features=3, hidden_sizes=[4, 2]).hidden_sizes == (4, 2)  # type: ignore[arg-type]


def test_missing_or_mismatched_inputs_raise_clear_errors() -> None:
    x, mask = torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(ConfigError, match="use_initial_rank=True but no initial_rank"):
        SetRank(small(use_initial_rank=True))(x, mask)
    with pytest.raises(ConfigError, match="context_dim=3 but no context"):
        SetRank(small(context_dim=3))(x, mask)
    with pytest.raises(ConfigError, match=r"expects context of shape \(2, 3\)"):
        SetRank(small(context_dim=3))(x, mask, context=torch.randn(2, 4))
    model = SetRank(small())
    with pytest.raises(ConfigError, match="expects 4 features per item"):
        model(torch.randn(2, 5, 3), mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        model(x, mask[:, :4])
    with pytest.raises(ValueError, match="mask must be a bool"):
        model(x, mask.float())
    with pytest.raises(ValueError, match="features must be"):
        model(x[0], mask)
    with pytest.raises(ValueError, match="initial_rank must be an integer"):
        SetRank(small(use_initial_rank=True))(x, mask, initial_rank=torch.ones(2, 5))


def test_initial_ranks_clip_at_max_rank_and_nonpositive_means_unknown() -> None:
    torch.manual_seed(0)
    model = SetRank(small(use_initial_rank=True, max_rank=3)).eval()
    x, mask = torch.randn(1, 4, 4), torch.ones(1, 4, dtype=torch.bool)

    def run(ranks: list[int]) -> Tensor:
        with torch.no_grad():
            return model(x, mask, initial_rank=torch.tensor([ranks]))

    torch.testing.assert_close(run([1, 2, 3, 50]), run([1, 2, 3, 3]))
    torch.testing.assert_close(run([-4, 2, 3, 1]), run([0, 2, 3, 1]))
    assert not torch.allclose(run([1, 2, 3, 3]), run([1, 2, 3, 2]))


def attention_shapes(model: SetRank, n: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """(queries, keys) of every scaled_dot_product_attention call during one forward pass."""
    seen: list[tuple] = []
    original = F.scaled_dot_product_attention

    def spy(q: Tensor, k: Tensor, v: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        seen.append((q.shape[-2], k.shape[-2]))
        return original(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        model(torch.randn(1, n, 4), torch.ones(1, n, dtype=torch.bool))
    return seen


def test_imsab_never_forms_an_n_by_n_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    n, m = 50, 3
    imsab = SetRank(small(block="imsab", num_inducing=m, num_blocks=2)).eval()
    assert attention_shapes(imsab, n, monkeypatch) == [(m, n), (n, m)] * 2
    msab = SetRank(small(block="msab", num_blocks=2)).eval()  # the spy does see n x n
    assert attention_shapes(msab, n, monkeypatch) == [(n, n)] * 2


def test_pre_ln_stack_ends_with_layer_norm() -> None:
    torch.manual_seed(0)
    pre, post = SetRank(small(norm_first=True)), SetRank(small(norm_first=False))
    captured: list[Tensor] = []
    pre.head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    post.head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    x, mask = 10 * torch.randn(2, 5, 4) + 3, torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        pre(x, mask)
        post(x, mask)
    for h in captured:  # fresh LayerNorms are identity-affine: zero mean, unit variance per item
        torch.testing.assert_close(h.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
        torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)


def list_relative_task(b: int, n: int = 8) -> tuple[Tensor, Tensor]:
    """Relevance = feature 0 above its list's mean; list-level offsets hide any fixed threshold."""
    x = torch.randn(b, n, 4) + 3 * torch.randn(b, 1, 4)
    return x, (x[..., 0] > x[..., 0].mean(-1, keepdim=True)).float()


@pytest.mark.parametrize("block", ["msab", "imsab"])
def test_setrank_learns_a_task_that_needs_the_whole_list(block: str) -> None:
    """A pointwise model cannot know the list mean: an MLP stays near 0.55 on held-out lists."""
    torch.manual_seed(0)
    x, target = list_relative_task(64)
    x_test, target_test = list_relative_task(256)
    model = SetRank(small(d_model=16, num_heads=2, block=block, dropout=0.0, num_inducing=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mask = torch.ones(64, 8, dtype=torch.bool)
    for _ in range(150):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(model(x, mask), target).backward()
        opt.step()
    with torch.no_grad():
        predicted = model(x_test, torch.ones(256, 8, dtype=torch.bool)) > 0
    assert (predicted.float() == target_test).float().mean().item() > 0.85
