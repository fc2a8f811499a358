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
    entry per impression). The fields after ``last`` depend only on the clicks, not on the
    parameters, and are kept here so that each EM step does not find them again."""

    rows: np.ndarray  # [N] the impression's row in the log
    doc: np.ndarray  # [N] pair code
    click: np.ndarray  # [N] bool
    session: np.ndarray  # [N] the impression's session, 0 = the longest
    column: np.ndarray  # [N] 0-based place in its session's shown order
    counts: np.ndarray  # [m] sessions with a document in column j
    offsets: np.ndarray  # [m + 1]
    last: np.ndarray  # [S] column of the session's last click, -1 = none
    columns: tuple[slice, ...]  # [m] column j's impressions, offsets[j]:offsets[j + 1]
    known: np.ndarray  # [N] bool: at or above the session's last click (examined for sure)
    clicked: np.ndarray  # [C] the sessions with a click
    last_at: np.ndarray  # [C] their last click's impression
    tail_sessions: np.ndarray  # [T] the sessions with a document just below their last click
    tail_at: np.ndarray  # [T] that document's impression (column last + 1, or 0 without a click)
    reads_on_after_last: np.ndarray  # [C] bool: the clicked session goes on below its last click
    open_at: np.ndarray  # impressions not at a last click with a document below them
    click_doc: np.ndarray  # pair codes of every click
    unsatisfied_doc: np.ndarray  # pair codes of the clicks above a last click
    skipped_doc: np.ndarray  # pair codes of the documents skipped above a last click
    above: int  # impressions above a last click (each read on for sure)

    def at(self, j: int) -> slice:
        return self.columns[j]


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
    session, length = rank[session], length[np.argsort(-length, kind="stable")]
    flat = np.lexsort((session, column))  # column-major
    order, session, column = order[flat], session[flat], column[flat]
    counts = np.bincount(column)
    offsets = np.r_[0, np.cumsum(counts)]
    click = log.click[order] == 1
    doc = log.doc[order]
    num = len(length)
    last = np.full(num, -1, dtype=np.int64)
    np.maximum.at(last, session[click], column[click])
    # The impression of session i at column j is offsets[j] + i (column j holds sessions 0..).
    clicked = np.flatnonzero(last >= 0)
    tail_sessions = np.flatnonzero(last + 1 < length)
    below = column - last[session]  # < 0 above the last click, 0 at it
    has_next = session < np.r_[counts[1:], 0][column]
    return Sessions(
        rows=order,
        doc=doc,
        click=click,
        session=session,
        column=column,
        counts=counts,
        offsets=offsets,
        last=last,
        columns=tuple(slice(int(offsets[j]), int(offsets[j + 1])) for j in range(len(counts))),
        known=below <= 0,
        clicked=clicked,
        last_at=offsets[last[clicked]] + clicked,
        tail_sessions=tail_sessions,
        tail_at=offsets[last[tail_sessions] + 1] + tail_sessions,
        reads_on_after_last=last[clicked] + 1 < length[clicked],
        open_at=np.flatnonzero(has_next & (below != 0)),
        click_doc=doc[click],
        unsatisfied_doc=doc[click & (below < 0)],
        skipped_doc=doc[~click & (below < 0)],
        above=int((below < 0).sum()),
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


def _log(x: np.ndarray | float) -> np.ndarray:
    return np.log(np.maximum(x, _TINY))


def expectations(sessions: Sessions, a: np.ndarray, s: np.ndarray, gamma: float) -> Expectations:
    """The DBN's E-step (see the module doc) for attractiveness ``a``, satisfaction ``s`` (by
    pair code) and perseverance ``gamma``."""
    skip = 1.0 - a[sessions.doc]  # [N] 1 - a_j
    counts, columns, num = sessions.counts, sessions.columns, len(sessions.last)
    # Backward: R (examining j) and G (unsatisfied just above j) of clicking nothing from j
    # on; G is 1 past the end of a session.
    r = np.empty(len(skip))
    g = np.ones(num)
    for j in range(len(counts) - 1, -1, -1):
        c, rj = int(counts[j]), r[columns[j]]
        np.multiply(skip[columns[j]], g[:c], out=rj)
        np.multiply(rj, gamma, out=g[:c])
        g[:c] += 1.0 - gamma
    g_tail = np.ones(num)  # G at the column just below each session's last click
    g_tail[sessions.tail_sessions] = (1.0 - gamma) + gamma * r[sessions.tail_at]
    clicked, last_at = sessions.clicked, sessions.last_at
    s_last = s[sessions.doc[last_at]]  # [C]
    z = r[:num].copy()  # R(1) without a click (column 0 holds every session, in order)
    z[clicked] = s_last + (1.0 - s_last) * g_tail[clicked]
    z = np.maximum(z, _TINY)
    # Forward: alpha / Z, the chance of examining j with nothing clicked since the last click,
    # over Z; it is kept as it stands before column j and takes column j's skip after it.
    alpha = 1.0 / z
    alpha[clicked] *= (1.0 - s_last) * gamma
    step = np.where(sessions.known, 1.0, skip * gamma)
    examined = np.empty(len(skip))
    for j in range(len(counts)):
        c = int(counts[j])
        examined[columns[j]] = alpha[:c]
        alpha[:c] *= step[columns[j]]
    examined *= r
    examined[sessions.known] = 1.0
    satisfied_last = s_last / z[clicked]  # [C]
    satisfied = np.zeros(len(skip))
    satisfied[last_at] = satisfied_last
    # Chances to read on: examined and unsatisfied at j, with a document at j + 1 (clicks
    # above the last one were unsatisfied for sure, and examined there is 1).
    at_last = 1.0 - satisfied_last[sessions.reads_on_after_last]
    chances = float(examined[sessions.open_at].sum() + at_last.sum())
    read_on = float(examined[int(sessions.offsets[1]) :].sum()) if len(counts) > 1 else 0.0
    # P(clicks) = P(everything down to the last click) * Z: there every skip and click is known
    # (each click attracted, each one above the last unsatisfied, each skip not attracted, and
    # the user read on below each of them).
    log_likelihood = float(
        _log(a[sessions.click_doc]).sum()
        + _log(1.0 - s[sessions.unsatisfied_doc]).sum()
        + _log(1.0 - a[sessions.skipped_doc]).sum()
        + sessions.above * _log(gamma)
        + np.log(z).sum()
    )
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
