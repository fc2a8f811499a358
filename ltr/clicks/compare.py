"""Which click model explains a log? Held-out sessions' clicks under the PBM, trust bias, the
dependent click model, the dynamic Bayesian network and the user browsing model.

Each label maker of :mod:`ltr.clicks` assumes a model of how users click: the position-based
model (IPS), the PBM with trust bias (the affine correction), the dependent click model (a
cascade; ``--cascade``), the dynamic Bayesian network (a cascade whose users give up, and
stop once satisfied; ``--dbn``) or the user browsing model (attention that depends on the
distance to the last click; ``--ubm``). Which one a log follows is a question about the log,
answered the way click-model research does (Chuklin et al. 2015, *Click Models for Web
Search*, ch. 7): fit each model to most of the sessions, and score how well it predicts the
clicks of the sessions held out, by

- **log-likelihood** per held-out impression, ``mean of log P(observed click or skip)``;
- **perplexity** at position ``k``, ``2 ** -(mean over held-out impressions at k of
  log2 P(observed))``: 1 for a model that is always sure and right, 2 for a coin toss;
  reported averaged over positions 1 to 10.

The PBM and trust bias predict each impression alone (``theta_k gamma_d``, ``alpha_k gamma_d +
beta_k``), with each document's relevance ``gamma_d`` fitted to the training sessions given the
fitted propensities. Both pool positions past 10 alike (``pool_after``), so that the PBM is
trust bias with ``beta_k = 0``; when trust bias scores within ``SAME_FIT`` of the PBM, the
simpler PBM is the one recommended. The DCM predicts an impression from the
session's clicks above it: with no click above, the document is looked at; after a click at
``l`` and skips between, it is looked at with probability
``lambda P / ((1 - lambda) + lambda P)``, ``P`` the chance of skipping the documents between.
The DBN predicts the same way with its own forward pass (:func:`ltr.clicks.dbn.dbn_probabilities`);
it contains the DCM (``gamma = 1``, one satisfaction for all), which is recommended when the DBN
scores within ``SAME_FIT`` of it. The UBM predicts ``a_d g(k, d)`` from the distance ``d`` to
the last click above (:meth:`ltr.clicks.ubm.UBMFit.probabilities`); it contains the PBM (the
same ``g`` at every distance) and the cascade model (the DCM at ``lambda = 0``: ``g`` 1 below
no click, 0 below one).

The rule behind those cases: of the models that score within ``SAME_FIT`` of the best, the one
with the fewest parameters besides its per-document relevance is recommended (``SIMPLICITY``:
the PBM and the DCM one per position, trust bias two, the UBM one per position and distance,
the DBN a satisfaction per document), since a difference that small says nothing about which
one made the log, and the simpler one's labels rest on fewer estimates.
Every model's relevance is the posterior mode with one pseudo-impression at the mean relevance
(``PSEUDO``): a document that a few sessions looked at and none clicked is not predicted to
draw no click at all, which one held-out click would punish without limit. A document that no
training session showed gets the mean relevance of those that were.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ltr.clicks.cascade import _shrunk
from ltr.clicks.log import ClickLog, Counts, UnidentifiableError, aggregate
from ltr.clicks.propensity import TRUST_POOL_AFTER, Propensity, _trust_posterior
from ltr.errors import ConfigError, DataFormatError

MODELS = ("pbm", "trust", "cascade", "dbn", "ubm")
SIMPLICITY = {"pbm": 0, "cascade": 0, "trust": 1, "ubm": 2, "dbn": 3}
"""Rank of each model by its parameters besides relevance (fewer first): the PBM and the DCM
one per position, trust bias two, the UBM one per position and distance to the last click, the
DBN one satisfaction per document (and ``gamma``)."""
SAME_FIT = 1e-3  # log-likelihood per impression within which the simpler model is preferred
PERPLEXITY_POSITIONS = 10
_FLOOR = 1e-6  # predicted probabilities are kept in [_FLOOR, 1 - _FLOOR]
PSEUDO = 1.0  # each model's relevance is shrunk by this many impressions at the mean
POOL_AFTER = TRUST_POOL_AFTER  # both position models pool deep positions alike


@dataclass(frozen=True)
class ModelScore:
    model: str
    log_likelihood: float
    """Mean over held-out impressions of the natural log of the observed outcome's probability."""
    perplexity: float
    """Mean over positions 1..10 (those shown) of the perplexity at each position."""
    perplexity_by_position: tuple[float, ...]
    summary: str
    """The fitted parameters in a few words."""


@dataclass(frozen=True)
class Comparison:
    scores: tuple[ModelScore, ...]
    """Best (highest held-out log-likelihood) first."""
    recommended: str
    """Of the models within ``SAME_FIT`` of the best, the simplest (``SIMPLICITY``; the
    better-scoring one of equally simple models): the PBM when trust bias or the UBM fits no
    better than it, the DCM when the DBN or the UBM fits no better."""
    train_sessions: int
    test_sessions: int
    test_impressions: int
    not_fitted: tuple[tuple[str, str], ...] = ()
    """``(model, why)`` for each model asked for that this log cannot fit (a log of fixed
    rankings: the PBM, trust bias and the UBM cannot tell a position from a document's
    worth); they have no score and are never recommended."""


def compare_click_models(
    log: ClickLog,
    *,
    models: tuple[str, ...] = MODELS,
    test_share: float = 0.25,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """Fit each click model to a random ``1 - test_share`` of the sessions and score its
    predictions of the rest (see the module doc).

    A model whose estimator finds the log cannot separate where documents were shown from
    what they are worth (:class:`UnidentifiableError`: every document shown at one position)
    is left out of the scores and listed in ``not_fitted`` with the reason.

    Raises:
        ConfigError: an unknown model, or a ``test_share`` that leaves no session on a side.
        DataFormatError: what a model's estimator refuses otherwise (e.g. no click among the
            training sessions), or no model asked for can be fitted to this log.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"models must be among {', '.join(MODELS)}, got {list(models)}")
    held_out = np.random.default_rng(seed).random(log.num_sessions) < test_share
    if not 0 < test_share < 1 or held_out.all() or not held_out.any():
        raise ConfigError(
            f"test_share {test_share} of {log.num_sessions} sessions leaves no session to "
            "train or to test on"
        )
    test_rows = held_out[log.session]
    train, test = log.subset(~test_rows), log.subset(test_rows)
    scores, not_fitted = [], []
    for model in models:
        if progress:
            print(f"fitting {model} to {int((~held_out).sum()):,} sessions", file=sys.stderr)
        try:
            probability, summary = _FITS[model](train, test, progress)
        except UnidentifiableError as exc:
            not_fitted.append((model, exc.reason))
            continue
        scores.append(_score(model, test, probability, summary))
    if not scores:
        raise DataFormatError(
            f"none of the models ({', '.join(models)}) can be fitted to this log: "
            f"{not_fitted[0][1]}; compare on a log whose rankings vary between sessions (e.g. "
            "`ltr clicks simulate --temperature 1`, or a randomised slice of traffic), or "
            "compare the cascade models, which can (--models cascade dbn)"
        )
    scores.sort(key=lambda s: -s.log_likelihood)
    best = scores[0].log_likelihood
    level = [s for s in scores if best - s.log_likelihood < SAME_FIT]  # best first
    recommended = min(level, key=lambda s: SIMPLICITY[s.model]).model
    return Comparison(
        scores=tuple(scores),
        recommended=recommended,
        train_sessions=int((~held_out).sum()),
        test_sessions=int(held_out.sum()),
        test_impressions=len(test),
        not_fitted=tuple(not_fitted),
    )


def relevance_given(
    counts: Counts,
    propensity: Propensity,
    *,
    size: int | None = None,
    pseudo: float = 0.0,
    prior: float = 0.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> np.ndarray:
    """``[size]`` each pair's maximum-likelihood relevance with the propensities held (PBM:
    ``theta_k``; trust: ``alpha_k, beta_k``), by EM; 0 for a pair ``counts`` never shows. With
    ``pseudo`` above 0, the posterior mode under ``pseudo`` impressions of relevance ``prior``.
    """
    n = counts.impressions.astype(np.float64)
    c = counts.clicks.astype(np.float64)
    size = int(counts.doc.max()) + 1 if size is None else size
    n_doc = np.bincount(counts.doc, weights=n, minlength=size)
    # Click rates of a relevant and of an irrelevant examined-or-trusting impression.
    relevant_rate = np.minimum(
        propensity.at(counts.position) + propensity.offset(counts.position), 1
    )
    other_rate = propensity.offset(counts.position)
    gamma = np.full(size, 0.5)
    for _ in range(max_iter):
        # PBM: a click rate of 0 when irrelevant, the trust-bias E-step with beta_k = 0.
        clicks, skips = _trust_posterior(relevant_rate, other_rate, gamma[counts.doc], n, c)
        relevant = np.bincount(counts.doc, weights=clicks + skips, minlength=size)
        new_gamma = _shrunk(relevant, n_doc, pseudo, prior)
        step = np.abs(new_gamma - gamma).max()
        gamma = new_gamma
        if step < tol:
            break
    return gamma


def cascade_probabilities(log: ClickLog, gamma: np.ndarray, lam: float) -> np.ndarray:
    """``[N]`` the DCM's probability of a click at each impression of ``log`` (its row order)
    given the session's clicks above it, for relevance ``gamma`` (by pair code) and probability
    ``lam`` of reading on after a click."""
    order = np.lexsort((log.position, log.session))
    session, click = log.session[order], log.click[order].astype(bool)
    g = np.clip(gamma[log.doc[order]], 0.0, 1.0)
    rows = np.arange(len(order))
    start = np.r_[0, np.flatnonzero(np.diff(session)) + 1]
    first_row = np.repeat(start, np.diff(np.r_[start, len(order)]))
    skip = np.cumsum(np.log1p(-np.minimum(g, 1 - 1e-12)))  # log P(skip) summed, inclusive
    before = np.r_[0.0, skip[:-1]]  # exclusive
    last_click = np.maximum.accumulate(np.where(click, rows, -1))
    last_above = np.r_[-1, last_click[:-1]]
    after_click = last_above >= first_row  # a click above, in the same session
    between = np.exp(before - skip[np.maximum(last_above, 0)])  # P(skip all between)
    looked = np.where(
        after_click, lam * between / np.maximum((1 - lam) + lam * between, 1e-300), 1.0
    )
    out = np.empty(len(order))
    out[order] = looked * g
    return out


def _fit_pbm(train: ClickLog, test: ClickLog, progress: bool):
    return _fit_propensity(train, test, "pbm", progress)


def _fit_trust(train: ClickLog, test: ClickLog, progress: bool):
    return _fit_propensity(train, test, "trust", progress)


def _fit_propensity(train: ClickLog, test: ClickLog, click_model: str, progress: bool):
    from ltr.clicks.propensity import estimate_em

    counts = aggregate(train)
    prop = estimate_em(counts, click_model=click_model, pool_after=POOL_AFTER, progress=progress)
    size = len(train.doc_ids)
    mean = _seen_mean(relevance_given(counts, prop, size=size), train)
    gamma = relevance_given(counts, prop, size=size, pseudo=PSEUDO, prior=mean)
    gamma = _fill_unseen(gamma, train, mean)
    k = np.array([2, 5])
    if click_model == "pbm":
        summary = "theta_2 {:.3f}, theta_5 {:.3f}".format(*prop.at(k))
    else:
        a, b = prop.at(k), prop.offset(k)
        summary = f"alpha_2 {a[0]:.3f}, beta_2 {b[0]:.3f}, alpha_5 {a[1]:.3f}, beta_5 {b[1]:.3f}"
    g = gamma[test.doc]
    return prop.at(test.position) * g + prop.offset(test.position), summary


def _fit_cascade(train: ClickLog, test: ClickLog, progress: bool):
    from ltr.clicks.cascade import estimate_cascade

    mean = _seen_mean(estimate_cascade(train).labels, train)
    fit = estimate_cascade(train, pseudo=PSEUDO, prior=mean, progress=progress)
    gamma = _fill_unseen(fit.labels, train, mean)
    summary = f"lambda {fit.continue_after_click:.3f}"
    return cascade_probabilities(test, gamma, fit.continue_after_click), summary


def _fit_dbn(train: ClickLog, test: ClickLog, progress: bool):
    from ltr.clicks.dbn import dbn_probabilities, estimate_dbn

    plain = estimate_dbn(train)
    clicked = np.bincount(train.doc[train.click == 1], minlength=len(train.doc_ids)) > 0
    mean_a = _seen_mean(plain.attractiveness, train)
    mean_s = float(plain.satisfaction[clicked].mean())
    fit = estimate_dbn(
        train,
        pseudo=PSEUDO,
        prior_attractiveness=mean_a,
        prior_satisfaction=mean_s,
        progress=progress,
    )
    a = _fill_unseen(fit.attractiveness, train, mean_a)
    s = _fill_unseen(fit.satisfaction, train, mean_s)
    summary = f"gamma {fit.perseverance:.3f}, mean satisfaction {mean_s:.3f}"
    return dbn_probabilities(test, a, s, fit.perseverance), summary


def _fit_ubm(train: ClickLog, test: ClickLog, progress: bool):
    from ltr.clicks.ubm import estimate_ubm

    mean = _seen_mean(estimate_ubm(train, pool_after=POOL_AFTER).labels, train)
    fit = estimate_ubm(train, pseudo=PSEUDO, prior=mean, pool_after=POOL_AFTER, progress=progress)
    a = _fill_unseen(fit.attractiveness, train, mean)
    g = fit.examination
    summary = "top only"
    if len(g) > 1:  # position 2 below nothing clicked, and right below a click at 1
        summary = f"g(2, no click above) {g[1, 0]:.3f}, g(2, click at 1) {g[1, 1]:.3f}"
    return fit.probabilities(test, a), summary


_FITS = {
    "pbm": _fit_pbm,
    "trust": _fit_trust,
    "cascade": _fit_cascade,
    "dbn": _fit_dbn,
    "ubm": _fit_ubm,
}


def _seen(gamma: np.ndarray, train: ClickLog) -> np.ndarray:
    return np.bincount(train.doc, minlength=len(gamma)) > 0


def _seen_mean(gamma: np.ndarray, train: ClickLog) -> float:
    """The mean relevance of the documents ``train`` shows."""
    return float(gamma[_seen(gamma, train)].mean())


def _fill_unseen(gamma: np.ndarray, train: ClickLog, mean: float) -> np.ndarray:
    """``gamma`` with the documents that ``train`` never shows at ``mean``."""
    out = gamma.astype(np.float64).copy()
    out[~_seen(gamma, train)] = mean
    return out


def _score(model: str, test: ClickLog, probability: np.ndarray, summary: str) -> ModelScore:
    p = np.clip(probability, _FLOOR, 1 - _FLOOR)
    observed = np.where(test.click == 1, p, 1 - p)
    top = min(PERPLEXITY_POSITIONS, int(test.position.max()))
    by_position = []
    for k in range(1, top + 1):
        at = test.position == k
        if at.any():
            by_position.append(float(2 ** -np.log2(observed[at]).mean()))
    if not by_position:
        raise DataFormatError("the held-out sessions show nothing in positions 1 to 10")
    return ModelScore(
        model=model,
        log_likelihood=float(np.log(observed).mean()),
        perplexity=float(np.mean(by_position)),
        perplexity_by_position=tuple(by_position),
        summary=summary,
    )
