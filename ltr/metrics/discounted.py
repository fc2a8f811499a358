"""DCG@k and NDCG@k (Järvelin & Kekäläinen 2002; exponential gain as in Burges et al. 2005).

With the candidates of one list sorted by descending score (ties broken by
:class:`ltr.types.TieBreak`), real items at ranks ``r = 1..n``:

    DCG@k  = sum_{r=1}^{min(k, n)} gain(y_r) / log2(r + 1)
    NDCG@k = DCG@k / IDCG@k

where ``IDCG@k`` is the DCG@k of the labels sorted in descending order (the best possible ranking)
and ``gain(y) = 2**y - 1`` (``"exp2"``, the default, as LightGBM/RankLib) or ``y`` (``"linear"``, as
scikit-learn's ``ndcg_score``). ``k=None`` means the whole list; ``k > n`` is the same as ``k = n``.
A list whose IDCG is 0 (all labels 0) is *empty* and follows :class:`ltr.types.EmptyListPolicy`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ltr.metrics.core import RankedLists, apply_gain, check_gain, check_k, rank_lists
from ltr.metrics.reduce import PerList, reduce_per_list
from ltr.types import EmptyListPolicy, Reduction, TieBreak


def _dcg_idcg(ranked: RankedLists, k: int | None, gain: str) -> tuple[Tensor, Tensor]:
    """Return ``(dcg [B], idcg [B])`` at cut-off ``k``: the shared DCG/NDCG core."""
    k = check_k(k)
    gain = check_gain(gain)
    discounts = ranked.discounts()  # [L]
    cut = ranked.cutoff(k).to(discounts.dtype)  # [B, L]
    gains = apply_gain(ranked.labels, gain) * ranked.mask  # [B, L]
    dcg = (gains * discounts * cut).sum(dim=-1)  # [B]
    ideal = torch.sort(gains, dim=-1, descending=True).values  # [B, L], padded gains are 0
    idcg = (ideal * discounts * cut).sum(dim=-1)  # [B]; real items fill the first n slots
    return dcg, idcg


def dcg_per_list(ranked: RankedLists, *, k: int | None = None, gain: str = "exp2") -> PerList:
    """Per-list DCG@k of ranked lists, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list. gain: ``"exp2"`` or ``"linear"``.

    Returns:
        :class:`PerList` with ``values`` ``[B]`` = DCG@k; relevant = IDCG > 0; empty lists keep
        their actual DCG (0) under ``ONE`` and ``ZERO``.
    """
    value, idcg = _dcg_idcg(ranked, k, gain)
    return PerList(values=value, relevant=idcg > 0, nonempty=ranked.n_items > 0, one_value=0.0)


def ndcg_per_list(ranked: RankedLists, *, k: int | None = None, gain: str = "exp2") -> PerList:
    """Per-list NDCG@k of ranked lists, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list. gain: ``"exp2"`` or ``"linear"``.

    Returns:
        :class:`PerList` with ``values`` ``[B]`` = DCG@k / IDCG@k (0 where IDCG is 0) and
        ``relevant`` = IDCG@k > 0.
    """
    value, idcg = _dcg_idcg(ranked, k, gain)
    relevant = idcg > 0
    safe = torch.where(relevant, idcg, torch.ones_like(idcg))
    return PerList(
        values=torch.where(relevant, value / safe, torch.zeros_like(value)),
        relevant=relevant,
        nonempty=ranked.n_items > 0,
    )


def dcg(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    gain: str = "exp2",
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Discounted cumulative gain at ``k``: ``sum_{r<=k} gain(y_r) / log2(r + 1)``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` non-negative graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        gain: ``"exp2"`` (``2**y - 1``) or ``"linear"`` (``y``).
        empty: lists with all labels 0 have DCG 0 under ``ONE`` and ``ZERO`` (DCG has no maximum
            to report); ``DROP`` leaves them out.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).

    Example:
        >>> dcg(torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 1.0]]), mask=torch.ones(1, 2,
        ...     dtype=torch.bool)).item()  # (2**1 - 1) / log2(3)
        0.6309297680854797
    """
    per_list = dcg_per_list(rank_lists(scores, labels, mask, ties), k=k, gain=gain)
    return reduce_per_list(per_list, empty, reduction)


def ndcg(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    gain: str = "exp2",
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Normalised DCG at ``k``: ``DCG@k / IDCG@k``, in ``[0, 1]``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` non-negative graded relevance.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        gain: ``"exp2"`` (``2**y - 1``) or ``"linear"`` (``y``); discount ``1 / log2(r + 1)``.
        empty: value of a list with IDCG 0 (all labels 0): 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).

    Example:
        >>> ndcg(torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 1.0]]), mask=torch.ones(1, 2,
        ...     dtype=torch.bool)).item()  # (1 / log2(3)) / (1 / log2(2))
        0.6309297680854797
    """
    per_list = ndcg_per_list(rank_lists(scores, labels, mask, ties), k=k, gain=gain)
    return reduce_per_list(per_list, empty, reduction)
