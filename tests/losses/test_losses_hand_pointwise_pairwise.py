"""Pointwise and pairwise losses against hand computations on two tiny lists.

List A: scores [2.0, 0.5, -1.0], labels [2, 0, 1], three real items.
List B: scores [0.3, 1.2, 9.9], labels [1, 0, 7], the last slot padded (its garbage must not count).
Ranks by score: A -> [1, 2, 3]; B -> [2, 1] for its two real items.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from losses_reference import lambdaloss, lambdarank

from ltr.losses import (
    lambdaloss_loss,
    lambdarank_loss,
    mse_loss,
    pairwise_hinge_loss,
    ranknet_loss,
    sigmoid_bce_loss,
)

SCORES = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.2, 9.9]])
LABELS = torch.tensor([[2.0, 0.0, 1.0], [1.0, 0.0, 7.0]])
MASK = torch.tensor([[True, True, True], [True, True, False]])

LOG2_3 = math.log2(3)  # discount of rank 2 is 1 / LOG2_3; rank 1 -> 1; rank 3 -> 1/2


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def check(loss_fn, expected: list[float], **params) -> None:
    per_list = loss_fn(SCORES, LABELS, mask=MASK, reduction="none", **params)
    torch.testing.assert_close(per_list, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    mean = loss_fn(SCORES, LABELS, mask=MASK, **params)
    torch.testing.assert_close(mean, torch.tensor(sum(expected) / 2), rtol=1e-5, atol=1e-6)


def test_mse_hand() -> None:
    a = ((2 - 2) ** 2 + (0.5 - 0) ** 2 + (-1 - 1) ** 2) / 3  # (0 + 0.25 + 4) / 3
    b = ((0.3 - 1) ** 2 + (1.2 - 0) ** 2) / 2  # (0.49 + 1.44) / 2
    check(mse_loss, [a, b])


def test_sigmoid_bce_binary_targets_hand() -> None:
    # target 1: -log sigmoid(s) = log(1 + e^-s); target 0: -log(1 - sigmoid(s)) = log(1 + e^s)
    a = (softplus(-2.0) + softplus(0.5) + softplus(1.0)) / 3  # targets [1, 0, 1]
    b = (softplus(-0.3) + softplus(1.2)) / 2  # targets [1, 0]
    check(sigmoid_bce_loss, [a, b])


def test_sigmoid_bce_scaled_targets_hand() -> None:
    # max_label = 2: targets A = [1, 0, 0.5], B = [0.5, 0]
    half = 0.5 * softplus(1.0) + 0.5 * softplus(-1.0)  # s = -1, t = 0.5
    a = (softplus(-2.0) + softplus(0.5) + half) / 3
    b = ((0.5 * softplus(-0.3) + 0.5 * softplus(0.3)) + softplus(1.2)) / 2
    check(sigmoid_bce_loss, [a, b], max_label=2.0)


def test_ranknet_hand() -> None:
    # A pairs (i over j): (0,1) diff 1.5; (0,2) diff 3.0; (2,1) diff -1.5
    a = (softplus(-1.5) + softplus(-3.0) + softplus(1.5)) / 3
    b = softplus(0.9)  # one pair (0,1): diff 0.3 - 1.2 = -0.9
    check(ranknet_loss, [a, b])


def test_ranknet_sigma_hand() -> None:
    a = (softplus(-3.0) + softplus(-6.0) + softplus(3.0)) / 3  # sigma = 2 doubles every diff
    b = softplus(1.8)
    check(ranknet_loss, [a, b], sigma=2.0)


def test_hinge_hand() -> None:
    a = (max(0, 1 - 1.5) + max(0, 1 - 3.0) + max(0, 1 + 1.5)) / 3  # (0 + 0 + 2.5) / 3
    b = max(0, 1 + 0.9)
    check(pairwise_hinge_loss, [a, b])
    a2 = (max(0, 2 - 1.5) + max(0, 2 - 3.0) + max(0, 2 + 1.5)) / 3  # margin 2: (0.5 + 0 + 3.5) / 3
    check(pairwise_hinge_loss, [a2, max(0, 2 + 0.9)], margin=2.0)


def test_lambdarank_hand() -> None:
    # A: gains 2^y - 1 = [3, 0, 1]; IDCG = 3/1 + 1/log2(3); discounts at ranks [1, 2, 3]
    idcg_a = 3 + 1 / LOG2_3
    d1, d2, d3 = 1.0, 1 / LOG2_3, 0.5
    a = (
        abs(3 - 0) * abs(d1 - d2) / idcg_a * softplus(-1.5)  # pair (0,1)
        + abs(3 - 1) * abs(d1 - d3) / idcg_a * softplus(-3.0)  # pair (0,2)
        + abs(1 - 0) * abs(d3 - d2) / idcg_a * softplus(1.5)  # pair (2,1)
    )
    # B: gains [1, 0]; IDCG = 1; item 0 is at rank 2, item 1 at rank 1
    b = abs(1 - 0) * abs(d2 - d1) / 1.0 * softplus(0.9)
    check(lambdarank_loss, [a, b])


def test_lambdaloss_hand() -> None:
    # weight = (|1/D(r_i) - 1/D(r_j)| + mu |1/D(gap) - 1/D(gap + 1)|) |G_i - G_j|, D(r) = log2(1+r)
    # term = -weight * log2(sigmoid(diff)) = weight * softplus(-diff) / ln 2
    mu = 10.0
    d1, d2, d3 = 1.0, 1 / LOG2_3, 0.5  # 1/D(1), 1/D(2), 1/D(3)
    idcg_a = 3 + 1 / LOG2_3
    g = [3 / idcg_a, 0.0, 1 / idcg_a]
    w01 = (abs(d1 - d2) + mu * abs(d1 - d2)) * abs(g[0] - g[1])  # ranks 1, 2; gap 1
    w02 = (abs(d1 - d3) + mu * abs(d2 - d3)) * abs(g[0] - g[2])  # ranks 1, 3; gap 2
    w21 = (abs(d3 - d2) + mu * abs(d1 - d2)) * abs(g[2] - g[1])  # ranks 3, 2; gap 1
    ln2 = math.log(2)
    a = (w01 * softplus(-1.5) + w02 * softplus(-3.0) + w21 * softplus(1.5)) / ln2
    w_b = (abs(d2 - d1) + mu * abs(d1 - d2)) * abs(1.0 - 0.0)  # ranks 2, 1; gap 1; IDCG 1
    b = w_b * softplus(0.9) / ln2
    check(lambdaloss_loss, [a, b])
    # mu = 0 leaves the LambdaRank weights only
    a0 = abs(d1 - d2) * g[0] * softplus(-1.5)
    a0 += abs(d1 - d3) * (g[0] - g[2]) * softplus(-3.0)
    a0 += abs(d3 - d2) * g[2] * softplus(1.5)
    a0 /= ln2
    check(lambdaloss_loss, [a0, abs(d2 - d1) * softplus(0.9) / ln2], mu=0.0)


@pytest.mark.parametrize("loss_fn", [lambdarank_loss, lambdaloss_loss])
def test_lambda_weights_are_detached(loss_fn) -> None:
    """The gradient is the weighted logistic gradient only: for B's single pair (0,1) with
    weight w and diff x = s0 - s1, d/ds0 = -w sigmoid(-x) (times 1/ln 2 for lambdaloss)."""
    scores = SCORES.clone().requires_grad_(True)
    loss_fn(scores, LABELS, mask=MASK, reduction="none")[1].backward()
    x = 0.3 - 1.2
    d1, d2 = 1.0, 1 / LOG2_3
    if loss_fn is lambdarank_loss:
        w = abs(d2 - d1)
        expected = -w / (1 + math.exp(x))
    else:
        w = abs(d2 - d1) * 11  # LambdaRank term + 10 * NDCG-Loss2 term (equal for gap 1)
        expected = -w / (1 + math.exp(x)) / math.log(2)
    torch.testing.assert_close(scores.grad[1], torch.tensor([expected, -expected, 0.0]))


@pytest.mark.parametrize(
    ("loss_fn", "reference"), [(lambdarank_loss, lambdarank), (lambdaloss_loss, lambdaloss)]
)
def test_lambda_losses_match_loop_reference_with_tied_scores(loss_fn, reference) -> None:
    """Integer scores make ties common; ranks must break them pessimistically (lower label
    first, then position), real items scattered among padded slots."""
    rng = random.Random(3)
    length, rows = 7, []
    for _ in range(8):
        n = rng.randint(1, 6)
        rows.append(
            ([float(rng.randint(-2, 2)) for _ in range(n)], [rng.randint(0, 3) for _ in range(n)])
        )
    scores = torch.full((len(rows), length), 1.0, dtype=torch.float64)  # pads tie with real scores
    labels = torch.full((len(rows), length), 3.0, dtype=torch.float64)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, (s, y) in enumerate(rows):
        slots = sorted(rng.sample(range(length), len(s)))
        for slot, si, yi in zip(slots, s, y, strict=True):
            scores[b, slot], labels[b, slot], mask[b, slot] = si, yi, True
    expected = [reference(s, y) if any(y) else 0.0 for s, y in rows]
    got = loss_fn(scores, labels, mask=mask, reduction="none")
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
