"""Expected reciprocal rank, ERR@k (Chapelle, Metzler, Zhang & Grinspan, CIKM 2009).

A user scans the ranked list top-down and stops at rank ``r`` with probability
``R_r = (2**y_r - 1) / 2**max_grade``; ERR is the expected reciprocal rank of the stop:

    ERR@k = sum_{r=1}^{min(k, n)} (1 / r) * R_r * prod_{i<r} (1 - R_i)

``max_grade`` is the top grade of the label scale. Its default, 4, is the 0..4 scale of the paper,
the Yahoo! LTR challenge, LightGBM's lambdarank example and RankLib's ``ERR@k`` (which fixes
``2**4 = 16``), so numbers compare with RankLib's on any data. For LETOR 4.0 (MQ2007/MQ2008, grades
0..2) pass ``max_grade=2`` to get the paper's definition for that scale. A label above ``max_grade``
would make ``R > 1`` and raises :class:`ltr.errors.ConfigError`.

A list with all labels 0 (every ``R_r = 0``) is *empty* and follows
:class:`ltr.types.EmptyListPolicy`. Ties are broken by :class:`ltr.types.TieBreak`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.metrics.core import RankedLists, check_k, rank_lists
from ltr.metrics.reduce import PerList, reduce_per_list
from ltr.types import EmptyListPolicy, Reduction, TieBreak

DEFAULT_MAX_GRADE = 4.0
"""Top grade assumed by :func:`err` unless told otherwise (0..4 scale, as RankLib)."""


def err_per_list(
    ranked: RankedLists, *, k: int | None = None, max_grade: float = DEFAULT_MAX_GRADE
) -> PerList:
    """Per-list ERR@k of ranked lists, before the empty-list policy.

    Args:
        ranked: lists ranked by :func:`ltr.metrics.core.rank_lists` (``[B, L]`` labels and mask).
        k: cut-off, ``None`` = whole list.
        max_grade: top grade of the scale; ``R = (2**y - 1) / 2**max_grade``.

    Returns:
        :class:`PerList` with ``[B]`` values; ``relevant`` = some label is above 0.
    """
    k = check_k(k)
    top = float(ranked.labels.max()) if ranked.labels.numel() else 0.0
    if top > max_grade:
        raise ConfigError(
            f"label {top:g} exceeds ERR's max_grade={max_grade:g}; pass max_grade >= {top:g} "
            "(the top grade of your label scale)"
        )
    stop = (torch.exp2(ranked.labels) - 1.0) / 2.0**max_grade * ranked.mask  # [B, L] R_r
    reach = torch.cumprod(1.0 - stop, dim=-1)  # [B, L] prod_{i<=r} (1 - R_i)
    reach = torch.cat([torch.ones_like(reach[:, :1]), reach[:, :-1]], dim=-1)  # prod_{i<r}
    value = (stop * reach * ranked.cutoff(k) / ranked.positions).sum(dim=-1)  # [B]
    relevant = (stop > 0).any(dim=-1)  # [B]
    return PerList(values=value, relevant=relevant, nonempty=ranked.n_items > 0)


def err(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    k: int | None = None,
    max_grade: float = DEFAULT_MAX_GRADE,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    reduction: Reduction | str = "mean",
) -> Tensor:
    """Expected reciprocal rank at ``k``: ``sum_{r<=k} (1/r) R_r prod_{i<r} (1 - R_i)``.

    Args:
        scores: ``[B, L]`` model scores (padded slots ignored, whatever their value).
        labels: ``[B, L]`` graded relevance in ``[0, max_grade]``.
        mask: ``[B, L]`` bool, ``True`` = real item.
        k: cut-off rank, ``None`` = whole list.
        max_grade: top grade of the scale; stop probability ``R = (2**y - 1) / 2**max_grade``.
        empty: value of a list with all labels 0: 1, 0 or left out of the mean.
        ties: order of equal scores (``PESSIMISTIC``: lower label first; ``POSITION``: input order).
        reduction: ``"mean"``/``"sum"`` over lists, or ``"none"`` for ``[B]`` values.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"`` (NaN for dropped and fully padded lists).

    Example:
        >>> err(torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 2.0]]),
        ...     mask=torch.ones(1, 2, dtype=torch.bool), max_grade=2).item()  # (1/2) * 3/4
        0.375
    """
    per_list = err_per_list(rank_lists(scores, labels, mask, ties), k=k, max_grade=max_grade)
    return reduce_per_list(per_list, empty, reduction)
