"""Shared core of every ranking metric: argument checks, deterministic ranking and cut-offs.

Every metric in :mod:`ltr.metrics` is computed in two steps, both defined here or in
:mod:`ltr.metrics.reduce`:

1. :func:`rank_lists` sorts each list by descending score with a deterministic tie-break and moves
   padded slots to the end, giving the labels in ranked order;
2. a per-list formula turns the ranked labels into one value per list plus a flag saying whether the
   list has a relevant item (see :class:`ltr.metrics.reduce.PerList`); the empty-list policy and
   the reduction are then applied in one place.

Ranks are 1-based: the top candidate has rank 1 and discount ``1 / log2(1 + 1) = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.types import EmptyListPolicy, Reduction, TieBreak

Gain = Literal["exp2", "linear"]
"""Gain of a label ``y``: ``"exp2"`` = ``2**y - 1`` (Burges et al. 2005), ``"linear"`` = ``y``."""

GAINS: tuple[str, ...] = ("exp2", "linear")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


@dataclass(frozen=True)
class RankedLists:
    """Labels and validity in ranked order (best-scored real item first, padded slots last).

    Attributes:
        labels: ``[B, L]`` labels in ranked order, 0 at padded slots (work dtype, floating).
        mask: ``[B, L]`` bool, ``True`` for real items; real items occupy the first ``n`` slots.
        positions: ``[L]`` 1-based ranks ``1, 2, ..., L`` (work dtype).
        n_items: ``[B]`` number of real items per list (work dtype).
    """

    labels: Tensor
    mask: Tensor
    positions: Tensor
    n_items: Tensor

    def cutoff(self, k: int | None) -> Tensor:
        """``[B, L]`` bool: real items ranked within the top ``k`` (``k=None``: all real items)."""
        if k is None:
            return self.mask
        return self.mask & (self.positions <= k)  # [B, L]

    def discounts(self) -> Tensor:
        """``[L]`` DCG discounts ``1 / log2(rank + 1)`` for ranks ``1..L``."""
        return 1.0 / torch.log2(self.positions + 1.0)


def check_k(k: int | None) -> int | None:
    """Validate a cut-off: ``None`` (whole list) or a positive ``int``."""
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"cut-off k must be a positive integer or None, got {k!r}")
    return k


def check_empty(empty: EmptyListPolicy | str) -> EmptyListPolicy:
    """Coerce ``empty`` to :class:`EmptyListPolicy` (accepts its string values)."""
    try:
        return EmptyListPolicy(empty)
    except ValueError:
        valid = ", ".join(p.value for p in EmptyListPolicy)
        raise ConfigError(f"unknown empty-list policy {empty!r}; valid: {valid}") from None


def check_ties(ties: TieBreak | str) -> TieBreak:
    """Coerce ``ties`` to :class:`TieBreak` (accepts its string values)."""
    try:
        return TieBreak(ties)
    except ValueError:
        valid = ", ".join(t.value for t in TieBreak)
        raise ConfigError(f"unknown tie-break {ties!r}; valid: {valid}") from None


def check_gain(gain: str) -> Gain:
    """Validate a gain name (``"exp2"`` or ``"linear"``)."""
    if gain not in GAINS:
        raise ConfigError(f"unknown gain {gain!r}; valid: {', '.join(GAINS)}")
    return gain  # type: ignore[return-value]


def check_reduction(reduction: str) -> Reduction:
    """Validate a reduction name (``"mean"``, ``"sum"`` or ``"none"``)."""
    if reduction not in REDUCTIONS:
        raise ConfigError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
    return reduction  # type: ignore[return-value]


def apply_gain(labels: Tensor, gain: Gain) -> Tensor:
    """Gain of each label: ``2**y - 1`` for ``"exp2"``, ``y`` for ``"linear"`` (same shape)."""
    if gain == "exp2":
        return torch.exp2(labels) - 1.0
    return labels


def rank_lists(
    scores: Tensor, labels: Tensor, mask: Tensor, ties: TieBreak | str = TieBreak.PESSIMISTIC
) -> RankedLists:
    """Sort every list by descending score with a deterministic tie-break; padded slots go last.

    Ordering keys, most significant first: real before padded; higher score first; then
    ``TieBreak.PESSIMISTIC`` puts the lower label first (a constant model gets the worst ordering)
    and ``TieBreak.POSITION`` keeps the input order (stable sort, earlier index first). Done as
    stable sorts from the least to the most significant key, with no Python loop over lists.

    Args:
        scores: ``[B, L]`` floating scores; values at padded slots are ignored, NaN at a real slot
            is an error.
        labels: ``[B, L]`` non-negative graded relevance; values at padded slots are ignored.
        mask: ``[B, L]`` bool, ``True`` = real item.
        ties: tie-break rule for exactly equal scores.

    Returns:
        The labels in ranked order with their mask, 1-based positions and item counts.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [batch, list], got shape {tuple(scores.shape)}")
    if labels.shape != scores.shape or mask.shape != scores.shape:
        raise ValueError(
            "scores, labels and mask must have the same [batch, list] shape, got "
            f"{tuple(scores.shape)}, {tuple(labels.shape)}, {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = real item), got {mask.dtype}")
    ties = check_ties(ties)
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    scores = scores.detach().to(dtype)
    zero = torch.zeros((), dtype=dtype, device=scores.device)
    labels = torch.where(mask, labels.detach().to(dtype), zero)  # [B, L]
    if bool(torch.isnan(scores).logical_and(mask).any()):
        raise ValueError("scores contain NaN at real (unmasked) items; metrics cannot rank them")
    if bool(torch.isnan(labels).any()):
        raise ValueError("labels contain NaN at real (unmasked) items")

    batch, length = scores.shape
    order = torch.arange(length, device=scores.device).expand(batch, length)  # [B, L]
    if ties == TieBreak.PESSIMISTIC:  # least significant key: label ascending
        order = torch.sort(labels, dim=-1, stable=True).indices  # [B, L]
    by_score = torch.sort(scores.gather(-1, order), dim=-1, descending=True, stable=True).indices
    order = order.gather(-1, by_score)  # [B, L]
    padded_last = torch.sort((~mask).gather(-1, order).to(torch.uint8), dim=-1, stable=True)
    order = order.gather(-1, padded_last.indices)  # [B, L]

    ranked_mask = mask.gather(-1, order)  # [B, L]
    return RankedLists(
        labels=labels.gather(-1, order),
        mask=ranked_mask,
        positions=torch.arange(1, length + 1, device=scores.device, dtype=dtype),  # [L]
        n_items=ranked_mask.sum(dim=-1).to(dtype),  # [B]
    )
