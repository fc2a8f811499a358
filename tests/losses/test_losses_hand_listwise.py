"""Listwise losses against hand computations (and plain-Python / third-party references).

List A: scores [2.0, 0.5, -1.0], labels [2, 0, 1], three real items.
List B: scores [0.3, 1.2, 9.9], labels [1, 0, 7], the last slot padded (its garbage must not count).
List C: scores [0.7, -0.2, 4.0], labels [0, 0, 3], the last slot padded: no relevant real item.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from losses_reference import listmle_breslow, neural_ndcg
from sklearn.metrics import ndcg_score

from ltr.losses import (
    approx_ndcg_loss,
    listmle_loss,
    listnet_loss,
    neural_ndcg_loss,
    softmax_loss,
)

SCORES = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.2, 9.9], [0.7, -0.2, 4.0]])
LABELS = torch.tensor([[2.0, 0.0, 1.0], [1.0, 0.0, 7.0], [0.0, 0.0, 3.0]])
MASK = torch.tensor([[True, True, True], [True, True, False], [True, True, False]])

LSE_A = math.log(math.exp(2.0) + math.exp(0.5) + math.exp(-1.0))
LSE_B = math.log(math.exp(0.3) + math.exp(1.2))
LSE_C = math.log(math.exp(0.7) + math.exp(-0.2))
LOG2_3 = math.log2(3)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def check(loss_fn, expected: list[float], **params) -> None:
    per_list = loss_fn(SCORES, LABELS, mask=MASK, reduction="none", **params)
    torch.testing.assert_close(per_list, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    mean = loss_fn(SCORES, LABELS, mask=MASK, **params)
    torch.testing.assert_close(mean, torch.tensor(sum(expected) / 3), rtol=1e-5, atol=1e-6)


def test_softmax_hand() -> None:
    # A: targets [2/3, 0, 1/3]; -sum t_i (s_i - LSE) = LSE - (2/3 * 2 + 1/3 * -1) = LSE - 1
    a = -(2 / 3 * (2.0 - LSE_A) + 1 / 3 * (-1.0 - LSE_A))
    b = -(1.0 * (0.3 - LSE_B))  # targets [1, 0]
    check(softmax_loss, [a, b, 0.0])  # C has no relevant item


def test_listnet_hand() -> None:
    z_a = math.exp(2) + math.exp(0) + math.exp(1)  # softmax of labels [2, 0, 1]
    t_a = [math.exp(2) / z_a, 1 / z_a, math.exp(1) / z_a]
    a = -(t_a[0] * (2.0 - LSE_A) + t_a[1] * (0.5 - LSE_A) + t_a[2] * (-1.0 - LSE_A))
    t_b = [math.e / (math.e + 1), 1 / (math.e + 1)]
    b = -(t_b[0] * (0.3 - LSE_B) + t_b[1] * (1.2 - LSE_B))
    c = -(0.5 * (0.7 - LSE_C) + 0.5 * (-0.2 - LSE_C))  # equal labels: uniform target
    check(listnet_loss, [a, b, c])


def test_listnet_matches_torch_cross_entropy_with_soft_targets() -> None:
    gen = torch.Generator().manual_seed(1)
    scores, labels = torch.randn(4, 6, generator=gen), torch.randint(0, 5, (4, 6), generator=gen)
    expected = torch.nn.functional.cross_entropy(
        scores, torch.softmax(labels.float(), dim=-1), reduction="none"
    )
    mask = torch.ones(4, 6, dtype=torch.bool)
    torch.testing.assert_close(listnet_loss(scores, labels, mask=mask, reduction="none"), expected)


def test_listmle_hand() -> None:
    # A in label order: item 0 (s=2), item 2 (s=-1), item 1 (s=0.5)
    a = (LSE_A - 2.0) + (math.log(math.exp(-1.0) + math.exp(0.5)) + 1.0) + (0.5 - 0.5)
    b = (LSE_B - 0.3) + (1.2 - 1.2)
    c = (LSE_C - 0.7) + (LSE_C + 0.2)  # one tie group: both items compete with both
    check(listmle_loss, [a, b, c])


def test_listmle_breslow_ties_hand() -> None:
    scores = torch.tensor([[1.0, -0.5, 0.25, 3.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0, 2.0]])
    lse_tie = math.log(math.exp(1.0) + math.exp(-0.5) + math.exp(0.25))  # {y <= 1}
    lse_all = math.log(math.exp(3.0) + math.exp(1.0) + math.exp(-0.5) + math.exp(0.25))
    expected = (lse_all - 3.0) + (lse_tie - 1.0) + (lse_tie + 0.5) + 0.0
    value = listmle_loss(scores, labels, mask=torch.ones(1, 4, dtype=torch.bool))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_listmle_matches_loop_reference_with_ties_and_padding() -> None:
    rng = random.Random(7)
    rows = []
    for _ in range(6):
        n = rng.randint(1, 7)
        rows.append(([rng.gauss(0, 2) for _ in range(n)], [rng.randint(0, 2) for _ in range(n)]))
    length = 8
    scores = torch.full((len(rows), length), 5.0, dtype=torch.float64)
    labels = torch.full((len(rows), length), 9.0, dtype=torch.float64)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, (s, y) in enumerate(rows):
        slots = sorted(rng.sample(range(length), len(s)))  # real items scattered among pads
        for slot, si, yi in zip(slots, s, y, strict=True):
            scores[b, slot], labels[b, slot], mask[b, slot] = si, yi, True
    expected = torch.tensor([listmle_breslow(s, y) for s, y in rows], dtype=torch.float64)
    got = listmle_loss(scores, labels, mask=mask, reduction="none")
    torch.testing.assert_close(got, expected)


def test_approx_ndcg_hand() -> None:
    # pi_i = 1 + sum_{j != i} sigmoid(s_j - s_i); A gains [3, 0, 1], IDCG = 3 + 1/log2(3)
    pi0 = 1 + sigmoid(0.5 - 2.0) + sigmoid(-1.0 - 2.0)
    pi2 = 1 + sigmoid(2.0 + 1.0) + sigmoid(0.5 + 1.0)
    a = -(3 / math.log2(1 + pi0) + 1 / math.log2(1 + pi2)) / (3 + 1 / LOG2_3)
    b = -(1 / math.log2(1 + 1 + sigmoid(1.2 - 0.3))) / 1.0  # gains [1, 0], IDCG 1
    check(approx_ndcg_loss, [a, b, 0.0])
    # temperature 0.5 doubles every sigmoid argument
    pi0 = 1 + sigmoid(2 * (0.5 - 2.0)) + sigmoid(2 * (-1.0 - 2.0))
    pi2 = 1 + sigmoid(2 * 3.0) + sigmoid(2 * 1.5)
    a = -(3 / math.log2(1 + pi0) + 1 / math.log2(1 + pi2)) / (3 + 1 / LOG2_3)
    b = -(1 / math.log2(2 + sigmoid(2 * 0.9)))
    check(approx_ndcg_loss, [a, b, 0.0], temperature=0.5)


def test_neural_ndcg_two_items_hand() -> None:
    """For n = 2 NeuralSort is already doubly stochastic: rows are [sigma(s0 - s1), sigma(s1 - s0)]
    and [sigma(s1 - s0), sigma(s0 - s1)] (the |s_j - s_k| terms are equal and cancel)."""
    scores = torch.tensor([[0.3, 1.2, -7.0]])
    labels = torch.tensor([[1.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    top, second = sigmoid(0.3 - 1.2), sigmoid(1.2 - 0.3)  # P[:, 0]: item 0 at rank 1 / rank 2
    expected = -(top * 1 + second * 1 / LOG2_3) / 1.0  # gains [1, 0], IDCG = 1
    got = neural_ndcg_loss(scores, labels, mask=mask)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got_k1 = neural_ndcg_loss(scores, labels, mask=mask, k=1)
    assert got_k1.item() == pytest.approx(-top, rel=1e-6)


@pytest.mark.parametrize(
    ("temperature", "iterations", "k"), [(1.0, 50, None), (0.5, 3, None), (2.0, 0, 2), (1.0, 50, 1)]
)
def test_neural_ndcg_matches_loop_reference(temperature: float, iterations: int, k) -> None:
    expected = [
        neural_ndcg([2.0, 0.5, -1.0], [2.0, 0.0, 1.0], temperature, iterations, k),
        neural_ndcg([0.3, 1.2], [1.0, 0.0], temperature, iterations, k),
        0.0,
    ]
    check(neural_ndcg_loss, expected, temperature=temperature, sinkhorn_iterations=iterations, k=k)


@pytest.mark.parametrize("loss_fn", [approx_ndcg_loss, neural_ndcg_loss])
def test_smooth_ndcg_tends_to_sklearn_ndcg_at_low_temperature(loss_fn) -> None:
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (5, 7), generator=gen).double()
    labels[:, 0] = 2.0  # every list has a relevant item
    mask = torch.ones(5, 7, dtype=torch.bool)
    # sklearn uses y_true as the gain, so pass 2^y - 1
    expected = [
        ndcg_score([(2**y - 1).tolist()], [s.tolist()]) for s, y in zip(scores, labels, strict=True)
    ]
    got = -loss_fn(scores, labels, mask=mask, reduction="none", temperature=1e-3)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-3, rtol=0)
