"""Feature drift: how far the features a model is given now are from the ones it learned on.

A model's quality silently depends on its inputs looking like its training data. When an
upstream pipeline changes (a feature rescaled, a join that now yields zeros, a new index), the
server keeps answering and nothing fails, but the rankings degrade. So every trained artifact
carries a **feature profile** (``feature_profile.json``): for each feature, the training
values' deciles as bin edges, the share of training values in each bin, the share missing
(NaN), and the range, mean and standard deviation. ``ltr drift`` compares data with it, and
``ltr serve`` compares the lists it answers with it as they come in (Prometheus gauges).

The comparison per feature:

* **PSI**, the population stability index over the profile's bins plus one bin for missing
  values: ``sum((a - e) * ln(a / e))`` over bins, ``e`` the training share and ``a`` the new
  share, both floored at :data:`PSI_FLOOR` so that an empty bin does not give infinity. The
  usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
* the share of new values **outside the training range** (a rescaled feature shows here
  first), and the **mean shift** in training standard deviations.

The profile also holds the distribution of the **model's own scores** on its training lists
(:attr:`FeatureProfile.score`), compared the same way with the scores it gives new lists. Not
every feature shift matters to a model: score drift says whether the model's output moved, which
is what the rankings are made of. (A shift of every score of a list by the same amount leaves its
ranking alone and still shows here; read it beside the features' table.)

Bins are the deciles of the training values, cut at values the data holds and merged where
they coincide, so a feature that is 0 on 70 % of rows gets a bin ``(-inf, 0]`` holding 70 %
and the rest split at its upper deciles. A bin is closed on the right: ``(edge[i-1],
edge[i]]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltr.errors import DataFormatError

PROFILE = "feature_profile.json"
"""The profile's file name inside a model artifact."""
BINS = 10
"""Quantile bins per feature (deciles), before merging bins whose edges coincide."""
PSI_FLOOR = 1e-4
"""Bin shares below this count as this in the PSI (an empty bin would give infinity)."""
MODERATE, MAJOR = 0.1, 0.25
"""PSI above which a feature's shift is called moderate, and major."""
MAX_ROWS = 1_000_000
"""Most rows a profile is computed from (a seeded random sample of larger data)."""
SCORE = "score"
"""The name :attr:`FeatureProfile.score` is reported under."""


def _counts(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins cut at ``edges`` (closed on the right), then the count
    of NaN: ``[len(edges) + 2]``."""
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    nan = np.isnan(values)
    index = np.searchsorted(np.asarray(edges), values[~nan], side="left")
    counts[: len(edges) + 1] = np.bincount(index, minlength=len(edges) + 1)
    counts[-1] = nan.sum()
    return counts


def _shares(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """:func:`_counts` as shares of ``len(values)`` (all 0 for no values)."""
    if len(values) == 0:
        return np.zeros(len(edges) + 2, dtype=np.float64)
    return _counts(edges, values) / len(values)


@dataclass(frozen=True)
class FeatureStats:
    """One feature's training distribution.

    Attributes:
        edges: sorted distinct bin edges; bin ``i`` holds ``(edges[i-1], edges[i]]``, the first
            ``(-inf, edges[0]]`` and the last ``(edges[-1], inf)``.
        shares: share of all training values in each of the ``len(edges) + 1`` bins; the
            missing values' share, :attr:`missing`, completes them to 1.
        missing: share of training values that were NaN.
        minimum, maximum, mean, std: over the non-missing values (0 when all are missing).
    """

    name: str
    edges: tuple[float, ...]
    shares: tuple[float, ...]
    missing: float
    minimum: float
    maximum: float
    mean: float
    std: float

    def histogram(self, values: np.ndarray) -> np.ndarray:
        """Shares of ``values`` in this feature's bins, then the missing share: ``[bins + 1]``."""
        return _shares(self.edges, values)

    @property
    def expected(self) -> np.ndarray:
        """The training shares in the layout of :meth:`histogram`."""
        return np.array([*self.shares, self.missing], dtype=np.float64)


@dataclass(frozen=True)
class FeatureProfile:
    """Every feature's training distribution, in the model's feature order."""

    features: tuple[FeatureStats, ...]
    rows: int
    """Rows the profile was computed from."""
    source: tuple[str, ...] = field(default=())
    """Where those rows came from (file names), for the record."""
    score: FeatureStats | None = None
    """The distribution of the model's scores on those rows, each list scored whole (None in
    profiles made without the model's scores, such as those written before they were kept)."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def scores(self) -> FeatureProfile | None:
        """The model's score as a profile of one feature, :data:`SCORE`, so that scores
        ``[n, 1]`` are compared as features are (:class:`DriftCounts`, :class:`PeriodCounts`);
        None when the profile has no scores."""
        if self.score is None:
            return None
        return FeatureProfile((self.score,), self.rows, self.source)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "ltr-feature-profile",
            "version": 1,
            "bins": BINS,
            "rows": self.rows,
            "source": list(self.source),
            "features": [asdict(f) for f in self.features],
            "score": None if self.score is None else asdict(self.score),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureProfile:
        features = tuple(_stats_from_json(f) for f in data["features"])
        score = data.get("score")
        return cls(
            features,
            int(data["rows"]),
            tuple(data.get("source", ())),
            None if score is None else _stats_from_json(score),
        )

    def save(self, directory: str | Path) -> Path:
        """Write the profile into a model artifact folder (atomically)."""
        path = Path(directory) / PROFILE
        tmp = path.with_name(f".{PROFILE}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(
        cls, directory: str | Path, names: Sequence[str] | None = None
    ) -> FeatureProfile | None:
        """The profile in a model artifact folder, or None if it has none; with ``names``
        (the model's features) a profile of other features is refused too."""
        from ltr.artifact import ArtifactError  # (imports torch)

        path = Path(directory) / PROFILE
        if not path.exists():
            return None
        try:
            profile = cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path} is not a feature profile: {exc}") from None
        if names is not None and profile.names != tuple(names):
            raise ArtifactError(f"{path} names other features than the model reads")
        return profile


def _stats_from_json(f: dict[str, Any]) -> FeatureStats:
    stats = FeatureStats(
        name=str(f["name"]),
        edges=tuple(float(x) for x in f["edges"]),
        shares=tuple(float(x) for x in f["shares"]),
        missing=float(f["missing"]),
        minimum=float(f["minimum"]),
        maximum=float(f["maximum"]),
        mean=float(f["mean"]),
        std=float(f["std"]),
    )
    if len(stats.shares) != len(stats.edges) + 1:
        raise ValueError(
            f"feature {stats.name!r} has {len(stats.edges)} edges but {len(stats.shares)} shares"
        )
    return stats


def _stats(name: str, values: np.ndarray, bins: int) -> FeatureStats:
    values = values.astype(np.float64)
    nan = np.isnan(values)
    present = values[~nan]
    missing = float(nan.mean()) if len(values) else 0.0
    if len(present) == 0:
        return FeatureStats(name, (), (0.0,), missing, 0.0, 0.0, 0.0, 0.0)
    finite = present[np.isfinite(present)]
    cuts = np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = tuple(float(x) for x in np.unique(cuts[np.isfinite(cuts)]))
    shares = _shares(edges, values)[:-1]
    moments = finite if len(finite) else np.zeros(1)
    return FeatureStats(
        name=name,
        edges=edges,
        shares=tuple(float(s) for s in shares),
        missing=missing,
        minimum=float(moments.min()),
        maximum=float(moments.max()),
        mean=float(moments.mean()),
        std=float(moments.std()),
    )


def profile_features(
    features: np.ndarray,
    names: Sequence[str],
    *,
    bins: int = BINS,
    source: Sequence[str] = (),
    max_rows: int | None = None,
    seed: int = 0,
    scores: np.ndarray | None = None,
) -> FeatureProfile:
    """The profile of ``features [N, F]`` (columns named ``names``) and, when given, of the
    model's ``scores [N]`` of those rows; data of more than ``max_rows`` (:data:`MAX_ROWS`) rows
    is profiled from a seeded random sample of that many (:class:`ProfileSample`)."""
    sample = ProfileSample(max_rows=max_rows, seed=seed)
    sample.add(features, scores)
    return sample.profile(names, bins=bins, source=source)


class ProfileSample:
    """A seeded uniform sample of at most ``max_rows`` rows (features, and the model's scores
    when given) of data that comes a block at a time, in memory bounded by 1.25 times
    ``max_rows`` rows plus one block: every row draws a random key, and the rows with the
    ``max_rows`` smallest keys are kept. The keys are drawn in row order from one generator, so
    the sample is the same however the data is cut into blocks, and data of at most
    ``max_rows`` (:data:`MAX_ROWS`) rows is kept whole."""

    def __init__(self, *, max_rows: int | None = None, seed: int = 0) -> None:
        max_rows = MAX_ROWS if max_rows is None else max_rows
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.max_rows = max_rows
        self.rows = 0
        """Rows added so far."""
        self._rng = np.random.default_rng(seed)
        self._parts: list[tuple[np.ndarray, ...]] = []  # (keys, features, scores), row order
        self._held = 0
        self._bound = math.inf  # a row whose key is not below it can no longer be kept
        self._scored: bool | None = None

    def add(self, features: np.ndarray, scores: np.ndarray | None = None) -> None:
        """Add ``features [n, F]`` (and ``scores [n]``): give scores with every block or none."""
        features = np.asarray(features)
        if features.ndim != 2:
            raise DataFormatError(f"features of shape {features.shape}; expected [rows, features]")
        if self._scored is not None and self._scored != (scores is not None):
            raise DataFormatError("scores were given with some blocks of rows and not others")
        self._scored = scores is not None
        if scores is not None:
            scores = np.asarray(scores).reshape(-1)
            if len(scores) != len(features):
                raise DataFormatError(f"{len(scores)} scores for {len(features)} feature rows")
        keys = self._rng.random(len(features))
        self.rows += len(features)
        keep = np.flatnonzero(keys < self._bound)
        if not len(keep):
            return
        part = (keys[keep], features[keep])
        self._parts.append(part + ((scores[keep],) if scores is not None else ()))
        self._held += len(keep)
        if self._held > self.max_rows + self.max_rows // 4:
            self._shrink()  # about 4 ln(rows / max_rows) times: fewer and fewer rows get in

    def _shrink(self) -> None:
        """Keep only the rows of the ``max_rows`` smallest keys, in row order, gathered part by
        part (at most one copy of the kept rows beside the parts)."""
        keys = np.concatenate([part[0] for part in self._parts])
        pick = np.arange(len(keys))
        if len(keys) > self.max_rows:
            pick = np.argpartition(keys, self.max_rows - 1)[: self.max_rows]
            self._bound = float(keys[pick].max())
            pick.sort()  # the parts are in row order: so is the sample
        ends = np.cumsum([len(part[0]) for part in self._parts])
        starts, cuts = np.r_[0, ends[:-1]], np.searchsorted(pick, ends)
        columns = []
        for j, first in enumerate(self._parts[0]):
            out = np.empty((len(pick), *first.shape[1:]), dtype=first.dtype)
            spans = zip(self._parts, starts, np.r_[0, cuts[:-1]], cuts, strict=True)
            for part, start, lo, hi in spans:  # pick[lo:hi] falls in this part
                out[lo:hi] = part[j][pick[lo:hi] - start]
            columns.append(out)
        self._parts, self._held = [tuple(columns)], len(pick)

    def sample(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The sampled rows' features ``[m, F]`` and scores ``[m]`` (None without scores), in
        the order they were added."""
        if not self._parts:
            raise DataFormatError("no rows to profile")
        self._shrink()
        (part,) = self._parts
        return part[1], (part[2] if self._scored else None)

    def profile(
        self, names: Sequence[str], *, bins: int = BINS, source: Sequence[str] = ()
    ) -> FeatureProfile:
        """The profile of the sample, its features named ``names``."""
        features, scores = self.sample()
        if features.shape[1] != len(names):
            raise DataFormatError(
                f"features of shape {features.shape} for {len(names)} feature names; expected "
                f"[rows, {len(names)}]"
            )
        return FeatureProfile(
            tuple(_stats(name, features[:, j], bins) for j, name in enumerate(names)),
            rows=self.rows,
            source=tuple(str(s) for s in source),
            score=None if scores is None else _stats(SCORE, scores, bins),
        )


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """The population stability index of shares ``actual`` against ``expected`` (same bins)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float) -> str:
    """``stable``, ``moderate`` or ``major`` for a PSI value."""
    return "major" if value > MAJOR else "moderate" if value > MODERATE else "stable"


@dataclass(frozen=True)
class FeatureDrift:
    """How one feature's new values compare with its training profile."""

    name: str
    psi: float
    out_of_range: float
    """Share of new non-missing values below the training minimum or above its maximum."""
    missing: float
    """Share of new values that are NaN (:attr:`FeatureStats.missing` in training)."""
    mean_shift: float
    """(new mean - training mean) / training standard deviation; inf when the training values
    were constant and the new mean differs, nan when no new value is present."""

    @property
    def level(self) -> str:
        return level(self.psi)


class DriftCounts:
    """What :func:`compare` needs from new rows, summed block by block: per feature the count
    in each bin and of missing values, of values outside the training range, and the sum and
    count of finite values. So data of any size is compared in bounded memory, and blocks may
    come in any order (``ltr drift`` over a folder of Parquet files, a period at a time)."""

    def __init__(self, profile: FeatureProfile) -> None:
        self.profile = profile
        self.rows = 0
        self.bins = [np.zeros(len(f.edges) + 2, dtype=np.int64) for f in profile.features]
        width = len(profile.features)
        self.present = np.zeros(width, dtype=np.int64)
        self.outside = np.zeros(width, dtype=np.int64)
        self.finite = np.zeros(width, dtype=np.int64)
        self.total = np.zeros(width, dtype=np.float64)

    def add(self, features: np.ndarray) -> DriftCounts:
        """Count the rows of ``features [n, F]`` (the profile's feature order)."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != len(self.profile.features):
            raise DataFormatError(
                f"features of shape {features.shape} for a profile of "
                f"{len(self.profile.features)} features"
            )
        self.rows += len(features)
        for j, stats in enumerate(self.profile.features):
            values = features[:, j].astype(np.float64)
            self.bins[j] += _counts(stats.edges, values)
            present = values[~np.isnan(values)]
            self.present[j] += len(present)
            self.outside[j] += int(
                np.count_nonzero((present < stats.minimum) | (present > stats.maximum))
            )
            finite = present[np.isfinite(present)]
            self.finite[j] += len(finite)
            self.total[j] += float(finite.sum())
        return self

    def report(self) -> list[FeatureDrift]:
        """Each feature's drift over every row added."""
        if self.rows == 0:
            raise DataFormatError("no rows to compare with the feature profile")
        out = []
        for j, stats in enumerate(self.profile.features):
            shares = self.bins[j] / self.rows
            if self.present[j]:
                outside = float(self.outside[j] / self.present[j])
                mean = float(self.total[j] / self.finite[j]) if self.finite[j] else math.nan
                delta = mean - stats.mean
                if stats.std > 0:
                    shift = delta / stats.std
                else:
                    shift = 0.0 if delta == 0 else math.copysign(math.inf, delta)
            else:
                outside, shift = 0.0, math.nan
            out.append(
                FeatureDrift(
                    name=stats.name,
                    psi=psi(stats.expected, shares),
                    out_of_range=outside,
                    missing=float(shares[-1]),
                    mean_shift=shift,
                )
            )
        return out


def compare(profile: FeatureProfile, features: np.ndarray) -> list[FeatureDrift]:
    """Each feature of ``features [N, F]`` (the profile's feature order) against ``profile``."""
    return DriftCounts(profile).add(features).report()


class RowWindow:
    """The last ``capacity`` rows of ``[n, F]`` blocks added (a ring buffer; not thread-safe)."""

    def __init__(self, capacity: int, num_features: int) -> None:
        if capacity < 1:
            raise ValueError(f"a window holds at least 1 row, got {capacity}")
        self.buffer = np.empty((capacity, num_features), dtype=np.float32)
        self.next = 0  # where the next row goes
        self.count = 0  # rows held

    def add(self, rows: np.ndarray) -> None:
        capacity = len(self.buffer)
        rows = rows[-capacity:]  # only the last `capacity` rows can stay
        n = len(rows)
        first = min(n, capacity - self.next)
        self.buffer[self.next : self.next + first] = rows[:first]
        self.buffer[: n - first] = rows[first:]
        self.next = (self.next + n) % capacity
        self.count = min(capacity, self.count + n)

    def rows(self) -> np.ndarray:
        """A copy of the rows held, oldest first."""
        if self.count < len(self.buffer):
            return self.buffer[: self.count].copy()
        return np.concatenate([self.buffer[self.next :], self.buffer[: self.next]])


PERIODS = ("hour", "day", "week")
"""Lengths of the periods :class:`PeriodCounts` splits data into (weeks start on Monday, UTC)."""


def period_starts(times: np.ndarray, every: str) -> np.ndarray:
    """The start of the ``every`` period (``hour``, ``day``, or ``week`` from Monday 00:00)
    holding each of ``times`` (``datetime64``, UTC), as ``datetime64[s]``."""
    if every not in PERIODS:
        raise ValueError(f"every must be one of {', '.join(PERIODS)}, got {every!r}")
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise DataFormatError(f"period starts need datetime64 times, got {times.dtype}")
    if every == "hour":
        return times.astype("datetime64[h]").astype("datetime64[s]")
    days = times.astype("datetime64[D]")
    if every == "week":  # 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0)
        days = days - (days.astype(np.int64) + 3) % 7
    return days.astype("datetime64[s]")


@dataclass(frozen=True)
class PeriodDrift:
    """The drift of the rows served in one period (:class:`PeriodCounts`)."""

    start: np.datetime64
    rows: int
    lists: int
    features: list[FeatureDrift]
    """Every feature's comparison, in the profile's order; empty when :attr:`judged` is
    False."""
    judged: bool
    """False when the period held fewer lists than ``min_lists``: too few for PSI to mean
    anything (``benchmarks/drift``: with no drift, windows of 10 lists pass PSI 0.25 in most
    draws), so it is counted but not compared."""


class PeriodCounts:
    """New rows split by the ``every`` period of their time, each period counted apart
    (:class:`DriftCounts`), with the distinct lists it held; blocks may come in any order."""

    def __init__(self, profile: FeatureProfile, every: str) -> None:
        if every not in PERIODS:
            raise ValueError(f"every must be one of {', '.join(PERIODS)}, got {every!r}")
        self.profile = profile
        self.every = every
        self.counts: dict[np.datetime64, DriftCounts] = {}
        self.lists: dict[np.datetime64, set] = {}

    def add(self, features: np.ndarray, times: np.ndarray, lists: np.ndarray) -> PeriodCounts:
        """Count ``features [n, F]`` served at ``times [n]`` (``datetime64``, UTC) in lists
        named by ``lists [n]`` (an impression log's ``session``)."""
        features, lists = np.asarray(features), np.asarray(lists)
        if not len(features) == len(times) == len(lists):
            raise DataFormatError(
                f"{len(features)} feature rows, {len(times)} times and {len(lists)} list ids"
            )
        starts = period_starts(times, self.every)
        for start in np.unique(starts):
            pick = starts == start
            if start not in self.counts:
                self.counts[start] = DriftCounts(self.profile)
                self.lists[start] = set()
            self.counts[start].add(features[pick])
            self.lists[start].update(np.unique(lists[pick]).tolist())
        return self

    def report(self, min_lists: int = 100) -> list[PeriodDrift]:
        """Each period, oldest first; those of fewer than ``min_lists`` lists unjudged."""
        out = []
        for start in sorted(self.counts):
            counts, lists = self.counts[start], len(self.lists[start])
            judged = lists >= min_lists
            out.append(
                PeriodDrift(
                    start=start,
                    rows=counts.rows,
                    lists=lists,
                    features=counts.report() if judged else [],
                    judged=judged,
                )
            )
        return out
