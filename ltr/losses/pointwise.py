"""Pointwise ranking losses: each item is scored against its own label.

Both losses average over the real items of a list, so every list weighs the same whatever its
length, then :func:`~ltr.losses._common.reduce_lists` combines the lists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ltr.losses._common import prepare, reduce_lists, require_positive, safe_divide
from ltr.types import Reduction


def _mean_over_items(values: Tensor, mask: Tensor) -> Tensor:
    """``[B]`` mean of ``values`` over the real items of each list (0 for an empty list)."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum(dim=-1)
    return safe_divide(total, mask.sum(dim=-1).to(values.dtype))


def mse_loss(
    scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    """Mean squared error between scores and labels over the real items of each list.

    Per list: ``l = (1/n) sum_{i real} (s_i - y_i)^2`` with ``n`` the number of real items;
    a fully padded list gives 0.

    Args:
        scores: ``[B, L]`` predicted scores.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.

    Example:
        >>> s = torch.tensor([[1.0, 0.0]]); y = torch.tensor([[2.0, 0.0]])
        >>> mse_loss(s, y, mask=torch.tensor([[True, True]]))  # ((1-2)^2 + 0) / 2
        tensor(0.5000)
    """
    scores, labels, mask = prepare(scores, labels, mask)
    per_list = _mean_over_items((scores - labels) ** 2, mask)  # [B]
    return reduce_lists(per_list, mask, reduction)


def sigmoid_bce_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    reduction: Reduction = "mean",
    max_label: float | None = None,
) -> Tensor:
    """Binary cross-entropy with logits, averaged over the real items of each list.

    Targets: ``t_i = 1[y_i > 0]`` (binary relevance) when ``max_label`` is ``None``, otherwise
    ``t_i = clamp(y_i / max_label, 0, 1)`` (graded labels scaled to ``[0, 1]`` by a fixed
    constant such as 4 for MSLR, so a list's loss never depends on the other lists in a batch).

    Per list: ``l = (1/n) sum_{i real} [softplus(s_i) - t_i s_i]``, which equals
    ``-(t_i log sigmoid(s_i) + (1 - t_i) log(1 - sigmoid(s_i)))`` computed stably.

    Args:
        scores: ``[B, L]`` logits.
        labels: ``[B, L]`` graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]`` per-list losses; ``"mean"`` / ``"sum"`` -> scalar.
        max_label: label that maps to target 1; ``None`` = binary targets ``y > 0``.
    """
    if max_label is not None:
        require_positive("sigmoid_bce", "max_label", max_label)
    scores, labels, mask = prepare(scores, labels, mask)
    if max_label is None:
        targets = (labels > 0).to(scores.dtype)
    else:
        targets = (labels / max_label).clamp(0.0, 1.0)
    per_item = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")  # [B, L]
    return reduce_lists(_mean_over_items(per_item, mask), mask, reduction)
