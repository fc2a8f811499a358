"""Relevance labels from clicks under the dynamic Bayesian network click model (DBN), by EM.

In the DBN (Chapelle and Zhang 2009; :class:`ltr.clicks.model.DynamicBayesianModel`) a user
reads a ranking from the top; an examined document ``d`` draws a click with probability
``a_d`` (attractiveness); a click satisfies with probability ``s_d``, and a satisfied user
stops; otherwise they read on with probability ``gamma`` (perseverance) and give up otherwise.
Unlike the DCM (:mod:`ltr.clicks.cascade`), a session without a click need not have been read
to the end, and a document's worth is split in two: how often it is clicked when seen, and how
often a click on it ends the search. The label is their product ``a_d s_d``, the probability
that a user who looks at ``d`` clicks it and is satisfied.

Each session's clicks fix what happened down to its last click: every document above it was
examined, and every click above it left the user unsatisfied. After the last click at ``l``
(or from the top, in a session without a click) the user was satisfied there, gave up
somewhere, or read to the end without clicking. With the backward probabilities of clicking
nothing more,

    R(j) = (1 - a_j) G(j + 1),   G(j) = (1 - gamma) + gamma R(j),   G(end) = 1,

``R(j)`` for a user examining ``j``, ``G(j)`` for one unsatisfied just above ``j``, the E-step
is exact: ``P(satisfied at l) = s_l / Z`` with ``Z = s_l + (1 - s_l) G(l + 1)``, and the
document at ``j > l`` was examined with probability ``alpha(j) R(j) / Z``, where ``alpha(j) =
(1 - s_l) gamma^(j - l) prod over l < i < j of (1 - a_i)`` (``Z = R(1)`` and ``alpha(j) =
gamma^(j - 1) prod over i < j of (1 - a_i)`` without a click). The M-step: ``a_d`` = clicks /
expected examinations, ``s_d`` = expected satisfying clicks / clicks, ``gamma`` = expected
reads on / expected chances to read on (an examined, unsatisfied document with one below it).

With ``gamma = 1`` held and ``s_d = 1 - lambda`` for all documents the DBN is the DCM; users
who give up are what the DCM cannot express, and the DBN's labels there are the ones to use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltr.clicks.cascade import _shrunk
from ltr.clicks.log import ClickLog
from ltr.clicks.squarem import squarem
from ltr.errors import ConfigError, DataFormatError

_TINY = 1e-300


@dataclass(frozen=True)
class DBNFit:
    attractiveness: np.ndarray
    """``[D]`` ``a_d`` of every (query, document) pair of the log, by pair code."""
    satisfaction: np.ndarray
    """``[D]`` ``s_d`` (0 for a pair never clicked, without a prior)."""
    perseverance: float
    """``gamma``: estimated, or the value held."""
    iterations: int
    converged: bool
    examinations: np.ndarray
    """``[D]`` each pair's expected examinations at the last E-step."""
    satisfied_clicks: np.ndarray
    """``[D]`` each pair's expected satisfying clicks at the last E-step."""

    @property
    def labels(self) -> np.ndarray:
        """``[D]`` ``a_d s_d``: the probability that a look at ``d`` ends in a satisfying click."""
        return self.attractiveness * self.satisfaction


@dataclass(frozen=True)
class Sessions:
    """A click log laid out column by column: column ``j`` holds the ``j``-th shown document of
    every session that long. Sessions are sorted longest first, so column ``j`` is the first
    ``counts[j]`` sessions, stored at ``offsets[j]:offsets[j + 1]`` of the flat arrays (one
    entry per impression)."""

    rows: np.ndarray  # [N] the impression's row in the log
    doc: np.ndarray  # [N] pair code
    click: np.ndarray  # [N] bool
    session: np.ndarray  # [N] the impression's session, 0 = the longest
    column: np.ndarray  # [N] 0-based place in its session's shown order
    counts: np.ndarray  # [m] sessions with a document in column j
    offsets: np.ndarray  # [m + 1]
    last: np.ndarray  # [S] column of the session's last click, -1 = none

    def at(self, j: int) -> slice:
        return slice(int(self.offsets[j]), int(self.offsets[j + 1]))


def sessions_of(log: ClickLog) -> Sessions:
    """Lay ``log`` out as :class:`Sessions` (positions in shown order, gaps closed)."""
    if not len(log):
        raise DataFormatError("the click log is empty")
    order = np.lexsort((log.position, log.session))
    _, session = np.unique(log.session[order], return_inverse=True)
    starts = np.r_[0, np.flatnonzero(np.diff(session)) + 1]
    length = np.diff(np.r_[starts, len(order)])
    column = np.arange(len(order)) - np.repeat(starts, length)
    rank = np.empty(len(length), dtype=np.int64)
    rank[np.argsort(-length, kind="stable")] = np.arange(len(length))  # longest first
    session = rank[session]
    flat = np.lexsort((session, column))  # column-major
    order, session, column = order[flat], session[flat], column[flat]
    counts = np.bincount(column)
    click = log.click[order] == 1
    last = np.full(len(length), -1, dtype=np.int64)
    np.maximum.at(last, session[click], column[click])
    return Sessions(
        rows=order,
        doc=log.doc[order],
        click=click,
        session=session,
        column=column,
        counts=counts,
        offsets=np.r_[0, np.cumsum(counts)],
        last=last,
    )


@dataclass(frozen=True)
class Expectations:
    """The E-step's posterior expectations given the clicks of every session, per impression in
    the order of :class:`Sessions`."""

    examined: np.ndarray  # [N] P(examined): 1 down to the last click
    satisfied: np.ndarray  # [N] P(a click satisfied): non-zero at the last click only
    read_on: float  # expected number of times an unsatisfied reader went on to the next
    chances: float  # expected number of times one could have (examined, unsatisfied, not last)
    log_likelihood: float  # sum over sessions of log P(the session's clicks)


def expectations(sessions: Sessions, a: np.ndarray, s: np.ndarray, gamma: float) -> Expectations:
    """The DBN's E-step (see the module doc) for attractiveness ``a``, satisfaction ``s`` (by
    pair code) and perseverance ``gamma``."""
    att, sat = a[sessions.doc], s[sessions.doc]
    last, counts = sessions.last, sessions.counts
    num = len(last)
    tail = last + 1  # the first column after the last click (0 without a click)
    has_click = last >= 0
    # Backward: R (examining j) and G (unsatisfied just above j) of clicking nothing from j
    # on; G is 1 past the end of a session.
    r = np.empty(len(att))
    g_next = np.ones(num)
    g_tail = np.ones(num)  # G at each session's tail column
    for j in range(len(counts) - 1, -1, -1):
        c, at = int(counts[j]), sessions.at(j)
        r[at] = (1.0 - att[at]) * g_next[:c]
        g_next[:c] = (1.0 - gamma) + gamma * r[at]
        here = tail[:c] == j
        g_tail[:c][here] = g_next[:c][here]
    first = sessions.at(0)  # every session has column 0
    last_flat = sessions.offsets[np.maximum(last, 0)] + np.arange(num)
    s_last = np.where(has_click, sat[last_flat], 0.0)
    z = np.maximum(np.where(has_click, s_last + (1.0 - s_last) * g_tail, r[first]), _TINY)
    # Forward: alpha, the chance of examining j with nothing clicked since the last click.
    examined = np.empty(len(att))
    alpha = np.where(has_click, (1.0 - s_last) * gamma, 1.0)
    for j in range(len(counts)):
        c, at = int(counts[j]), sessions.at(j)
        examined[at] = np.where(j <= last[:c], 1.0, alpha[:c] * r[at] / z[:c])
        alpha[:c] = np.where(j >= tail[:c], alpha[:c] * (1.0 - att[at]) * gamma, alpha[:c])
    satisfied = np.zeros(len(att))
    satisfied[last_flat[has_click]] = s_last[has_click] / z[has_click]
    # Chances to read on: examined and unsatisfied at j, with a document at j + 1 (clicks
    # above the last one were unsatisfied for sure, and examined there is 1).
    has_next = sessions.session < np.r_[counts[1:], 0][sessions.column]
    chance = np.where(sessions.column == last[sessions.session], 1.0 - satisfied, examined)
    chances = float(chance[has_next].sum())
    read_on = float(examined[int(sessions.offsets[1]) :].sum()) if len(counts) > 1 else 0.0
    # P(clicks) = P(everything down to the last click) * Z: there every skip and click is known.
    below = sessions.column - last[sessions.session]  # < 0 above the last click
    known = np.where(sessions.click, att, 1.0 - att)
    known = known * np.where(below < 0, gamma * np.where(sessions.click, 1.0 - sat, 1.0), 1.0)
    known = np.where(below <= 0, known, 1.0)
    log_likelihood = float(np.log(np.maximum(known, _TINY)).sum() + np.log(z).sum())
    return Expectations(examined, satisfied, read_on, chances, log_likelihood)


def estimate_dbn(
    log: ClickLog,
    *,
    perseverance: float | None = None,
    pseudo: float = 0.0,
    prior_attractiveness: float | np.ndarray = 0.0,
    prior_satisfaction: float | np.ndarray = 0.0,
    max_iter: int = 5000,
    tol: float = 1e-6,
    accelerate: bool = True,
    progress: bool = False,
) -> DBNFit:
    """Fit the DBN to ``log`` by EM (see the module doc): attractiveness and satisfaction per
    pair and the perseverance ``gamma``, or with ``perseverance`` that probability held. With
    ``pseudo`` above 0, each attractiveness is shrunk by ``pseudo`` examinations at
    ``prior_attractiveness`` and each satisfaction by ``pseudo`` clicks at
    ``prior_satisfaction`` (numbers, or ``[D]`` one per pair: :mod:`ltr.clicks.session_prior`;
    a document seen or clicked a few times is not given 0 or 1).
    EM's steps are accelerated by SQUAREM (``accelerate``), which keeps the objective from
    falling; it stops when one plain EM step moves no parameter by ``tol`` or more
    (``iterations`` counts EM steps).

    Raises:
        DataFormatError: the log holds no click.
        ConfigError: ``perseverance`` outside ``(0, 1]``.
    """
    from ltr.clicks.propensity import _Steps

    if perseverance is not None and not 0 < perseverance <= 1:
        raise ConfigError(f"perseverance must be in (0, 1], got {perseverance}")
    if max_iter < 1:
        raise ConfigError(f"max_iter must be at least 1, got {max_iter}")
    if not log.click.any():
        raise DataFormatError("the log holds no click; relevance cannot be estimated")
    size = len(log.doc_ids)
    sessions = sessions_of(log)
    doc = sessions.doc
    clicks = np.bincount(doc, weights=sessions.click, minlength=size)
    held = perseverance is not None
    counts: dict[str, np.ndarray] = {}

    def em_step(theta: np.ndarray) -> tuple[np.ndarray, float]:
        """One EM step from ``theta`` = (a, s, gamma), and the objective at ``theta``."""
        a, s, gamma = theta[:size], theta[size:-1], float(theta[-1])
        e = expectations(sessions, a, s, gamma)
        examined = np.bincount(doc, weights=e.examined, minlength=size)
        satisfied = np.bincount(doc, weights=e.satisfied, minlength=size)
        counts.update(examined=examined, satisfied=satisfied)
        new_gamma = gamma if held or e.chances == 0 else min(e.read_on / e.chances, 1.0)
        new = np.r_[
            _shrunk(clicks, examined, pseudo, prior_attractiveness),
            _shrunk(satisfied, clicks, pseudo, prior_satisfaction),
            new_gamma,
        ]
        objective = e.log_likelihood  # + the log prior that the pseudo-counts stand for
        if pseudo > 0:
            for x, prior in ((a, prior_attractiveness), (s, prior_satisfaction)):
                objective += pseudo * float(
                    (prior * np.log(np.maximum(x, _TINY))).sum()
                    + ((1 - prior) * np.log(np.maximum(1 - x, _TINY))).sum()
                )
        return new, objective

    def keep_gamma_above_0(theta: np.ndarray) -> np.ndarray:
        theta[-1] = max(theta[-1], 1e-6)
        return theta

    theta = np.r_[np.full(2 * size, 0.5), 0.5 if perseverance is None else perseverance]
    with _Steps(max_iter, "EM (DBN)", progress) as steps:
        theta, it, converged = squarem(
            em_step,
            theta,
            max_iter=max_iter,
            tol=tol,
            steps=steps,
            accelerate=accelerate,
            project=keep_gamma_above_0,
        )
    a, s, gamma = theta[:size], theta[size:-1], float(theta[-1])
    return DBNFit(a, s, gamma, it, converged, counts["examined"], counts["satisfied"])


def dbn_probabilities(log: ClickLog, a: np.ndarray, s: np.ndarray, gamma: float) -> np.ndarray:
    """``[N]`` the DBN's probability of a click at each impression of ``log`` (its row order)
    given the session's clicks above it (a forward pass over each session)."""
    sessions = sessions_of(log)
    att = np.clip(a[sessions.doc], 0.0, 1.0)
    sat = np.clip(s[sessions.doc], 0.0, 1.0)
    # Since the last click (or the top): reading ``here`` with nothing clicked in between, or
    # ``done`` (satisfied, or given up) with nothing clicked; here / (here + done) = P(examined).
    num = len(sessions.last)
    here, done = np.ones(num), np.zeros(num)
    out = np.empty(len(log))
    for j in range(len(sessions.counts)):
        c, at = int(sessions.counts[j]), sessions.at(j)
        h, d, x, y = here[:c], done[:c], att[at], sat[at]
        out[sessions.rows[at]] = h / np.maximum(h + d, _TINY) * x
        clicked = sessions.click[at]
        here[:c], done[:c] = (
            np.where(clicked, (1.0 - y) * gamma, h * (1.0 - x) * gamma),
            np.where(clicked, y + (1.0 - y) * (1.0 - gamma), d + h * (1.0 - x) * (1.0 - gamma)),
        )
    return out
