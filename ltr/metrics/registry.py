"""The metric registry and the parser for metric names such as ``"ndcg@10"`` or ``"map"``.

A name is a registered base name, optionally followed by ``@k`` with a positive integer cut-off:
``ndcg@10``, ``dcg@5``, ``map``, ``mrr``, ``err@10``, ``precision@5``, ``recall@10``. Without ``@k``
the metric covers the whole list. Names are case-insensitive; results are keyed by the canonical
(lower-case) spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ltr.errors import ConfigError, unknown_name
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
from ltr.metrics.discounted import dcg, dcg_per_list, ndcg, ndcg_per_list
from ltr.metrics.reduce import PerList


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        metric: the reduced tensor form, ``metric(scores, labels, *, mask, k, empty, ties,
            reduction, **options) -> Tensor``.
        per_list: the shared core, ``per_list(ranked, *, k, **options) -> PerList`` over lists
            ranked by :func:`ltr.metrics.core.rank_lists`; :attr:`metric` and every multi-metric
            evaluation go through it, so one ranking serves all metrics.
        options: names of the extra keyword options it takes (``"gain"``, ``"threshold"``,
            ``"max_grade"``).
        bounded: whether every value lies in ``[0, 1]`` (DCG does not).
    """

    metric: Callable[..., Tensor]
    per_list: Callable[..., PerList]
    options: tuple[str, ...]
    bounded: bool = True


METRICS: dict[str, MetricSpec] = {
    "ndcg": MetricSpec(ndcg, ndcg_per_list, ("gain",)),
    "dcg": MetricSpec(dcg, dcg_per_list, ("gain",), bounded=False),
    "map": MetricSpec(mean_average_precision, average_precision_per_list, ("threshold",)),
    "mrr": MetricSpec(mean_reciprocal_rank, reciprocal_rank_per_list, ("threshold",)),
    "err": MetricSpec(err, err_per_list, ("max_grade",)),
    "precision": MetricSpec(precision, precision_per_list, ("threshold",)),
    "recall": MetricSpec(recall, recall_per_list, ("threshold",)),
}
"""Base metric name -> :class:`MetricSpec`. Add a metric here; nothing is found by reflection."""

DEFAULT_METRICS: tuple[str, ...] = (
    "ndcg@1",
    "ndcg@3",
    "ndcg@5",
    "ndcg@10",
    "map",
    "mrr",
    "err@10",
)
"""Metrics reported by evaluation when none are asked for."""


@dataclass(frozen=True)
class ParsedMetric:
    """A metric name resolved against :data:`METRICS`.

    Attributes:
        name: canonical name, e.g. ``"ndcg@10"`` or ``"map"``.
        base: registry key, e.g. ``"ndcg"``.
        k: cut-off, ``None`` = whole list.
        spec: the registered metric.
    """

    name: str
    base: str
    k: int | None
    spec: MetricSpec

    def per_list_kwargs(
        self,
        *,
        gain: str = "exp2",
        max_grade: float = DEFAULT_MAX_GRADE,
        threshold: float = 0.0,
    ) -> dict[str, Any]:
        """Keyword arguments for :attr:`MetricSpec.per_list`: ``k`` and the options it takes."""
        shared = {"gain": gain, "max_grade": max_grade, "threshold": threshold}
        kwargs: dict[str, Any] = {"k": self.k}
        kwargs.update({opt: shared[opt] for opt in self.spec.options})
        return kwargs


def _valid_names() -> list[str]:
    return [f"{base}[@k]" for base in METRICS]


def resolve_metric(name: str) -> ParsedMetric:
    """Resolve ``"base"`` or ``"base@k"`` into a :class:`ParsedMetric`.

    Raises:
        RegistryError: unknown base name (the message lists the valid ones).
        ConfigError: a malformed cut-off (``k`` must be a positive integer).
    """
    if not isinstance(name, str):
        raise ConfigError(f"metric name must be a string like 'ndcg@10', got {name!r}")
    text = name.strip().lower()
    base, sep, cut = text.partition("@")
    if base not in METRICS:
        raise unknown_name("metric", name, _valid_names())
    k: int | None = None
    if sep:
        if not (cut.isascii() and cut.isdigit()) or int(cut) < 1:
            raise ConfigError(
                f"bad cut-off in metric {name!r}: write '{base}@k' with k a positive integer, "
                f"e.g. '{base}@10', or '{base}' for the whole list"
            )
        k = int(cut)
    return ParsedMetric(
        name=base if k is None else f"{base}@{k}", base=base, k=k, spec=METRICS[base]
    )


def parse_metric(name: str) -> tuple[Callable[..., Tensor], dict[str, Any]]:
    """Parse a metric name into ``(fn, kwargs)`` so that ``fn(scores, labels, mask=m, **kwargs)``.

    Example:
        >>> fn, kwargs = parse_metric("ndcg@10")
        >>> fn.__name__, kwargs
        ('ndcg', {'k': 10})

    Raises:
        RegistryError: unknown base name (the message lists the valid ones).
        ConfigError: a malformed cut-off.
    """
    parsed = resolve_metric(name)
    return parsed.spec.metric, {"k": parsed.k}


def resolve_metrics(names: Sequence[str]) -> list[ParsedMetric]:
    """Resolve several names; duplicates (after canonicalisation) are an error."""
    if isinstance(names, str):
        names = [names]
    parsed = [resolve_metric(n) for n in names]
    seen: set[str] = set()
    for p in parsed:
        if p.name in seen:
            raise ConfigError(f"metric {p.name!r} is listed twice; list each metric once")
        seen.add(p.name)
    if not parsed:
        raise ConfigError("no metrics given; pass at least one name such as 'ndcg@10'")
    return parsed
