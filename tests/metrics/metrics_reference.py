"""Plain-Python reference implementations of the ranking metrics, one list at a time.

Written independently of ``ltr.metrics`` (explicit loops over a Python-sorted list, no tensors) so
that the tensor code can be checked against it. Each function takes one list's real items only and
returns ``(value, relevant)``; ``relevant`` is False for a list with no relevant item.
"""

from __future__ import annotations

import math


def ranked_labels(scores: list[float], labels: list[float], ties: str) -> list[float]:
    """Labels sorted by descending score; ties: "pessimistic" (low label first) or "position"."""
    idx = list(range(len(scores)))
    if ties == "pessimistic":
        idx.sort(key=lambda i: (-scores[i], labels[i], i))
    else:
        idx.sort(key=lambda i: (-scores[i], i))
    return [labels[i] for i in idx]


def _gain(y: float, gain: str) -> float:
    return 2.0**y - 1.0 if gain == "exp2" else y


def _dcg_of(ordered: list[float], k: int | None, gain: str) -> float:
    depth = len(ordered) if k is None else min(k, len(ordered))
    total = 0.0
    for r in range(1, depth + 1):
        total += _gain(ordered[r - 1], gain) / math.log2(r + 1)
    return total


def dcg(scores, labels, k=None, gain="exp2", ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    ideal = _dcg_of(sorted(labels, reverse=True), k, gain)
    return _dcg_of(ordered, k, gain), ideal > 0


def ndcg(scores, labels, k=None, gain="exp2", ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    ideal = _dcg_of(sorted(labels, reverse=True), k, gain)
    if ideal == 0:
        return 0.0, False
    return _dcg_of(ordered, k, gain) / ideal, True


def average_precision(scores, labels, k=None, threshold=0.0, ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    n_rel = sum(1 for y in labels if y > threshold)
    if n_rel == 0:
        return 0.0, False
    hits, total = 0, 0.0
    for r, y in enumerate(ordered, start=1):
        if k is not None and r > k:
            break
        if y > threshold:
            hits += 1
            total += hits / r
    return total / n_rel, True


def reciprocal_rank(scores, labels, k=None, threshold=0.0, ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    if not any(y > threshold for y in labels):
        return 0.0, False
    for r, y in enumerate(ordered, start=1):
        if k is not None and r > k:
            break
        if y > threshold:
            return 1.0 / r, True
    return 0.0, True


def precision(scores, labels, k=None, threshold=0.0, ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    if not any(y > threshold for y in labels):
        return 0.0, False
    top = ordered if k is None else ordered[:k]
    return sum(1 for y in top if y > threshold) / len(top), True


def recall(scores, labels, k=None, threshold=0.0, ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    n_rel = sum(1 for y in labels if y > threshold)
    if n_rel == 0:
        return 0.0, False
    top = ordered if k is None else ordered[:k]
    return sum(1 for y in top if y > threshold) / n_rel, True


def err(scores, labels, k=None, max_grade=4.0, ties="pessimistic"):
    ordered = ranked_labels(scores, labels, ties)
    if not any(y > 0 for y in labels):
        return 0.0, False
    total, still_looking = 0.0, 1.0
    for r, y in enumerate(ordered, start=1):
        if k is not None and r > k:
            break
        stop = (2.0**y - 1.0) / 2.0**max_grade
        total += still_looking * stop / r
        still_looking *= 1.0 - stop
    return total, True


REFERENCE = {
    "ndcg": ndcg,
    "dcg": dcg,
    "map": average_precision,
    "mrr": reciprocal_rank,
    "precision": precision,
    "recall": recall,
    "err": err,
}
"""Registry base name -> reference function (options as keyword arguments)."""


def apply_policy(value: float, relevant: bool, empty: str, base: str) -> float:
    """The value a list reports under an empty-list policy ("one", "zero", "drop")."""
    if relevant:
        return value
    if empty == "drop":
        return math.nan
    if empty == "one" and base != "dcg":  # DCG has no maximum: an empty list keeps DCG = 0
        return 1.0
    return 0.0


def mean_ignoring_nan(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
