"""LambdaLoss NDCG-Loss2++ (Wang et al. 2018, "The LambdaLoss Framework for Ranking Metric
Optimization", CIKM): a pairwise logistic loss whose pair weights bound the NDCG loss."""

from __future__ import annotations

import math

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


def ndcg_loss2pp_weights(scores: Tensor, labels: Tensor, mask: Tensor, mu: float) -> Tensor:
    """``[B, L, L]`` NDCG-Loss2++ pair weights (no gradient).

    ``w_ij = (lambdarank_ij + mu * loss2_ij) * |G_i - G_j|`` with ``D(r) = log2(1 + r)``, ranks
    ``r`` from the current scores (:func:`~ltr.losses._common.ranks_from_scores`),
    ``G = (2^y - 1) / IDCG`` and

    * ``lambdarank_ij = |1/D(r_i) - 1/D(r_j)|`` -- the LambdaRank term;
    * ``loss2_ij = |1/D(|r_i - r_j|) - 1/D(|r_i - r_j| + 1)|`` -- the NDCG-Loss2 term
      (0 on the diagonal).

    ``mu`` scales the NDCG-Loss2 term, as in the paper's NDCG-Loss2++ (LambdaRank weight plus
    ``mu`` times the NDCG-Loss2 weight) and in allRank (``mu * ndcgLoss2 + lambdaRank``).
    Entries involving padded items, and all entries of a list with ``IDCG = 0``, are 0.
    """
    ranks = ranks_from_scores(scores, labels, mask).to(scores.dtype)  # [B, L]
    gain = safe_divide(gains(labels), ideal_dcg(gains(labels), mask).unsqueeze(-1))  # [B, L]
    lambdarank_term = pair_differences(discounts(ranks)).abs()  # [B, L, L]
    gap = pair_differences(ranks).abs()  # [B, L, L], 0 on the diagonal
    safe_gap = gap.clamp(min=1.0)
    loss2_term = (discounts(safe_gap) - discounts(safe_gap + 1.0)).abs()
    loss2_term = torch.where(gap > 0, loss2_term, torch.zeros_like(loss2_term))
    weights = (lambdarank_term + mu * loss2_term) * pair_differences(gain).abs()
    both_real = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    return torch.where(both_real, weights, torch.zeros_like(weights)).detach()


def lambdaloss_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    sigma: float = 1.0,
    mu: float = 10.0,
) -> Tensor:
    """LambdaLoss NDCG-Loss2++: weighted pairwise logistic loss in base-2 logarithms.

    Per list, over the real pairs with ``y_i > y_j``:
    ``l = -sum_{y_i > y_j} w_ij * log2(sigmoid(sigma (s_i - s_j)))``, with
    ``w_ij = (lambdarank_ij + mu * loss2_ij) * |G_i - G_j|`` from :func:`ndcg_loss2pp_weights`
    (detached, as in allRank) and ``log2(sigmoid(x)) = logsigmoid(x) / ln 2``. The sum (not a
    mean) over pairs keeps the loss on the NDCG scale, as the weights are divided by ``IDCG``.
    A list with no ordered pair contributes 0.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        sigma: slope of the logistic function.
        mu: weight of the NDCG-Loss2 term relative to the LambdaRank term (``mu >= 0``).
    """
    require_positive("lambdaloss", "sigma", sigma)
    require_positive("lambdaloss", "mu", mu, allow_zero=True)
    scores, labels, mask = prepare(scores, labels, mask)
    pairs = ordered_pairs(labels, mask)  # [B, L, L]
    weights = ndcg_loss2pp_weights(scores, labels, mask, mu)  # [B, L, L]
    log2_prob = F.logsigmoid(sigma * pair_differences(scores)) / math.log(2.0)  # [B, L, L]
    pair_losses = -weights * log2_prob
    per_list = torch.where(pairs, pair_losses, torch.zeros_like(pair_losses)).sum(dim=(-2, -1))
    return reduce_lists(per_list, mask, reduction)
