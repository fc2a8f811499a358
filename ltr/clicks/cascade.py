"""Relevance labels from clicks under the dependent click model (DCM), estimated by EM.

In a cascade, users read a ranking from the top and may stop after a click (Craswell et al.
2008); the DCM lets them read on after a click with probability ``lambda`` (Guo et al. 2009,
:class:`ltr.clicks.model.CascadeModel`). What was looked at then depends on the session's own
clicks, not on a fixed curve per position as in the PBM, and IPS with position propensities
cannot undo it: a document shown under an attractive one is looked at less than its position
says.

Each session tells most of what was examined:

- every document down to the session's last click was examined (the user reached the click);
- in a session without a click, every document was examined (nothing ended the reading);
- the documents after the last click were examined only if the user read on, which happened
  with the posterior probability

      q_s = lambda * P_s / ((1 - lambda) + lambda * P_s),  P_s = prod over them of (1 - gamma_d)

  (they read on and found nothing they wanted, or they stopped).

EM alternates ``q_s`` with ``gamma_d = clicks_d / (certain examinations of d + sum of q_s over
d's impressions after a last click)`` and ``lambda = (clicks followed by another click + sum of
q_s) / clicks``. The labels are ``gamma_d``, the probability that a user who looks at ``d``
clicks it; with ``lambda = 0`` held (``continue_after_click=0``) they are the cascade model's
closed form, clicks over impressions at or above the session's click.

A user who gives up without a click is taken to have read the whole list (the DCM has no
abandonment): in logs where users leave unsatisfied, the documents at the bottom of no-click
sessions get labels that are too low.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltr.clicks.log import ClickLog
from ltr.errors import ConfigError, DataFormatError


@dataclass(frozen=True)
class CascadeFit:
    labels: np.ndarray
    """``[D]`` ``gamma_d`` of every (query, document) pair of the log, by pair code."""
    continue_after_click: float
    """``lambda``: estimated, or the value held."""
    iterations: int
    converged: bool
    examinations: np.ndarray
    """``[D]`` each pair's expected examinations at the last E-step (the labels' denominator,
    before any pseudo-examinations)."""


def estimate_cascade(
    log: ClickLog,
    *,
    continue_after_click: float | None = None,
    pseudo: float = 0.0,
    prior: float | np.ndarray = 0.0,
    max_iter: int = 5000,
    tol: float = 1e-6,
    progress: bool = False,
) -> CascadeFit:
    """Fit the DCM to ``log`` by EM (see the module doc): a relevance label per pair and the
    probability of reading on after a click, or with ``continue_after_click`` that probability
    held. With ``pseudo`` above 0, each label is the posterior mean under a prior of ``pseudo``
    examinations at relevance ``prior`` (a number, or ``[D]`` one per pair, e.g. from features:
    :mod:`ltr.clicks.session_prior`): ``(clicks + pseudo * prior) / (examinations + pseudo)``
    (a document looked at a few times is not given 0 or 1).

    Raises:
        DataFormatError: the log holds no click.
        ConfigError: ``continue_after_click`` outside ``[0, 1]``.
    """
    from ltr.clicks.propensity import _Steps

    if continue_after_click is not None and not 0 <= continue_after_click <= 1:
        raise ConfigError(f"continue_after_click must be in [0, 1], got {continue_after_click}")
    if not log.click.any():
        raise DataFormatError("the log holds no click; relevance cannot be estimated")
    size = len(log.doc_ids)
    clicked = log.click.astype(bool)
    # The position of each session's last click (0 = none), and where each impression falls.
    last = np.zeros(log.num_sessions, dtype=np.int64)
    np.maximum.at(last, log.session[clicked], log.position[clicked])
    last_of_row = last[log.session]
    after = (last_of_row > 0) & (log.position > last_of_row)  # examined only if read on
    certain = np.bincount(log.doc[~after], minlength=size).astype(np.float64)
    clicks = np.bincount(log.doc[clicked], minlength=size).astype(np.float64)
    total_clicks = float(clicked.sum())
    read_on_for_sure = total_clicks - float((last > 0).sum())  # clicks followed by a click
    with_click = last > 0
    after_session, after_doc = log.session[after], log.doc[after]

    gamma = np.full(size, 0.5)
    examined = certain
    lam = 0.5 if continue_after_click is None else float(continue_after_click)
    converged, it = False, 0
    with _Steps(max_iter, "EM (cascade)", progress) as steps:
        for it in steps:  # noqa: B007
            # P_s: the chance that a reader of the rest of session s clicked none of it.
            log_none = np.bincount(
                after_session, weights=np.log1p(-np.minimum(gamma[after_doc], 1 - 1e-12)),
                minlength=log.num_sessions,
            )  # fmt: skip
            none = np.exp(log_none)
            q = lam * none / np.maximum((1.0 - lam) + lam * none, 1e-300)
            examined = certain + np.bincount(after_doc, weights=q[after_session], minlength=size)
            new_gamma = _shrunk(clicks, examined, pseudo, prior)
            new_lam = lam
            if continue_after_click is None:
                new_lam = (read_on_for_sure + q[with_click].sum()) / total_clicks
            step = max(np.abs(new_gamma - gamma).max(), abs(new_lam - lam))
            gamma, lam = new_gamma, float(new_lam)
            steps.report(step)
            if step < tol:
                converged = True
                break
    return CascadeFit(
        labels=gamma,
        continue_after_click=lam,
        iterations=it,
        converged=converged,
        examinations=examined,
    )


def _shrunk(
    hits: np.ndarray, trials: np.ndarray, pseudo: float, prior: float | np.ndarray
) -> np.ndarray:
    """``(hits + pseudo * prior) / (trials + pseudo)``, 0 where there is neither."""
    total = trials + pseudo
    return np.divide(hits + pseudo * prior, total, out=np.zeros(len(hits)), where=total > 0)
