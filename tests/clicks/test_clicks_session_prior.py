"""Feature priors for the DCM's, the DBN's and the UBM's labels, and their strength from
held-out sessions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ltr.clicks.cascade import estimate_cascade
from ltr.clicks.dbn import estimate_dbn
from ltr.clicks.labels import pair_features
from ltr.clicks.model import BrowsingModel, CascadeModel, DynamicBayesianModel
from ltr.clicks.session_prior import (
    choose_session_prior_strength,
    feature_priors,
    fit_with_prior,
)
from ltr.clicks.ubm import estimate_ubm
from ltr.errors import ConfigError

from .conftest import judged_lists, pair_grades, simulated_log


def _regression(features, successes, trials):
    """A logistic regression of ``successes`` out of ``trials`` per row on standardised
    features, predicted for every row."""
    fitted = trials > 0
    scaler = StandardScaler().fit(features[fitted])
    x = scaler.transform(features[fitted])
    model = LogisticRegression(C=1.0, max_iter=2000, tol=1e-8).fit(
        np.vstack([x, x]),
        np.r_[np.ones(len(x)), np.zeros(len(x))],
        sample_weight=np.r_[successes[fitted], trials[fitted] - successes[fitted]],
    )
    return model.predict_proba(scaler.transform(features))[:, 1]


def _dcm_click_probabilities(log, gamma, lam):
    """P(click | the session's clicks above) under the DCM, one session at a time."""
    out = np.empty(len(log))
    for session in np.unique(log.session):
        rows = np.flatnonzero(log.session == session)
        rows = rows[np.argsort(log.position[rows])]
        looked = 1.0  # P(looked at the next document | the clicks so far)
        for i in rows:
            out[i] = looked * gamma[log.doc[i]]
            if log.click[i]:
                looked = lam  # reads on after a click with probability lambda
            else:  # a skip: either not looked at, or looked at and not attracted
                g = min(gamma[log.doc[i]], 1 - 1e-12)  # a skip of g = 1 cannot happen
                looked = looked * (1 - g) / (1 - looked * g)
    return out


def test_held_out_errors_match_a_computation_by_hand(tmp_path):
    # Two folds of sessions; in each, the DCM and the prior's regression are fitted to the
    # other fold (the regression predicting every document of the log), labels are
    # (clicks + S p) / (expected examinations + S), documents the other fold never showed take
    # p, and the held-out clicks are predicted session by session.
    data, scores = judged_lists(60, 6, seed=11)
    model = CascadeModel(continue_after_click=0.4)  # the top 3 of 6: some never shown in a fold
    log = simulated_log(tmp_path, data, scores, model, sessions=4, top_k=3)
    features = pair_features(log, data)
    strengths = (0.0, 3.0, 30.0)
    choice = choose_session_prior_strength(
        log, "cascade", features, strengths=strengths, folds=2, seed=7
    )
    fold_of_row = (np.random.default_rng(7).permutation(log.num_sessions) % 2)[log.session]
    squared, scored = np.zeros(3), 0
    for fold in (0, 1):
        train, test = log.subset(fold_of_row != fold), log.subset(fold_of_row == fold)
        fit = estimate_cascade(train)
        clicks = np.bincount(train.doc, weights=train.click, minlength=len(log.doc_ids))
        prior = _regression(features, clicks, fit.examinations)
        seen = fit.examinations > 0
        for i, s in enumerate(strengths):
            label = np.where(
                seen, (clicks + s * prior) / np.maximum(fit.examinations + s, 1e-300), prior
            )
            p = _dcm_click_probabilities(test, label, fit.continue_after_click)
            scoring = seen[test.doc]
            squared[i] += ((test.click[scoring] - p[scoring]) ** 2).sum()
        scored += int(seen[test.doc].sum())
    assert choice.impressions == scored
    np.testing.assert_allclose(choice.errors, squared / scored, rtol=1e-4)
    assert choice.strength == strengths[int(np.argmin(squared))]


def test_the_shrunk_fit_is_the_posterior_mode_under_the_feature_prior(tmp_path):
    # At the fixed point each label is (clicks + S p_d) / (expected examinations + S), with p
    # the regression of the unshrunk fit's counts (and the DBN's satisfaction likewise, over
    # clicks); S is the number of pseudo-observations.
    data, scores = judged_lists(80, 6, seed=12)
    log = simulated_log(tmp_path, data, scores, DynamicBayesianModel(0.8), sessions=5)
    features = pair_features(log, data)
    clicks = np.bincount(log.doc, weights=log.click, minlength=len(log.doc_ids))
    plain = estimate_dbn(log)
    attractive, satisfying = feature_priors(log, plain, features)
    np.testing.assert_allclose(
        attractive, _regression(features, clicks, plain.examinations), atol=1e-3
    )
    np.testing.assert_allclose(
        satisfying, _regression(features, plain.satisfied_clicks, clicks), atol=1e-3
    )
    shrunk = fit_with_prior(log, "dbn", features, 4.0)
    np.testing.assert_allclose(
        shrunk.attractiveness, (clicks + 4 * attractive) / (shrunk.examinations + 4), atol=1e-4
    )
    np.testing.assert_allclose(
        shrunk.satisfaction, (shrunk.satisfied_clicks + 4 * satisfying) / (clicks + 4), atol=1e-4
    )
    dcm = fit_with_prior(log, "cascade", features, 4.0)
    dcm_prior, none = feature_priors(log, estimate_cascade(log), features)
    assert none is None
    np.testing.assert_allclose(
        dcm.labels, (clicks + 4 * dcm_prior) / (dcm.examinations + 4), atol=1e-4
    )
    # The UBM's attractiveness is expected attractive impressions over impressions.
    ubm = fit_with_prior(log, "ubm", features, 4.0)
    plain_ubm = estimate_ubm(log)
    ubm_prior, none = feature_priors(log, plain_ubm, features)
    assert none is None
    np.testing.assert_allclose(
        ubm_prior, _regression(features, plain_ubm.attracted, plain_ubm.impressions), atol=1e-3
    )
    np.testing.assert_allclose(
        ubm.labels, (ubm.attracted + 4 * ubm_prior) / (ubm.impressions + 4), atol=1e-4
    )


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("cascade", CascadeModel(continue_after_click=0.5)),
        ("dbn", DynamicBayesianModel(0.9)),
        ("ubm", BrowsingModel(eta=1.0)),
    ],
)
def test_auto_strength_on_few_sessions_is_near_the_best_against_the_truth(tmp_path, name, model):
    # Three sessions per query: the unshrunk labels rest on a few looks each. The strength
    # chosen from held-out clicks gives labels within 1.25x of the grid's best squared error
    # against the truth, and well below the unshrunk labels'.
    data, scores = judged_lists(400, 10, seed=4)
    log = simulated_log(tmp_path, data, scores, model, sessions=3)
    grades = pair_grades(log, data)
    truth = model.attractiveness(grades)
    if name == "dbn":
        truth = truth * model.satisfaction(grades)
    features = pair_features(log, data)
    choice = choose_session_prior_strength(log, name, features)
    plain = {"cascade": estimate_cascade, "dbn": estimate_dbn, "ubm": estimate_ubm}[name](log)
    error = {0.0: ((plain.labels - truth) ** 2).mean()}
    for s in choice.strengths[1:]:
        error[s] = ((fit_with_prior(log, name, features, s).labels - truth) ** 2).mean()
    assert choice.strength > 0
    assert error[choice.strength] <= 1.25 * min(error.values())
    assert error[choice.strength] < 0.75 * error[0.0]


def test_session_priors_refuse_what_they_cannot_do(tmp_path):
    data, scores = judged_lists(10, 5, seed=9)
    log = simulated_log(tmp_path, data, scores, CascadeModel(), sessions=4)
    features = pair_features(log, data)
    with pytest.raises(ConfigError, match="must be one of"):
        choose_session_prior_strength(log, "pbm", features)
    with pytest.raises(ConfigError, match="folds"):
        choose_session_prior_strength(log, "cascade", features, folds=1)
    with pytest.raises(ConfigError, match=">= 0"):
        choose_session_prior_strength(log, "cascade", features, strengths=(-1.0,))
    with pytest.raises(ConfigError, match="> 0"):
        fit_with_prior(log, "dbn", features, 0.0)
