"""Binary-relevance metrics: MAP, MRR, precision@k and recall@k.

An item is *relevant* when its label is strictly greater than ``threshold`` (default 0, so any
positive grade counts). With the list sorted by descending score (ties broken by
:class:`ltr.types.TieBreak`), ``rel_r`` in {0, 1} the relevance at rank ``r``, ``n`` real items and
``R = sum_r rel_r`` relevant ones:

    P@k   = sum_{r<=k} rel_r / min(k, n)
    R@k   = sum_{r<=k} rel_r / R
    AP@k  = (1 / R) * sum_{r<=k} rel_r * P@r          (trec_eval ``map``/``map_cut`` denominator R)
    RR@k  = 1 / (rank of the first relevant item) if that rank <= k, else 0

MAP and MRR are the means of AP and RR over lists. ``k=None`` means the whole list. A list with
``R = 0`` is *empty* and follows :class:`ltr.types.EmptyListPolicy` for all four metrics (including
precision, whose value there would be 0), so all metrics are computed over the same lists.
Precision divides by ``min(k, n)``, not ``k`` (trec_eval divides by ``k``), so a perfect ranking of
a short list scores 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ltr.metrics.core import RankedLists, check_k, rank_lists
from ltr.metrics.reduce import PerList, reduce_per_list
from ltr.types import EmptyListPolicy, Reduction, TieBreak


def _relevance(ranked: RankedLists, threshold: float) -> tuple[Tensor, Tensor]:
    """Return ``(rel [B, L] in {0, 1}, R [B])``: binary relevance by rank and its count."""
    rel = ((ranked.labels > threshold) & ranked.mask).to(ranked.positions.dtype)  # [B, L]
    return rel, rel.sum(dim=-1)


def _per_list(values: Tensor, n_relevant: Tensor, ranked: RankedLists) -> PerList:
    relevant = n_relevant > 0
    values = torch.where(relevant, values, torch.zeros_like(values))  # hide 0/0
    return PerList(values=values, relevant=relevant, nonempty=ranked.n_items > 0)


def average_precision_per_list(
    ranked: RankedLists, *, k: int | None = None, threshold: float = 0.0
) -> PerList:
    """Per-list AP@k = ``(1/R) sum_{r<=k} rel_r * P@r``, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list.
        threshold: an item is relevant when ``label > threshold``.

    Returns:
        :class:`PerList` with ``[B]`` values; ``relevant`` = the list has a relevant item.
    """
    k = check_k(k)
    rel, n_relevant = _relevance(ranked, threshold)
    precision_at_r = rel.cumsum(dim=-1) / ranked.positions  # [B, L]
    hits = rel * ranked.cutoff(k)  # [B, L]
    return _per_list((precision_at_r * hits).sum(dim=-1) / n_relevant, n_relevant, ranked)


def reciprocal_rank_per_list(
    ranked: RankedLists, *, k: int | None = None, threshold: float = 0.0
) -> PerList:
    """Per-list RR@k = ``1 / rank of the first relevant item`` (0 beyond ``k``), before the policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list.
        threshold: an item is relevant when ``label > threshold``.

    Returns:
        :class:`PerList` with ``[B]`` values; ``relevant`` = the list has a relevant item.
    """
    k = check_k(k)
    rel, n_relevant = _relevance(ranked, threshold)
    # 1/r decreases with r, so the largest rel_r / r is the first relevant item's; the extra zero
    # column gives 0 for lists without a hit and keeps zero-length lists (L = 0) valid.
    first = nn.functional.pad(rel * ranked.cutoff(k) / ranked.positions, (0, 1))  # [B, L + 1]
    return _per_list(first.amax(dim=-1), n_relevant, ranked)


def precision_per_list(
    ranked: RankedLists, *, k: int | None = None, threshold: float = 0.0
) -> PerList:
    """Per-list P@k = ``hits@k / min(k, n)``, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list.
        threshold: an item is relevant when ``label > threshold``.

    Returns:
        :class:`PerList` with ``[B]`` values; ``relevant`` = the list has a relevant item.
    """
    k = check_k(k)
    rel, n_relevant = _relevance(ranked, threshold)
    hits = (rel * ranked.cutoff(k)).sum(dim=-1)  # [B]
    shown = ranked.n_items if k is None else ranked.n_items.clamp(max=k)  # [B]
    return _per_list(hits / shown.clamp(min=1), n_relevant, ranked)


def recall_per_list(
    ranked: RankedLists, *, k: int | None = None, threshold: float = 0.0
) -> PerList:
    """Per-list R@k = ``hits@k / R``, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list.
        threshold: an item is relevant when ``label > threshold``.

    Returns:
        :class:`PerList` with ``[B]`` values; ``relevant`` = the list has a relevant item.
    """
    k = check_k(k)
    rel, n_relevant = _relevance(ranked, threshold)
    hits = (rel * ranked.cutoff(k)).sum(dim=-1)  # [B]
    return _per_list(hits / n_relevant, n_relevant, ranked)


def mean_average_precision(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    threshold: float = 0.0,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Mean average precision: mean over lists of ``AP@k = (1/R) sum_{r<=k} rel_r * P@r``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` graded relevance; relevant means ``label > threshold``.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        threshold: binarisation threshold (default 0: any positive grade is relevant).
        empty: value of a list with no relevant item: 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).
    """
    ranked = rank_lists(scores, labels, mask, ties)
    per_list = average_precision_per_list(ranked, k=k, threshold=threshold)
    return reduce_per_list(per_list, empty, reduction)


def mean_reciprocal_rank(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    threshold: float = 0.0,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Mean reciprocal rank: mean over lists of ``1 / rank of the first relevant item`` (0 if > k).

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` graded relevance; relevant means ``label > threshold``.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        threshold: binarisation threshold (default 0: any positive grade is relevant).
        empty: value of a list with no relevant item: 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).
    """
    ranked = rank_lists(scores, labels, mask, ties)
    per_list = reciprocal_rank_per_list(ranked, k=k, threshold=threshold)
    return reduce_per_list(per_list, empty, reduction)


def precision(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    threshold: float = 0.0,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Precision at ``k``: ``(relevant items in the top k) / min(k, n)``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` graded relevance; relevant means ``label > threshold``.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        threshold: binarisation threshold (default 0: any positive grade is relevant).
        empty: value of a list with no relevant item: 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).
    """
    ranked = rank_lists(scores, labels, mask, ties)
    per_list = precision_per_list(ranked, k=k, threshold=threshold)
    return reduce_per_list(per_list, empty, reduction)


def recall(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    threshold: float = 0.0,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Recall at ``k``: ``(relevant items in the top k) / (relevant items in the list)``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` graded relevance; relevant means ``label > threshold``.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        threshold: binarisation threshold (default 0: any positive grade is relevant).
        empty: value of a list with no relevant item: 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).
    """
    ranked = rank_lists(scores, labels, mask, ties)
    per_list = recall_per_list(ranked, k=k, threshold=threshold)
    return reduce_per_list(per_list, empty, reduction)
