"""Dataset statistics, accumulated chunk by chunk so they work on streamed files too."""

from __future__ import annotations

from collections import Counter

import numpy as np


class DataStats:
    """Running counts over rows of whole queries: rows, queries, grades, list lengths."""

    def __init__(self) -> None:
        self.rows = 0
        self.features = 0
        self.labels: Counter[float] = Counter()
        self.lengths: list[np.ndarray] = []
        self.without_relevant = 0
        self.missing = 0

    def update(self, labels: np.ndarray, features: np.ndarray, offsets: np.ndarray) -> DataStats:
        """Add rows ``labels [n]``, ``features [n, F]``, split into queries by ``offsets``."""
        self.rows += len(labels)
        self.features = features.shape[1]
        grades, counts = np.unique(labels, return_counts=True)
        self.labels.update(dict(zip(grades.tolist(), counts.tolist(), strict=True)))
        self.lengths.append(np.diff(offsets))
        if len(labels):
            self.without_relevant += int(np.sum(np.maximum.reduceat(labels, offsets[:-1]) <= 0))
        self.missing += int(np.isnan(features).sum())
        return self

    def summary(self) -> dict[str, object]:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(1, dtype=np.int64)
        return {
            "rows": self.rows,
            "queries": int(sum(len(x) for x in self.lengths)),
            "features": self.features,
            "labels": {_grade(g): int(c) for g, c in sorted(self.labels.items())},
            "list_length_min": int(lengths.min()),
            "list_length_median": float(np.median(lengths)),
            "list_length_max": int(lengths.max()),
            "queries_without_relevant": self.without_relevant,
            "missing_values": self.missing,
        }


def _grade(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_stats(stats: dict[str, object]) -> str:
    """Human-readable multi-line rendering of :meth:`DataStats.summary`."""
    grades = ", ".join(f"{g}: {c:,}" for g, c in stats["labels"].items())  # type: ignore[union-attr]
    return "\n".join(
        [
            f"  rows                      {stats['rows']:,}",
            f"  queries                   {stats['queries']:,}",
            f"  features                  {stats['features']}",
            f"  label counts              {grades}",
            f"  candidates per query      min {stats['list_length_min']}, "
            f"median {stats['list_length_median']:g}, max {stats['list_length_max']}",
            f"  queries with no relevant  {stats['queries_without_relevant']:,}",
            f"  missing values (NaN)      {stats['missing_values']:,}",
        ]
    )
