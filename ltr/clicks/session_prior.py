"""Feature priors for the session click models (DCM, DBN and UBM), and their strength chosen
from held-out sessions' clicks.

With a few sessions per query, the DCM's, the DBN's and the UBM's per-document estimates rest on
a few examinations (and the DBN's satisfaction on a few clicks): a document looked at twice and
clicked once gets 0.5. As for the PBM's labels (:mod:`ltr.clicks.labels`), each estimate is
shrunk towards a prediction from the document's features, as if that prediction were ``S`` more
observations: ``(clicks + S p_d) / (examinations + S)`` (for the DBN's satisfaction,
``(satisfying clicks + S q_d) / (clicks + S)``; for the UBM, whose M-step divides by
impressions, ``(expected attractive impressions + S p_d) / (impressions + S)``). The
predictions are logistic regressions on the features, fitted to the unshrunk model's expected
counts (those numerators and denominators); the shrunk model is then fitted by EM with those
pseudo-counts (the posterior mode).

``--prior-strength auto`` chooses ``S`` as for the PBM, by cross-validation over sessions with no
judgment: for each fold, the model and the regressions are fitted to the other folds, every
``S`` shrinks the fitted counts, and the shrunk model predicts each held-out click from the
session's clicks above it (:func:`ltr.clicks.compare.cascade_probabilities`,
:func:`ltr.clicks.dbn.dbn_probabilities`, :meth:`ltr.clicks.ubm.UBMFit.probabilities`),
scored by squared error. The counts are those of the unshrunk fit, held while ``S`` varies (one
EM fit per fold, not one per strength).
"""

from __future__ import annotations

import numpy as np

from ltr.clicks.cascade import CascadeFit, _shrunk, estimate_cascade
from ltr.clicks.dbn import DBNFit, estimate_dbn
from ltr.clicks.labels import (
    PRIOR_STRENGTHS,
    PriorChoice,
    prior_choice,
    session_folds,
    strength_grid,
)
from ltr.clicks.log import ClickLog
from ltr.clicks.ubm import UBMFit, estimate_ubm
from ltr.errors import ConfigError

SESSION_MODELS = ("cascade", "dbn", "ubm")
Fit = CascadeFit | DBNFit | UBMFit


def fit_session_model(
    log: ClickLog, model: str, *, perseverance: float | None = None, **shrink
) -> Fit:
    """``model`` (``cascade``, ``dbn`` or ``ubm``) fitted to ``log`` by its EM; ``perseverance``
    holds the DBN's ``gamma`` (other models have none), and ``shrink`` goes to the estimator
    (``pseudo``, ``prior``, ``progress``)."""
    if model not in SESSION_MODELS:
        raise ConfigError(f"model must be one of {SESSION_MODELS}, got {model!r}")
    if model == "cascade":
        return estimate_cascade(log, **shrink)
    if model == "ubm":
        return estimate_ubm(log, **shrink)
    return estimate_dbn(log, perseverance=perseverance, **shrink)


def _hits_and_trials(fit: Fit, clicks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the fit's attractiveness is the ratio of, before pseudo-counts: clicks over expected
    examinations (DCM, DBN), or expected attractive impressions over impressions (UBM)."""
    if isinstance(fit, UBMFit):
        return fit.attracted, fit.impressions
    return clicks, fit.examinations


def _clicks(log: ClickLog) -> np.ndarray:
    return np.bincount(log.doc, weights=log.click, minlength=len(log.doc_ids))


def feature_priors(
    log: ClickLog, fit: Fit, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """``[D]`` predictions from ``features`` (``[D, F]`` by pair code) of the attractiveness
    (the DCM's and the UBM's label) and, for a DBN fit, of the satisfaction (else None):
    logistic regressions fitted to ``fit``'s expected counts on ``log``."""
    from ltr.clicks.log import aggregate
    from ltr.clicks.propensity import _pair_features, _relevance_regression

    features = _pair_features(features, aggregate(log))
    clicks = _clicks(log)
    hits, trials = _hits_and_trials(fit, clicks)
    attractive = _relevance_regression(features, trials)(hits)
    if not isinstance(fit, DBNFit):
        return attractive, None
    return attractive, _relevance_regression(features, clicks)(fit.satisfied_clicks)


def fit_with_prior(
    log: ClickLog,
    model: str,
    features: np.ndarray,
    strength: float,
    *,
    perseverance: float | None = None,
    progress: bool = False,
) -> Fit:
    """``model`` (``cascade``, ``dbn`` or ``ubm``) fitted to ``log`` with its estimates shrunk
    towards feature priors by ``strength`` pseudo-observations (see the module doc)."""
    if model not in SESSION_MODELS:
        raise ConfigError(f"model must be one of {SESSION_MODELS}, got {model!r}")
    if not (np.isfinite(strength) and strength > 0):
        raise ConfigError(f"the prior strength must be a number > 0, got {strength}")
    plain = fit_session_model(log, model, perseverance=perseverance, progress=progress)
    attractive, satisfying = feature_priors(log, plain, features)
    if model in ("cascade", "ubm"):
        return fit_session_model(log, model, pseudo=strength, prior=attractive, progress=progress)
    return estimate_dbn(
        log,
        perseverance=perseverance,
        pseudo=strength,
        prior_attractiveness=attractive,
        prior_satisfaction=satisfying,
        progress=progress,
    )


def choose_session_prior_strength(
    log: ClickLog,
    model: str,
    features: np.ndarray,
    *,
    strengths: tuple[float, ...] = PRIOR_STRENGTHS,
    folds: int = 5,
    seed: int = 0,
    perseverance: float | None = None,
    progress: bool = False,
) -> PriorChoice:
    """The prior strength whose shrunk ``model`` best predicts held-out sessions' clicks, by
    ``folds``-fold cross-validation over sessions (see the module doc). Held-out impressions
    of documents the other folds never showed are not scored; in the sessions, such documents
    take their feature prior's value at every strength.

    Raises:
        ConfigError: an unknown model, fewer than 2 folds or more than the sessions, or a
            strength below 0.
        DataFormatError: every document was shown in one session only (nothing to score).
    """
    from tqdm.auto import tqdm

    from ltr.clicks.compare import cascade_probabilities
    from ltr.clicks.dbn import dbn_probabilities

    if model not in SESSION_MODELS:
        raise ConfigError(f"model must be one of {SESSION_MODELS}, got {model!r}")
    grid = strength_grid(strengths)
    fold_of_row = session_folds(log, folds, seed)
    squared = np.zeros(len(grid))
    scored = 0
    for fold in tqdm(range(folds), desc="choosing the prior strength", disable=not progress):
        held = fold_of_row == fold
        train, test = log.subset(~held), log.subset(held)
        if not train.click.any():
            continue
        fit = fit_session_model(train, model, perseverance=perseverance)
        attractive, satisfying = feature_priors(train, fit, features)
        clicks = _clicks(train)
        hits, trials = _hits_and_trials(fit, clicks)
        seen = trials > 0
        scoring = seen[test.doc]
        for i, s in enumerate(grid):
            a = np.where(seen, _shrunk(hits, trials, s, attractive), attractive)
            if isinstance(fit, DBNFit):
                assert satisfying is not None
                clicked = clicks > 0
                sat = _shrunk(fit.satisfied_clicks, clicks, s, satisfying)
                sat = np.where(clicked | (s > 0), sat, satisfying)
                p = dbn_probabilities(test, a, sat, fit.perseverance)
            elif isinstance(fit, UBMFit):
                p = fit.probabilities(test, a)
            else:
                p = cascade_probabilities(test, a, fit.continue_after_click)
            squared[i] += ((test.click[scoring] - p[scoring]) ** 2).sum()
        scored += int(scoring.sum())
    return prior_choice(grid, squared, scored, folds)
