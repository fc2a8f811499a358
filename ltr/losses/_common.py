"""Helpers shared by the ranking losses: input checks, masking, gains, ranks, DCG, reduction.

Everything here is private to :mod:`ltr.losses`. Shapes: ``B`` lists of padded length ``L``.
The helpers keep every intermediate value finite, even at padded slots and in fully padded rows,
so that ``0 * inf`` never turns a gradient into NaN.
"""

from __future__ import annotations

import math
from typing import get_args

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.types import Reduction

_REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def prepare(scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes and dtypes; return scores and labels with padded slots set to 0.

    Args:
        scores: ``[B, L]`` floating-point scores (anything at padded slots, even NaN).
        labels: ``[B, L]`` non-negative graded relevance (anything at padded slots).
        mask: ``[B, L]`` bool, ``True`` = real item.

    Returns:
        ``(scores, labels, mask)``: scores with 0 at padded slots (their gradient is 0 there),
        labels cast to the scores' dtype with 0 at padded slots, and the mask unchanged.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [batch, list], got shape {tuple(scores.shape)}")
    if labels.shape != scores.shape or mask.shape != scores.shape:
        raise ValueError(
            f"scores, labels and mask must have the same [batch, list] shape, got "
            f"{tuple(scores.shape)}, {tuple(labels.shape)} and {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = real item), got {mask.dtype}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got {scores.dtype}")
    scores = scores.masked_fill(~mask, 0.0)
    labels = labels.to(scores.dtype).masked_fill(~mask, 0.0)
    return scores, labels, mask


def reduce_lists(per_list: Tensor, mask: Tensor, reduction: Reduction) -> Tensor:
    """Combine per-list losses; ``"mean"`` averages over lists with at least one real item.

    Args:
        per_list: ``[B]`` loss of each list, already 0 for fully padded rows.
        mask: ``[B, L]`` bool, ``True`` = real item.
        reduction: ``"none"`` -> ``[B]``; ``"sum"`` -> scalar sum; ``"mean"`` -> scalar
            ``sum / max(1, number of non-empty lists)`` (0, with a gradient path, when all
            rows are padded).
    """
    if reduction == "none":
        return per_list
    if reduction == "sum":
        return per_list.sum()
    if reduction == "mean":
        non_empty = mask.any(dim=-1)  # [B]
        total = torch.where(non_empty, per_list, torch.zeros_like(per_list)).sum()
        return total / non_empty.sum().clamp(min=1).to(per_list.dtype)
    raise ConfigError(f"unknown reduction {reduction!r}; valid: {', '.join(_REDUCTIONS)}")


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """``log(sum_{mask} exp(x))`` along ``dim``, finite (and with finite gradients) everywhere.

    Entries where ``mask`` is False are left out. When every entry along ``dim`` is masked the
    result is ``log(tiny)`` (a large negative finite number) instead of ``-inf``.
    ``mask`` must broadcast to ``x``.
    """
    x = x.masked_fill(~mask, -math.inf)
    shift = x.amax(dim=dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    total = torch.exp(x - shift).sum(dim=dim)
    tiny = torch.finfo(x.dtype).tiny
    return shift.squeeze(dim) + torch.log(total.clamp(min=tiny))


def masked_log_softmax(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """``log_softmax`` over the entries where ``mask`` is True; 0 at masked entries."""
    log_p = x - masked_logsumexp(x, mask, dim=dim).unsqueeze(dim)
    return log_p.masked_fill(~mask, 0.0)


def gains(labels: Tensor) -> Tensor:
    """Exponential gain ``2^y - 1`` (0 for label 0)."""
    return torch.exp2(labels) - 1.0


def discounts(ranks: Tensor) -> Tensor:
    """Logarithmic discount ``1 / log2(1 + rank)`` for 1-based ranks (any float dtype)."""
    return 1.0 / torch.log2(1.0 + ranks)


def position_discounts(length: int, like: Tensor, k: int | None = None) -> Tensor:
    """``[L]`` discounts of positions ``1..L``, set to 0 after position ``k`` when given."""
    positions = torch.arange(1, length + 1, device=like.device, dtype=like.dtype)
    disc = discounts(positions)
    if k is not None:
        disc = torch.where(positions <= k, disc, torch.zeros_like(disc))
    return disc


def ideal_dcg(gain: Tensor, mask: Tensor, k: int | None = None) -> Tensor:
    """``[B]`` best achievable DCG (@k): real gains sorted descending, times position discounts.

    Args:
        gain: ``[B, L]`` non-negative gains (0 at padded slots).
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: optional cut-off; ``None`` = whole list.
    """
    best = torch.sort(gain.masked_fill(~mask, 0.0), dim=-1, descending=True).values
    return (best * position_discounts(gain.shape[-1], gain, k)).sum(dim=-1)


def ranks_from_scores(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """``[B, L]`` 1-based rank of every item when sorted by score, highest first (no gradient).

    Real items take ranks ``1..n``; padded slots come after them (their ranks are meaningless).
    Ties in score are broken pessimistically (lower label first, as
    :attr:`ltr.types.TieBreak.PESSIMISTIC`), then by position. Items tied in both score and label
    are interchangeable, so any loss built on these ranks is invariant to permuting the list.
    Implemented with three stable sorts (least significant key first): ``O(L log L)``.
    """
    scores, labels = scores.detach(), labels.detach()
    order = torch.argsort(labels, dim=-1, stable=True)  # label ascending
    by_score = torch.argsort(scores.gather(-1, order), dim=-1, descending=True, stable=True)
    order = order.gather(-1, by_score)  # score descending, then label ascending
    padded_last = torch.argsort((~mask).gather(-1, order).to(torch.uint8), dim=-1, stable=True)
    order = order.gather(-1, padded_last)  # [B, L] item index at each position
    positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def pair_differences(x: Tensor) -> Tensor:
    """``[B, L, L]`` of ``x_i - x_j`` (row ``i``, column ``j``) for ``x`` of shape ``[B, L]``."""
    return x.unsqueeze(-1) - x.unsqueeze(-2)


def ordered_pairs(labels: Tensor, mask: Tensor) -> Tensor:
    """``[B, L, L]`` bool: ``True`` where ``i`` and ``j`` are real and ``y_i > y_j``."""
    both_real = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    return both_real & (pair_differences(labels) > 0)


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` where ``denominator > 0``, else 0 (gradient-safe)."""
    positive = denominator > 0
    ratio = numerator / torch.where(positive, denominator, torch.ones_like(denominator))
    return torch.where(positive, ratio, torch.zeros_like(ratio))


def require_positive(loss: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number > 0 (>= 0 if allowed)."""
    bound = ">= 0" if allow_zero else "> 0"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{loss}: {name} must be a finite number {bound}, got {value!r}")


def require_cutoff(loss: str, k: int | None) -> None:
    """Raise :class:`ConfigError` unless ``k`` is ``None`` or an int >= 1."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"{loss}: k must be None or an integer >= 1, got {k!r}")
