"""Statistics over per-query metric values: bootstrap intervals and paired significance tests.

All functions take ``[Q]`` arrays of per-query values (e.g. NDCG@10 of each test query) in the
same query order for both systems; NaN marks a query left out (the ``dropped`` convention) and is
removed (pairwise, for the paired functions) before anything is computed.

* :func:`bootstrap_ci` -- percentile bootstrap over queries: resample the ``n`` queries with
  replacement ``R`` times, take the mean each time; the interval is the ``alpha/2`` and
  ``1 - alpha/2`` quantiles of those means.
* :func:`randomization_test` -- paired sign-flip (permutation) test of ``H0: the two systems are
  exchangeable on every query``. With ``d_i = a_i - b_i`` and ``T = |mean(d)|``, the two-sided
  p-value is the share of sign vectors ``s`` with ``|mean(s * d)| >= T``: exact over all ``2^n``
  vectors when ``2^n <= n_resamples``, else ``(1 + hits) / (1 + R)`` over ``R`` random ones.
* :func:`paired_t_test` -- ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of freedom
  (``sd`` with ``ddof = 1``), two-sided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_CHUNK = 1000  # resamples per vectorised step (bounds memory at CHUNK x Q)


@dataclass(frozen=True)
class Interval:
    """A point estimate (the mean) with a confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class PairedTest:
    """Comparison of system ``a`` with system ``b`` over the same queries."""

    delta: Interval
    """Mean of ``a - b`` with its bootstrap interval."""
    p_randomization: float
    p_ttest: float
    t: float
    exact: bool
    """Whether the randomisation p-value enumerated every sign vector."""

    def to_json(self) -> dict[str, float | bool]:
        return {
            "delta": self.delta.mean,
            "delta_low": self.delta.low,
            "delta_high": self.delta.high,
            "n": self.delta.n,
            "p_randomization": self.p_randomization,
            "p_ttest": self.p_ttest,
            "t": self.t,
            "exact": self.exact,
        }


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` over the queries where both are defined. Shapes ``[Q]`` -> ``[n]``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be 1-D of equal length, got {a.shape}, {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def bootstrap_ci(
    values: np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` ``[Q]`` (NaN removed)."""
    x = _finite(values)
    n = x.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # [chunk, n]
        means[start:stop] = x[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high), n)


def randomization_test(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, bool]:
    """Two-sided paired sign-flip test of ``mean(a - b) = 0``; returns ``(p, exact)``."""
    d = paired(a, b)
    n = d.size
    if n == 0:
        return math.nan, True
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal up to rounding counts as a hit
    if 2**n <= n_resamples:
        hits = 0
        for start in range(0, 2**n, _CHUNK):
            codes = np.arange(start, min(start + _CHUNK, 2**n))  # [chunk]
            bits = (codes[:, None] >> np.arange(n)[None, :]) & 1  # [chunk, n]
            stats = np.abs(((1 - 2 * bits) * d).mean(axis=1))
            hits += int((stats >= observed - tol).sum())
        return hits / 2**n, True
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1  # [chunk, n]
        stats = np.abs((signs * d).mean(axis=1))
        hits += int((stats >= observed - tol).sum())
    return (1 + hits) / (1 + n_resamples), False


def paired_t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test; returns ``(t, p)``. Constant differences give ``t = +-inf``
    (``p = 0``) or, when all are zero, ``t = 0`` (``p = 1``)."""
    from scipy.special import stdtr

    d = paired(a, b)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    mean = float(d.mean())
    sd = float(np.sqrt(((d - mean) ** 2).sum() / (n - 1)))
    if sd == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, float(2.0 * stdtr(n - 1, -abs(t)))


def compare(
    a: np.ndarray,
    b: np.ndarray,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> PairedTest:
    """Mean difference ``a - b`` with a bootstrap interval and both significance tests."""
    d = paired(a, b)
    p_rand, exact = randomization_test(a, b, n_resamples=n_permutations, seed=seed)
    t, p_t = paired_t_test(a, b)
    delta = bootstrap_ci(d, confidence=confidence, n_resamples=n_bootstrap, seed=seed)
    return PairedTest(delta, p_rand, p_t, t, exact)


def gains_and_losses(
    a: np.ndarray, b: np.ndarray, qids: np.ndarray, *, top: int = 10
) -> dict[str, list[dict[str, object]]]:
    """The ``top`` queries where ``a`` gained most over ``b`` and where it lost most.

    Returns ``{"gained": [...], "lost": [...]}``, each entry
    ``{"qid", "model", "baseline", "delta"}``, largest change first; ties keep query order.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    delta = a - b
    valid = np.flatnonzero(~np.isnan(delta))

    def rows(indices: np.ndarray) -> list[dict[str, object]]:
        return [
            {
                "qid": str(qids[i]),
                "model": float(a[i]),
                "baseline": float(b[i]),
                "delta": float(delta[i]),
            }
            for i in indices
        ]

    up = valid[np.argsort(-delta[valid], kind="stable")]
    down = valid[np.argsort(delta[valid], kind="stable")]
    return {
        "gained": rows(up[:top][delta[up[:top]] > 0]),
        "lost": rows(down[:top][delta[down[:top]] < 0]),
    }
