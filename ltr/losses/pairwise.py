"""Pairwise ranking losses over the ordered pairs ``(i, j)`` of real items with ``y_i > y_j``.

Per-list normalisation:

* :func:`ranknet_loss` and :func:`pairwise_hinge_loss` take the **mean over the list's pairs**,
  so long lists do not outweigh short ones;
* :func:`lambdarank_loss` takes the **sum over the list's pairs**: its pair weights are
  ``|Delta NDCG|`` values (already normalised by the list's ideal DCG), so the sum is on the
  NDCG scale and its gradients are the classic LambdaRank lambdas.

A list with no ordered pair (one item, all labels equal, no real item) contributes 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ltr.losses._common import (
    discounts,
    gains,
    ideal_dcg,
    ordered_pairs,
    pair_differences,
    prepare,
    ranks_from_scores,
    reduce_lists,
    require_positive,
    safe_divide,
)
from ltr.types import Reduction


def _mean_over_pairs(pair_losses: Tensor, pairs: Tensor) -> Tensor:
    """``[B]`` mean of ``[B, L, L]`` pair losses over the ``True`` entries of ``pairs``."""
    total = torch.where(pairs, pair_losses, torch.zeros_like(pair_losses)).sum(dim=(-2, -1))
    return safe_divide(total, pairs.sum(dim=(-2, -1)).to(pair_losses.dtype))


def ranknet_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    sigma: float = 1.0,
) -> Tensor:
    """RankNet (Burges et al. 2005): logistic loss on every correctly ordered pair.

    Per list, over the set ``P`` of real pairs with ``y_i > y_j``:
    ``l = (1/|P|) sum_{(i,j) in P} log(1 + exp(-sigma (s_i - s_j)))`` (computed with softplus);
    ``l = 0`` when ``P`` is empty.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        sigma: slope of the logistic function.
    """
    require_positive("ranknet", "sigma", sigma)
    scores, labels, mask = prepare(scores, labels, mask)
    pairs = ordered_pairs(labels, mask)  # [B, L, L]
    pair_losses = F.softplus(-sigma * pair_differences(scores))  # [B, L, L]
    return reduce_lists(_mean_over_pairs(pair_losses, pairs), mask, reduction)


def pairwise_hinge_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    margin: float = 1.0,
) -> Tensor:
    """Pairwise hinge (RankSVM) loss: every ordered pair should be separated by ``margin``.

    Per list, over the set ``P`` of real pairs with ``y_i > y_j``:
    ``l = (1/|P|) sum_{(i,j) in P} max(0, margin - (s_i - s_j))``; ``l = 0`` when ``P`` is empty.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        margin: required score gap between the two items of a pair.
    """
    require_positive("hinge", "margin", margin)
    scores, labels, mask = prepare(scores, labels, mask)
    pairs = ordered_pairs(labels, mask)  # [B, L, L]
    pair_losses = F.relu(margin - pair_differences(scores))  # [B, L, L]
    return reduce_lists(_mean_over_pairs(pair_losses, pairs), mask, reduction)


def delta_ndcg(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """``[B, L, L]`` ``|Delta NDCG_ij|``: NDCG change from swapping items ``i`` and ``j`` (no grad).

    ``|Delta NDCG_ij| = |G_i - G_j| * |1/log2(1 + r_i) - 1/log2(1 + r_j)| / IDCG`` with gains
    ``G = 2^y - 1``, ``r`` the current ranks by score
    (:func:`~ltr.losses._common.ranks_from_scores`) and ``IDCG`` the list's ideal DCG
    (0 weights when ``IDCG = 0``). Entries involving padded items are 0.

    Args:
        scores: ``[B, L]`` scores, 0 at padded slots.
        labels: ``[B, L]`` labels, 0 at padded slots.
        mask: ``[B, L]`` bool, ``True`` = real item.
    """
    gain = gains(labels)  # [B, L]
    disc = discounts(ranks_from_scores(scores, labels, mask).to(scores.dtype))  # [B, L]
    swap = pair_differences(gain).abs() * pair_differences(disc).abs()  # [B, L, L]
    idcg = ideal_dcg(gain, mask).unsqueeze(-1).unsqueeze(-1)  # [B, 1, 1]
    both_real = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    return torch.where(both_real, safe_divide(swap, idcg.expand_as(swap)), 0.0).detach()


def lambdarank_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    sigma: float = 1.0,
) -> Tensor:
    """LambdaRank (Burges 2006): RankNet pairs weighted by the NDCG change of swapping them.

    Per list, over the real pairs with ``y_i > y_j``:
    ``l = sum_{y_i > y_j} |Delta NDCG_ij| * log(1 + exp(-sigma (s_i - s_j)))``, with
    ``|Delta NDCG_ij|`` from :func:`delta_ndcg` (gain ``2^y - 1``, discount ``1/log2(1 + rank)``,
    ranks from the current scores, divided by the list's ideal DCG). The weights are detached:
    only the logistic term is differentiated, so ``d l / d s`` are the LambdaRank lambdas.
    The sum (not a mean) over pairs is deliberate: see the module docstring.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        sigma: slope of the logistic function.
    """
    require_positive("lambdarank", "sigma", sigma)
    scores, labels, mask = prepare(scores, labels, mask)
    pairs = ordered_pairs(labels, mask)  # [B, L, L]
    weights = delta_ndcg(scores, labels, mask)  # [B, L, L]
    pair_losses = weights * F.softplus(-sigma * pair_differences(scores))  # [B, L, L]
    per_list = torch.where(pairs, pair_losses, torch.zeros_like(pair_losses)).sum(dim=(-2, -1))
    return reduce_lists(per_list, mask, reduction)
