"""Relevance labels from clicks under the user browsing model (UBM), by EM.

In the UBM (Dupret and Piwowarski 2008; :class:`ltr.clicks.model.BrowsingModel`) a user looks
at the document at position ``k`` with a probability ``g(k, d)`` that depends on the position
and on the distance ``d = k - l`` to the last click above it (at ``l``), with a value of its
own when nothing above was clicked; an examined document ``d`` draws a click with probability
``a_d``, its label. Position bias is then neither the PBM's fixed curve nor a cascade's stop: a
document right below a click is looked at more than one far below it, and a user who skips a
document may still look at the next.

The clicks above an impression fix its cell ``(k, d)``, and given them, whether the user looks
is independent of everything else; so ``P(click) = a_d g(k, d)`` impression by impression, and
EM is the PBM's (:mod:`ltr.clicks.propensity`) with the cell in place of the position. For an
impression not clicked, the posteriors of attraction and of examination are ``a (1 - g) /
(1 - a g)`` and ``g (1 - a) / (1 - a g)``; a clicked one was both. The M-step takes each
document's mean posterior attraction over its impressions, and each cell's mean posterior
examination. ``g`` at the top (position 1, nothing above) is held at 1: the scale that ``a``
and ``g`` otherwise share is fixed, as in the cascade models, by users looking at the first
result, so ``a_d`` is a probability of a click when looked at.

Deep positions and long distances are pooled as the PBM's propensities are past ``pool_after``
(:func:`ltr.clicks.propensity.position_buckets`): ``g`` has a row per position bucket and a
column per distance bucket, after a first column for "no click above". A cell the log never
shows takes the impression-weighted mean examination of its column's cells that it does show
(the same distance to the last click, or no click above, at other positions; of all cells, if
none).

With ``g(k, d)`` the same for every ``d`` the UBM is the PBM; :mod:`ltr.clicks.compare` says
which of the two a log needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltr.clicks.cascade import _shrunk
from ltr.clicks.log import ClickLog, UnidentifiableError
from ltr.clicks.squarem import squarem
from ltr.errors import ConfigError, DataFormatError

POOL_AFTER = 10
_TINY = 1e-300


@dataclass(frozen=True)
class UBMFit:
    attractiveness: np.ndarray
    """``[D]`` ``a_d`` of every (query, document) pair of the log, by pair code."""
    examination: np.ndarray
    """``[B, B + 1]`` ``g``: row = position bucket, column 0 = no click above, column ``1 + j``
    = the last click above at a distance in bucket ``j``. ``examination[0, 0] = 1``."""
    buckets: np.ndarray
    """``[P]`` the bucket of each position (and distance) ``1..P``, ``P`` the log's deepest."""
    cell_impressions: np.ndarray
    """``[B, B + 1]`` impressions the log has in each cell (0 = filled, see the module doc)."""
    iterations: int
    converged: bool
    impressions: np.ndarray
    """``[D]`` each pair's impressions."""
    attracted: np.ndarray
    """``[D]`` each pair's expected attractive impressions at the last E-step (the labels'
    numerator, before any pseudo-counts)."""

    @property
    def labels(self) -> np.ndarray:
        """``[D]`` ``a_d``: the probability that a user who looks at ``d`` clicks it."""
        return self.attractiveness

    def examination_at(self, positions: np.ndarray, last_click: np.ndarray) -> np.ndarray:
        """``g(k, k - l)`` for 1-based ``positions`` ``k`` and the positions ``l`` of the last
        click above (0 = none). Positions and distances past the fitted log's deepest take its
        deepest bucket."""
        row, column = _cell(self.buckets, positions, last_click)
        return self.examination[row, column]

    def probabilities(self, log: ClickLog, attractiveness: np.ndarray | None = None) -> np.ndarray:
        """``[N]`` the probability of a click at each impression of ``log`` (its row order)
        given the session's clicks above it: ``a_d g(k, d)``, with this fit's ``a`` or
        ``attractiveness`` (``[D]`` by ``log``'s pair codes)."""
        a = self.attractiveness if attractiveness is None else attractiveness
        g = self.examination_at(log.position, last_click_above(log))
        return np.clip(a[log.doc], 0.0, 1.0) * g


def last_click_above(log: ClickLog) -> np.ndarray:
    """``[N]`` for each impression of ``log`` (its row order), the position of the last click
    above it in its session; 0 where there is none."""
    order = np.lexsort((log.position, log.session))
    session = log.session[order].astype(np.int64)
    position = log.position[order].astype(np.int64)
    width = int(position.max()) + 1
    # Sessions ascend in this order, so a running maximum of session * width + (clicked
    # position, or 0) never carries one session's click into the next.
    base = session * width
    through = np.maximum.accumulate(base + np.where(log.click[order] == 1, position, 0)) - base
    above = np.r_[0, through[:-1]]
    above[np.r_[True, session[1:] != session[:-1]]] = 0
    out = np.empty(len(order), dtype=np.int64)
    out[order] = above
    return out


def estimate_ubm(
    log: ClickLog,
    *,
    pseudo: float = 0.0,
    prior: float | np.ndarray = 0.0,
    pool_after: int | None = POOL_AFTER,
    max_iter: int = 5000,
    tol: float = 1e-6,
    accelerate: bool = True,
    progress: bool = False,
) -> UBMFit:
    """Fit the UBM to ``log`` by EM (see the module doc): an attractiveness per pair, the label,
    and the examination of every (position, distance to the last click) cell. With ``pseudo``
    above 0, each attractiveness is the posterior mode under ``pseudo`` impressions at
    ``prior`` (a number, or ``[D]`` one per pair). EM's steps are accelerated by SQUAREM
    (``accelerate``; :mod:`ltr.clicks.squarem`); it stops when one plain EM step moves no
    parameter by ``tol`` or more.

    Raises:
        DataFormatError: the log holds no click, or no document was shown in two cells (nothing
            separates where a document was shown from what it is worth).
        ConfigError: ``max_iter`` below 1, or ``pool_after`` below 1.
    """
    from ltr.clicks.propensity import _pbm_posterior, _Steps, position_buckets

    if max_iter < 1:
        raise ConfigError(f"max_iter must be at least 1, got {max_iter}")
    if not log.click.any():
        raise DataFormatError("the log holds no click; relevance cannot be estimated")
    size = len(log.doc_ids)
    buckets = position_buckets(int(log.position.max()), pool_after)
    shape = (int(buckets.max()) + 1, int(buckets.max()) + 2)
    width = shape[0] * shape[1]
    row, column = _cell(buckets, log.position, last_click_above(log))
    key, inverse = np.unique(
        log.doc.astype(np.int64) * width + row * shape[1] + column, return_inverse=True
    )
    doc, cell = key // width, key % width
    n = np.bincount(inverse, minlength=len(key)).astype(np.float64)
    c = np.bincount(inverse, weights=log.click, minlength=len(key))
    if not np.any(np.bincount(doc, minlength=size) > 1):
        raise UnidentifiableError(
            "every document in the log was shown in one (position, distance to the last click) "
            "cell only, so where a document was shown and what it is worth cannot be told "
            "apart",
            "estimate from a log whose rankings vary between sessions",
        )
    n_doc = np.bincount(doc, weights=n, minlength=size)
    n_cell = np.bincount(cell, weights=n, minlength=width)
    seen = n_cell > 0
    expected: dict[str, np.ndarray] = {}

    def em_step(theta: np.ndarray) -> tuple[np.ndarray, float]:
        """One EM step from ``theta`` = (g by cell, a by pair), and the objective there."""
        g, a = theta[:width], theta[width:]
        p = np.clip(g[cell] * a[doc], _TINY, 1 - 1e-12)
        objective = float((c * np.log(p) + (n - c) * np.log1p(-p)).sum())
        if pseudo > 0:  # the log prior that the pseudo-counts stand for
            objective += pseudo * float(
                (prior * np.log(np.maximum(a, _TINY))).sum()
                + ((1 - prior) * np.log(np.maximum(1 - a, _TINY))).sum()
            )
        examined, relevant = _pbm_posterior(g[cell], a[doc], n, c)
        new_g = np.divide(
            np.bincount(cell, weights=examined, minlength=width),
            n_cell,
            out=np.zeros(width),
            where=seen,
        )
        new_g[0] = 1.0  # the top is looked at: the scale of g and a
        expected["attracted"] = np.bincount(doc, weights=relevant, minlength=size)
        return np.r_[new_g, _shrunk(expected["attracted"], n_doc, pseudo, prior)], objective

    theta = np.r_[np.where(seen, 0.5, 0.0), np.full(size, 0.5)]
    theta[0] = 1.0
    with _Steps(max_iter, "EM (UBM)", progress) as steps:
        theta, it, converged = squarem(
            em_step, theta, max_iter=max_iter, tol=tol, steps=steps, accelerate=accelerate
        )
    g, a = theta[:width], theta[width:]
    counts = n_cell.reshape(shape)
    return UBMFit(
        attractiveness=a,
        examination=_filled(g.reshape(shape), counts),
        buckets=buckets,
        cell_impressions=counts.astype(np.int64),
        iterations=it,
        converged=converged,
        impressions=n_doc,
        attracted=expected["attracted"],
    )


def _cell(
    buckets: np.ndarray, positions: np.ndarray, last_click: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) of ``g`` for each impression (see :class:`UBMFit`)."""
    positions = np.asarray(positions, dtype=np.int64)
    last_click = np.asarray(last_click, dtype=np.int64)
    deepest = len(buckets)
    row = buckets[np.clip(positions, 1, deepest) - 1]
    distance = np.clip(positions - last_click, 1, deepest)
    column = np.where(last_click > 0, buckets[distance - 1] + 1, 0)
    return row, column


def _filled(g: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``g`` with every cell that has no impression at its column's (or all cells') weighted
    mean: attention at a distance from the last click is nearer that at the same distance
    elsewhere than that below no click at the same position."""
    out = g.copy()
    seen = counts > 0
    overall = float((g * counts).sum() / counts.sum())
    for c in range(g.shape[1]):
        weight = counts[:, c].sum()
        out[~seen[:, c], c] = (g[:, c] * counts[:, c]).sum() / weight if weight > 0 else overall
    return out
