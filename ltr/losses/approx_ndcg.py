"""ApproxNDCG (Qin, Liu & Li 2010, "A general approximation framework for direct optimization of
information retrieval measures"): NDCG with ranks replaced by a smooth sum of sigmoids."""

from __future__ import annotations

import torch
from torch import Tensor

from ltr.losses._common import (
    gains,
    ideal_dcg,
    pair_differences,
    prepare,
    reduce_lists,
    require_positive,
    safe_divide,
)
from ltr.types import Reduction


def approx_ranks(scores: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """``[B, L]`` smooth ranks ``pi_i = 1 + sum_{j real, j != i} sigmoid((s_j - s_i) / T)``.

    As ``T -> 0`` this tends to ``1 + #{j : s_j > s_i}`` (ties count 1/2 each). Values at padded
    slots are meaningless.

    Args:
        scores: ``[B, L]`` scores (finite at padded slots).
        mask: ``[B, L]`` bool, ``True`` = real item.
        temperature: ``T > 0``; smaller is closer to the true ranks but less smooth.
    """
    # beats[b, i, j] = sigmoid((s_j - s_i) / T): how much j is ranked above i.
    beats = torch.sigmoid(-pair_differences(scores) / temperature)  # [B, L, L]
    others = mask.unsqueeze(-2) & ~torch.eye(scores.shape[-1], dtype=torch.bool, device=mask.device)
    return 1.0 + torch.where(others, beats, torch.zeros_like(beats)).sum(dim=-1)


def approx_ndcg_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    temperature: float = 1.0,
) -> Tensor:
    """Negative ApproxNDCG over the real items of each list.

    Per list, with smooth ranks ``pi`` from :func:`approx_ranks`, gains ``G = 2^y - 1`` and the
    list's ideal DCG ``IDCG``:
    ``l = -(1 / IDCG) sum_{i real} G_i / log2(1 + pi_i)``, in ``[-1, 0)`` for a list with a
    relevant item. A list with ``IDCG = 0`` (no relevant item) contributes 0.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        temperature: sigmoid temperature ``T`` (Qin et al.'s ``alpha = 1 / T``).
    """
    require_positive("approx_ndcg", "temperature", temperature)
    scores, labels, mask = prepare(scores, labels, mask)
    gain = gains(labels)  # [B, L], 0 at padded slots
    ranks = approx_ranks(scores, mask, temperature)  # [B, L]
    dcg = (gain / torch.log2(1.0 + ranks)).sum(dim=-1)  # [B]
    per_list = -safe_divide(dcg, ideal_dcg(gain, mask))  # [B]
    return reduce_lists(per_list, mask, reduction)
