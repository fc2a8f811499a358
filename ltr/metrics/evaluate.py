"""Evaluate several metrics at once: on ``[batch, list]`` tensors or on flat rows grouped by query.

Both forms call the same per-list cores (:attr:`ltr.metrics.registry.MetricSpec.per_list`) and the
same policy/reduction (:mod:`ltr.metrics.reduce`), so they cannot disagree. The grouped form pads
the queries into chunks of similar length (:func:`ltr.metrics.groups.padded_chunks`), so memory
stays bounded for millions of rows; it computes in float64.

Shared options, passed to the metrics that take them: ``ties`` (all), ``gain`` (NDCG, DCG),
``max_grade`` (ERR), ``threshold`` (MAP, MRR, precision, recall). Results are keyed by canonical
metric name (``"ndcg@10"``). See :mod:`ltr.metrics.reduce` for the empty-list conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ltr.errors import DataFormatError
from ltr.metrics.cascade import DEFAULT_MAX_GRADE
from ltr.metrics.core import rank_lists
from ltr.metrics.groups import DEFAULT_MAX_CELLS, check_offsets, padded_chunks
from ltr.metrics.reduce import PerList, concat, reduce_per_list
from ltr.metrics.registry import DEFAULT_METRICS, resolve_metrics
from ltr.types import EmptyListPolicy, Reduction, TieBreak

CONVENTIONS: dict[str, EmptyListPolicy] = {
    "empty=1": EmptyListPolicy.ONE,
    "empty=0": EmptyListPolicy.ZERO,
    "dropped": EmptyListPolicy.DROP,
}
"""Keys of :func:`evaluate_all_conventions` and the policy each stands for."""


def evaluate_batch(
    scores: Tensor,
    labels: Tensor,
    *,
    mask: Tensor,
    metrics: Sequence[str] = DEFAULT_METRICS,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    gain: str = "exp2",
    max_grade: float = DEFAULT_MAX_GRADE,
    threshold: float = 0.0,
    reduction: Reduction | str = "mean",
) -> dict[str, Tensor]:
    """Evaluate several metrics on one padded batch.

    Args:
        scores: ``[B, L]`` scores. labels: ``[B, L]`` graded relevance. mask: ``[B, L]`` bool.
        metrics: names such as ``"ndcg@10"`` (see :func:`ltr.metrics.registry.resolve_metric`).
        empty, ties, gain, max_grade, threshold, reduction: as in the individual metrics.

    Returns:
        ``{name: value}``, scalars or ``[B]`` tensors for ``reduction="none"``.
    """
    parsed = resolve_metrics(metrics)
    ranked = rank_lists(scores, labels, mask, ties)  # one ranking for every metric
    out: dict[str, Tensor] = {}
    for p in parsed:
        kwargs = p.per_list_kwargs(gain=gain, max_grade=max_grade, threshold=threshold)
        out[p.name] = reduce_per_list(p.spec.per_list(ranked, **kwargs), empty, reduction)
    return out


def grouped_per_list(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    gain: str = "exp2",
    max_grade: float = DEFAULT_MAX_GRADE,
    threshold: float = 0.0,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> dict[str, PerList]:
    """Per-query raw metric values (before any empty-list policy), in query order.

    Args:
        scores: ``[N]`` scores. labels: ``[N]`` graded relevance.
        offsets: ``[Q + 1]`` row offsets (see :func:`ltr.metrics.groups.group_offsets`).
        metrics: metric names. ties, gain, max_grade, threshold: shared metric options.
        max_cells: padded cells per chunk (bounds memory).

    Returns:
        ``{name: PerList}`` with ``[Q]`` float64 values, for
        :func:`ltr.metrics.reduce.reduce_per_list` under any policy.
    """
    parsed = resolve_metrics(metrics)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise DataFormatError(
            f"scores and labels must be 1-D arrays of equal length, got {scores.shape} and "
            f"{labels.shape}"
        )
    offsets = check_offsets(offsets, scores.size)
    parts: dict[str, list[PerList]] = {p.name: [] for p in parsed}
    order: list[np.ndarray] = []
    kwargs = {
        p.name: p.per_list_kwargs(gain=gain, max_grade=max_grade, threshold=threshold)
        for p in parsed
    }
    for chunk in padded_chunks(scores, labels, offsets, max_cells):
        order.append(chunk.queries)
        ranked = rank_lists(chunk.scores, chunk.labels, chunk.mask, ties)  # shared by all metrics
        for p in parsed:
            parts[p.name].append(p.spec.per_list(ranked, **kwargs[p.name]))
    visited = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    inverse = torch.from_numpy(np.argsort(visited, kind="stable"))  # chunk order -> query order
    out: dict[str, PerList] = {}
    for p in parsed:
        if not parts[p.name]:  # no queries at all
            empty_t = torch.zeros(0, dtype=torch.float64)
            out[p.name] = PerList(empty_t, empty_t.bool(), empty_t.bool())
            continue
        joined = concat(parts[p.name])
        out[p.name] = PerList(
            values=joined.values[inverse],
            relevant=joined.relevant[inverse],
            nonempty=joined.nonempty[inverse],
            one_value=joined.one_value,
        )
    return out


def evaluate_grouped_per_query(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    gain: str = "exp2",
    max_grade: float = DEFAULT_MAX_GRADE,
    threshold: float = 0.0,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> dict[str, np.ndarray]:
    """Per-query metric values under one empty-list policy (for bootstrap CIs and paired tests).

    Args: as :func:`evaluate_grouped`.

    Returns:
        ``{name: [Q] float64 array}`` in query order; NaN for queries left out (``DROP`` with no
        relevant item, or zero rows).
    """
    per_list = grouped_per_list(
        scores,
        labels,
        offsets,
        metrics=metrics,
        ties=ties,
        gain=gain,
        max_grade=max_grade,
        threshold=threshold,
        max_cells=max_cells,
    )
    return {name: reduce_per_list(pl, empty, "none").numpy() for name, pl in per_list.items()}


def evaluate_grouped(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    gain: str = "exp2",
    max_grade: float = DEFAULT_MAX_GRADE,
    threshold: float = 0.0,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> dict[str, float]:
    """Mean of each metric over queries, for flat rows grouped by query.

    Args:
        scores: ``[N]`` model scores. labels: ``[N]`` graded relevance.
        offsets: ``[Q + 1]`` row offsets; build them with
            :func:`ltr.metrics.groups.group_offsets` from query ids or group sizes.
        metrics: metric names, default :data:`ltr.metrics.registry.DEFAULT_METRICS`.
        empty: policy for queries without a relevant item (``DROP`` leaves them out of the mean);
            queries with zero rows are always left out.
        ties: tie-break rule. gain: NDCG/DCG gain. max_grade: ERR's top grade.
        threshold: relevance threshold of the binary metrics.
        max_cells: padded cells per chunk (bounds memory).

    Returns:
        ``{name: mean}`` (NaN when no query counts).
    """
    per_list = grouped_per_list(
        scores,
        labels,
        offsets,
        metrics=metrics,
        ties=ties,
        gain=gain,
        max_grade=max_grade,
        threshold=threshold,
        max_cells=max_cells,
    )
    return {name: float(reduce_per_list(pl, empty, "mean")) for name, pl in per_list.items()}


def evaluate_all_conventions(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    gain: str = "exp2",
    max_grade: float = DEFAULT_MAX_GRADE,
    threshold: float = 0.0,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> dict[str, dict[str, float]]:
    """Mean metrics under the three empty-list conventions, computing each metric once.

    A query with no relevant item scores 1 under ``"empty=1"``, 0 under ``"empty=0"`` and is left
    out under ``"dropped"``; this applies to every metric (DCG keeps its actual value 0 under the
    first two). Args as :func:`evaluate_grouped`, without ``empty``.

    Returns:
        ``{"empty=1": {name: mean}, "empty=0": {...}, "dropped": {...}}``.
    """
    per_list = grouped_per_list(
        scores,
        labels,
        offsets,
        metrics=metrics,
        ties=ties,
        gain=gain,
        max_grade=max_grade,
        threshold=threshold,
        max_cells=max_cells,
    )
    return {
        key: {name: float(reduce_per_list(pl, policy, "mean")) for name, pl in per_list.items()}
        for key, policy in CONVENTIONS.items()
    }
