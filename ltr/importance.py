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

Features that carry the same information (MQ2008's BM25 of the body, the title and the whole
document, say) hide each other: shuffle one and the model still reads the others, so each looks
unimportant alone. ``groups`` measures such features together: one row order moves all of a
group's columns at once.

A feature the model ignores scores exactly 0 either way. A negative importance means the shuffled
feature happened to help, which is noise unless it is large against the spread over repetitions.

Permutations are drawn from ``numpy.random.default_rng(seed)``, one per (repetition, feature or
group) in that order (repetition-major, features before groups), so a run repeats exactly with
the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ltr.data.parquet import default_feature_names
from ltr.errors import ConfigError
from ltr.metrics import evaluate_grouped, resolve_metric
from ltr.types import EmptyListPolicy, TieBreak

SHUFFLES = ("all", "lists")


@dataclass(frozen=True)
class FeatureImportance:
    """One feature's (or group of features') drops of the metric, one per repetition."""

    name: str
    indices: tuple[int, ...]
    """The feature's column, or the group's columns."""
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
                    "indices": list(f.indices),
                    "mean": f.mean,
                    "std": f.std,
                    "drops": f.drops.tolist(),
                }
                for f in self.features
            ],
        }


def shuffled_rows(offsets: np.ndarray, shuffle: str, rng: np.random.Generator) -> np.ndarray:
    """``[N]`` a random order of the rows, across all of them or within each list: ``x[order]``
    is ``x`` shuffled."""
    n = int(offsets[-1])
    if shuffle == "all":
        return rng.permutation(n)
    lists = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))  # row -> its list
    # rows sorted by (list, random key): each list's block stays where it is, in random order
    return np.lexsort((rng.random(n), lists))


def permutation_importance(
    score: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    feature_names: Sequence[str] | None = None,
    columns: Sequence[int] | None = None,
    groups: dict[str, Sequence[int]] | None = None,
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
        columns: indices of the features to measure one by one (default: all of them, or none
            when ``groups`` are given).
        groups: named sets of feature indices, each measured as one unit.
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
    names = default_feature_names(width) if feature_names is None else list(feature_names)
    if len(names) != width:
        raise ConfigError(f"{len(names)} feature names for {width} features")
    if columns is None:
        columns = [] if groups else range(width)
    units = [(None, (int(c),)) for c in columns]  # a single feature is named after its column
    for name, members in (groups or {}).items():
        if not members:
            raise ConfigError(f"feature group {name!r} is empty")
        units.append((name, tuple(int(c) for c in members)))
    bad = sorted({c for _, cs in units for c in cs if not 0 <= c < width})
    if bad:
        raise ConfigError(f"feature indices {bad} are outside 0..{width - 1}")
    units = [(name or names[cs[0]], cs) for name, cs in units]
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
    drops = np.zeros((len(units), repeats))
    permuted = features.copy()
    for r in range(repeats):
        for i, (_, cs) in enumerate(units):
            cs = list(cs)
            permuted[:, cs] = features[np.ix_(shuffled_rows(offsets, shuffle, rng), cs)]
            drops[i, r] = baseline - measure(permuted)
            permuted[:, cs] = features[:, cs]
            if progress is not None:
                progress(1)
    found = [FeatureImportance(name, cs, drops[i]) for i, (name, cs) in enumerate(units)]
    found.sort(key=lambda f: -f.mean)  # stable: equal means keep feature order
    return ImportanceResult(metric, baseline, shuffle, repeats, seed, found)
