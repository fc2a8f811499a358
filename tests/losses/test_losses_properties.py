"""Properties every registered loss must have, parametrized over LOSSES (new losses included)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltr.losses import LOSSES

NAMES = sorted(LOSSES)
PROPERTY_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)


@st.composite
def batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A float32 batch: continuous scores (no ties), integer labels 0..3, a random mask."""
    b = draw(st.integers(1, 3))
    n = draw(st.integers(1, 5))
    labels = draw(st.lists(st.integers(0, 3), min_size=b * n, max_size=b * n))
    mask = draw(st.lists(st.booleans(), min_size=b * n, max_size=b * n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = torch.tensor(rng.normal(0.0, 2.0, size=(b, n)), dtype=torch.float32)
    return (
        scores,
        torch.tensor(labels, dtype=torch.float32).reshape(b, n),
        torch.tensor(mask).reshape(b, n),
    )


# ---------------------------------------------------------------- invariances


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_SETTINGS
@given(batch=batches(), extra=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_padding_invariance(name: str, batch, extra: int, seed: int) -> None:
    """Padded slots (with garbage, even NaN) inserted anywhere, plus a fully padded row, change
    neither the per-list losses nor the mean."""
    loss_fn = LOSSES[name]
    scores, labels, mask = batch
    b, n = scores.shape
    rng = np.random.default_rng(seed)
    width = n + extra
    real_slots = np.sort(rng.choice(width, size=n, replace=False))  # real items keep their order
    garbage = rng.choice([1e4, -1e4, 7.0, np.nan, np.inf], size=(b + 1, width))
    padded_scores = torch.tensor(garbage, dtype=torch.float32)
    padded_labels = torch.tensor(rng.choice([5.0, 0.0, np.nan], size=(b + 1, width)))
    padded_labels = padded_labels.float()
    padded_mask = torch.zeros(b + 1, width, dtype=torch.bool)
    padded_scores[:b, real_slots] = scores
    padded_labels[:b, real_slots] = labels
    padded_mask[:b, real_slots] = mask

    per_list = loss_fn(scores, labels, mask=mask, reduction="none")
    padded_per_list = loss_fn(padded_scores, padded_labels, mask=padded_mask, reduction="none")
    torch.testing.assert_close(padded_per_list[:b], per_list, rtol=1e-5, atol=1e-6)
    assert padded_per_list[b].item() == 0.0
    torch.testing.assert_close(
        loss_fn(padded_scores, padded_labels, mask=padded_mask),
        loss_fn(scores, labels, mask=mask),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_SETTINGS
@given(batch=batches(), seed=st.integers(0, 2**32 - 1))
def test_permutation_invariance(name: str, batch, seed: int) -> None:
    """Shuffling each list's items together with their labels and mask changes no per-list loss."""
    loss_fn = LOSSES[name]
    scores, labels, mask = batch
    rng = np.random.default_rng(seed)
    perm = torch.tensor(np.stack([rng.permutation(scores.shape[1]) for _ in scores]))
    shuffled = [t.gather(1, perm) for t in (scores, labels, mask)]
    torch.testing.assert_close(
        loss_fn(*shuffled[:2], mask=shuffled[2], reduction="none"),
        loss_fn(scores, labels, mask=mask, reduction="none"),
        rtol=1e-5,
        atol=1e-6,
    )


# ---------------------------------------------------------------- edge cases


def _case(scores: list[list[float]], labels: list[list[float]], mask: list[list[bool]]):
    return torch.tensor(scores), torch.tensor(labels), torch.tensor(mask)


EDGE_CASES = {
    "one_item": _case([[0.7]], [[2.0]], [[True]]),
    "all_labels_zero": _case([[0.1, -0.4, 2.0]], [[0.0, 0.0, 0.0]], [[True, True, True]]),
    "all_labels_equal_nonzero": _case([[0.1, -0.4, 2.0]], [[2.0, 2.0, 2.0]], [[True] * 3]),
    "no_relevant_item_padded_relevant": _case(
        [[0.3, 1.0, 5.0]], [[0.0, 0.0, 3.0]], [[True, True, False]]
    ),
    "padded_row_in_batch": _case(
        [[0.3, -1.0, 2.0], [4.0, 1.0, -2.0]],
        [[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]],
        [[True, True, True], [False, False, False]],
    ),
    "every_row_padded": _case(
        [[0.3, -1.0], [4.0, 1.0]], [[1.0, 0.0], [3.0, 1.0]], [[False, False], [False, False]]
    ),
    "huge_scores": _case(
        [[1e4, -1e4, 3e3, -5e3], [-1e4, 1e4, 0.0, 2e3]],
        [[0.0, 3.0, 1.0, 2.0], [2.0, 0.0, 1.0, 0.0]],
        [[True] * 4, [True, True, True, False]],
    ),
    "tied_scores": _case([[1.0, 1.0, 1.0, 0.0]], [[2.0, 0.0, 1.0, 1.0]], [[True] * 4]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients(name: str, case: str, dtype: torch.dtype) -> None:
    scores, labels, mask = EDGE_CASES[case]
    scores = scores.to(dtype).requires_grad_(True)
    for reduction in ("mean", "sum"):
        value = LOSSES[name](scores, labels, mask=mask, reduction=reduction)
        assert value.dtype == dtype
        assert value.dim() == 0 and torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, scores)
        assert torch.isfinite(grad).all(), grad
        assert (grad[~mask] == 0).all(), "padded slots must get no gradient"
    per_list = LOSSES[name](scores, labels, mask=mask, reduction="none")
    assert torch.isfinite(per_list).all()
    assert (per_list[~mask.any(dim=1)] == 0).all(), "fully padded rows must contribute 0"


@pytest.mark.parametrize("name", NAMES)
def test_every_row_padded_mean_is_zero_with_gradient_path(name: str) -> None:
    scores = torch.tensor([[0.5, -2.0], [1.0, 3.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    value = LOSSES[name](scores, labels, mask=torch.zeros(2, 2, dtype=torch.bool))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert (scores.grad == 0).all()


# ---------------------------------------------------------------- reductions and direction


@pytest.mark.parametrize("name", NAMES)
def test_reductions_agree(name: str) -> None:
    gen = torch.Generator().manual_seed(11)
    scores = torch.randn(5, 6, generator=gen)
    labels = torch.randint(0, 4, (5, 6), generator=gen).float()
    mask = torch.rand(5, 6, generator=gen) > 0.3
    mask[0] = True
    mask[2] = False  # one fully padded row, excluded from the mean
    loss_fn = LOSSES[name]
    per_list = loss_fn(scores, labels, mask=mask, reduction="none")
    assert per_list.shape == (5,)
    non_empty = [0, 1, 3, 4]
    torch.testing.assert_close(
        loss_fn(scores, labels, mask=mask, reduction="mean"), per_list[non_empty].mean()
    )
    torch.testing.assert_close(loss_fn(scores, labels, mask=mask, reduction="sum"), per_list.sum())


@pytest.mark.parametrize("name", NAMES)
def test_perfect_order_beats_reversed_order(name: str) -> None:
    labels = torch.tensor([[0.0, 1.0, 2.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    perfect = LOSSES[name](labels.clone(), labels, mask=mask, reduction="none")
    reversed_ = LOSSES[name](3.0 - labels, labels, mask=mask, reduction="none")
    assert (perfect < reversed_).all(), (perfect, reversed_)


@pytest.mark.parametrize("name", NAMES)
def test_float64_in_float64_out_and_close_to_float32(name: str) -> None:
    gen = torch.Generator().manual_seed(5)
    scores = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (3, 5), generator=gen).float()  # float32 labels are cast
    mask = torch.ones(3, 5, dtype=torch.bool)
    value64 = LOSSES[name](scores, labels, mask=mask, reduction="none")
    value32 = LOSSES[name](scores.float(), labels, mask=mask, reduction="none")
    assert value64.dtype == torch.float64 and value32.dtype == torch.float32
    torch.testing.assert_close(value64.float(), value32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_signature_follows_the_convention(name: str) -> None:
    params = inspect.signature(LOSSES[name]).parameters
    assert list(params)[:2] == ["scores", "labels"]
    for p in list(params.values())[2:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, p.name
        if p.name != "mask":
            assert p.default is not inspect.Parameter.empty, p.name
    assert params["reduction"].default == "mean"


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_and_reduction_are_rejected(name: str) -> None:
    scores, labels = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same"):
        LOSSES[name](scores, torch.zeros(2, 4), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        LOSSES[name](scores, labels, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="reduction"):
        LOSSES[name](scores, labels, mask=torch.ones(2, 3, dtype=torch.bool), reduction="avg")
