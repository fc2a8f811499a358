"""Listwise losses built on softmax / Plackett-Luce probabilities over the real items of a list.

Per-list values are sums over the list's items (cross-entropies and a negative log-likelihood),
not means. Softmaxes and log-sum-exps run over the real items only, so padded slots play no part.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ltr.losses._common import masked_log_softmax, prepare, reduce_lists, safe_divide
from ltr.types import Reduction


def softmax_loss(
    scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    """Softmax cross-entropy (rax ``softmax_loss``) with label-proportional targets.

    Per list, with ``t_i = y_i / sum_{j real} y_j`` and ``p_i = softmax(s)_i`` over real items:
    ``l = -sum_{i real} t_i log p_i``. A list with no relevant item (``sum y = 0``) contributes 0.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` non-negative graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
    """
    scores, labels, mask = prepare(scores, labels, mask)
    targets = safe_divide(labels, labels.sum(dim=-1, keepdim=True))  # [B, L], rows sum to 1 or 0
    log_p = masked_log_softmax(scores, mask)  # [B, L]
    per_list = -(targets * log_p).sum(dim=-1)  # [B]
    return reduce_lists(per_list, mask, reduction)


def listnet_loss(
    scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    """ListNet (Cao et al. 2007) with top-one probabilities.

    Per list, over the real items: ``l = -sum_i softmax(y)_i log softmax(s)_i``, the
    cross-entropy between the top-one distributions of labels and scores. Unlike
    :func:`softmax_loss`, a list whose labels are all equal (even all 0) still has a uniform
    target and so a non-zero loss. A fully padded list contributes 0.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
    """
    scores, labels, mask = prepare(scores, labels, mask)
    targets = masked_log_softmax(labels, mask).exp().masked_fill(~mask, 0.0)  # [B, L]
    log_p = masked_log_softmax(scores, mask)  # [B, L]
    per_list = -(targets * log_p).sum(dim=-1)  # [B]
    return reduce_lists(per_list, mask, reduction)


def listmle_loss(
    scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    """ListMLE (Xia et al. 2008): Plackett-Luce negative log-likelihood of the label order.

    Ties in labels follow the Breslow convention, which makes the loss invariant to the order of
    tied items: every real item ``i`` competes against all real items not more relevant than it,

    ``l = sum_{i real} [ logsumexp_{j real, y_j <= y_i} s_j - s_i ]``.

    With distinct labels this is exactly the Plackett-Luce NLL of the permutation that sorts the
    labels descending. A list whose labels are all equal is one tie group, so its loss is
    ``sum_i [logsumexp(s) - s_i]`` (it pulls the scores together); a fully padded list gives 0.

    Computed in ``O(L log L)``: sort by label (descending), take a reverse cumulative
    log-sum-exp of the sorted scores, and read it at the first position of each item's tie group.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
    """
    scores, labels, mask = prepare(scores, labels, mask)
    # Padded slots get label +inf so they sort first and never enter a real item's suffix.
    key = torch.where(mask, labels, torch.full_like(labels, float("inf")))  # [B, L]
    key_sorted, order = torch.sort(key, dim=-1, descending=True, stable=True)  # [B, L]
    s_sorted = scores.gather(-1, order)  # [B, L]
    mask_sorted = mask.gather(-1, order)  # [B, L]
    # suffix[b, p] = logsumexp(s_sorted[b, p:]); finite since padded scores are 0.
    suffix = torch.logcumsumexp(s_sorted.flip(-1), dim=-1).flip(-1)  # [B, L]
    # First sorted position of each item's tie group: search the ascending sequence -key.
    neg_key = (-key_sorted).contiguous()
    group_start = torch.searchsorted(neg_key, neg_key, right=False)  # [B, L]
    per_item = suffix.gather(-1, group_start) - s_sorted  # [B, L]
    per_list = torch.where(mask_sorted, per_item, torch.zeros_like(per_item)).sum(dim=-1)
    return reduce_lists(per_list, mask, reduction)
