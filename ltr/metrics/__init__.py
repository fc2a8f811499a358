"""Ranking metrics as pure functions over ``[batch, list]`` tensors, plus grouped evaluation.

Tensor form: ``ndcg(scores, labels, *, mask, k=None, gain="exp2", empty=EmptyListPolicy.ONE,
ties=TieBreak.PESSIMISTIC, reduction="mean")`` and alike for :func:`dcg`,
:func:`mean_average_precision`, :func:`mean_reciprocal_rank`, :func:`err`, :func:`precision`,
:func:`recall`. Grouped form over flat arrays: :func:`evaluate_grouped`,
:func:`evaluate_grouped_per_query`, :func:`evaluate_all_conventions`, with :func:`group_offsets`.
Names such as ``"ndcg@10"`` resolve through :data:`METRICS` / :func:`parse_metric`.
"""

from ltr.metrics.binary import (
    average_precision_per_list,
    mean_average_precision,
    mean_reciprocal_rank,
    precision,
    precision_per_list,
    recall,
    recall_per_list,
    reciprocal_rank_per_list,
)
from ltr.metrics.cascade import DEFAULT_MAX_GRADE, err, err_per_list
from ltr.metrics.core import Gain, RankedLists, rank_lists
from ltr.metrics.discounted import dcg, dcg_per_list, ndcg, ndcg_per_list
from ltr.metrics.evaluate import (
    CONVENTIONS,
    evaluate_all_conventions,
    evaluate_batch,
    evaluate_grouped,
    evaluate_grouped_per_query,
    grouped_per_list,
)
from ltr.metrics.groups import group_offsets, padded_chunks
from ltr.metrics.reduce import PerList, reduce_per_list
from ltr.metrics.registry import (
    DEFAULT_METRICS,
    METRICS,
    MetricSpec,
    ParsedMetric,
    parse_metric,
    resolve_metric,
    resolve_metrics,
)

__all__ = [
    "CONVENTIONS",
    "DEFAULT_MAX_GRADE",
    "DEFAULT_METRICS",
    "METRICS",
    "Gain",
    "MetricSpec",
    "ParsedMetric",
    "PerList",
    "RankedLists",
    "average_precision_per_list",
    "dcg",
    "dcg_per_list",
    "err",
    "err_per_list",
    "evaluate_all_conventions",
    "evaluate_batch",
    "evaluate_grouped",
    "evaluate_grouped_per_query",
    "group_offsets",
    "grouped_per_list",
    "mean_average_precision",
    "mean_reciprocal_rank",
    "ndcg",
    "ndcg_per_list",
    "padded_chunks",
    "parse_metric",
    "precision",
    "precision_per_list",
    "rank_lists",
    "recall",
    "recall_per_list",
    "reciprocal_rank_per_list",
    "reduce_per_list",
    "resolve_metric",
    "resolve_metrics",
]
