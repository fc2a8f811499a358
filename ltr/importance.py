"""Permutation feature importance for rankers: how much a ranking metric drops when one
feature's values are shuffled.

For every feature ``j`` and repetition ``r`` the column ``j`` is permuted, every list is scored
again with the other features untouched, and the importance is ``baseline - permuted`` of the
metric (Breiman, 2001; scikit-learn's ``permutation_importance`` does the same for estimators
that score rows one at a time). Two ways to shuffle:

* ``all``: across every row of the data, as scikit-learn does. A feature is then also judged on
  how its values compare between queries.
* ``lists``: within each list only. A list keeps its own set of values, so only how the feature
  orders a list's candidates counts; a feature constant within every list scores exactly 0.

A feature the model ignores scores exactly 0 either way. A negative importance means the shuffled
feature happened to help, which is noise unless it is large against the spread over repetitions.

Permutations are drawn from ``numpy.random.default_rng(seed)``, one per (repetition, feature) in
that order (repetition-major), so a run repeats exactly with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ltr.errors import ConfigError
from ltr.metrics import evaluate_grouped, resolve_metric
from ltr.types import EmptyListPolicy, TieBreak

SHUFFLES = ("all", "lists")


@dataclass(frozen=True)
class FeatureImportance:
    """One feature's drops of the metric, one per repetition."""

    name: str
    index: int
    drops: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.drops.mean())

    @property
    def std(self) -> float:
        return float(self.drops.std(ddof=1)) if len(self.drops) > 1 else 0.0


@dataclass(frozen=True)
class ImportanceResult:
    """Importances, most important first, with the metric they were measured on."""

    metric: str
    baseline: float
    shuffle: str
    repeats: int
    seed: int
    features: list[FeatureImportance]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "shuffle": self.shuffle,
            "repeats": self.repeats,
            "seed": self.seed,
            "features": [
                {
                    "name": f.name,
                    "index": f.index,
                    "mean": f.mean,
                    "std": f.std,
                    "drops": f.drops.tolist(),
                }
                for f in self.features
            ],
        }


def shuffled_column(
    column: np.ndarray, offsets: np.ndarray, shuffle: str, rng: np.random.Generator
) -> np.ndarray:
    """``column`` (``[N]``) with its values permuted across all rows or within each list."""
    if shuffle == "all":
        return column[rng.permutation(len(column))]
    lists = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))  # row -> its list
    # rows sorted by (list, random key): each list's block stays where it is, in random order
    return column[np.lexsort((rng.random(len(column)), lists))]


def permutation_importance(
    score: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    feature_names: Sequence[str] | None = None,
    columns: Sequence[int] | None = None,
    metric: str = "ndcg@10",
    empty: EmptyListPolicy | str = EmptyListPolicy.ONE,
    ties: TieBreak | str = TieBreak.PESSIMISTIC,
    max_grade: float | None = None,
    repeats: int = 5,
    shuffle: str = "all",
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ImportanceResult:
    """Permutation importance of ``columns`` (default: every feature) for a ranker.

    Args:
        score: ``[N, F]`` features -> ``[N]`` scores, every list scored whole (rows of a list
            contiguous, as ``offsets`` says).
        features: ``[N, F]``. labels: ``[N]`` graded relevance. offsets: ``[Q + 1]``.
        feature_names: ``F`` names (default ``f1..fF``).
        columns: indices of the features to measure.
        metric: a metric name (``ndcg@10``, ``map``, ``err@10``, ...); ``empty`` and ``ties``
            as in :func:`ltr.metrics.evaluate_grouped`.
        max_grade: ERR's top grade (default: the largest label, at least 2).
        repeats: permutations per feature (at least 1; 2 or more give a spread).
        shuffle: ``all`` rows or within ``lists``.
        seed: seed of the permutations.
        progress: called with 1 after each (repetition, feature) scoring, for a progress bar.

    Returns:
        Importances sorted by mean drop, largest first (ties in feature order).
    """
    metric = resolve_metric(metric).name  # a clear error for an unknown name, before scoring
    if shuffle not in SHUFFLES:
        raise ConfigError(f"shuffle must be one of {list(SHUFFLES)}, got {shuffle!r}")
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    features = np.asarray(features)
    n, width = features.shape
    names = [f"f{i + 1}" for i in range(width)] if feature_names is None else list(feature_names)
    if len(names) != width:
        raise ConfigError(f"{len(names)} feature names for {width} features")
    columns = list(range(width)) if columns is None else [int(c) for c in columns]
    bad = [c for c in columns if not 0 <= c < width]
    if bad:
        raise ConfigError(f"feature indices {bad} are outside 0..{width - 1}")
    labels = np.asarray(labels, dtype=np.float64)
    grade = float(max_grade if max_grade is not None else max(2.0, float(labels.max())))

    def measure(x: np.ndarray) -> float:
        scores = np.asarray(score(x), dtype=np.float64)
        if scores.shape != (n,):
            raise ConfigError(f"the scorer returned shape {scores.shape} for {n} rows")
        values = evaluate_grouped(
            scores, labels, offsets, metrics=[metric], empty=empty, ties=ties, max_grade=grade
        )
        return next(iter(values.values()))

    baseline = measure(features)
    rng = np.random.default_rng(seed)
    drops = np.zeros((len(columns), repeats))
    permuted = features.copy()
    for r in range(repeats):
        for i, j in enumerate(columns):
            permuted[:, j] = shuffled_column(features[:, j], offsets, shuffle, rng)
            drops[i, r] = baseline - measure(permuted)
            permuted[:, j] = features[:, j]
            if progress is not None:
                progress(1)
    found = [FeatureImportance(names[j], j, drops[i]) for i, j in enumerate(columns)]
    found.sort(key=lambda f: -f.mean)  # stable: equal means keep feature order
    return ImportanceResult(metric, baseline, shuffle, repeats, seed, found)
