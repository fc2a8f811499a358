"""Click logs, EM propensities and IPS labels: by hand, and against the simulation's truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.clicks.labels import (
    PRIOR_STRENGTHS,
    choose_prior_strength,
    click_labels,
    pair_features,
    write_labelled,
)
from ltr.clicks.log import Counts, aggregate, read_log
from ltr.clicks.model import PositionBasedModel, TrustBiasModel
from ltr.clicks.propensity import Propensity, estimate_em, position_buckets, relevance_prior
from ltr.data.dataset import ListDataset, load_dataset
from ltr.errors import ConfigError, DataFormatError

from .conftest import judged_lists, pair_grades, simulated_log


def _write_log(path, rows, **types):
    names = ["session", "qid", "doc_id", "position", "click"]
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    pq.write_table(pa.table(dict(zip(names, columns, strict=True))), path)
    return path


def test_one_em_step_by_hand():
    # Two documents, each at positions 1 and 2. From theta = gamma = 1/2 an unclicked impression
    # was examined-not-relevant with probability (1/4)/(3/4) = 1/3, so the expected examined
    # impressions are c + (n - c)/3:  position 1: (2 + 2/3) + (1 + 1/3) = 4 of 6;
    # position 2: (0 + 2/3) + (1 + 3/3) = 8/3 of 6.  theta_2 / theta_1 = (4/9) / (2/3) = 2/3.
    counts = Counts(
        doc=np.array([0, 0, 1, 1]),
        position=np.array([1, 2, 1, 2]),
        impressions=np.array([4, 2, 2, 4]),
        clicks=np.array([2, 0, 1, 1]),
    )
    one = estimate_em(counts, max_iter=1)
    np.testing.assert_allclose(one.theta, [1.0, 2 / 3])
    assert one.iterations == 1 and not one.converged
    assert one.impressions == [6, 6]


def test_one_trust_em_step_by_hand():
    # The counts of the PBM case. From a = 0.6, b = 0.2, gamma = 1/2 a clicked impression was
    # relevant with probability 0.3 / (0.3 + 0.1) = 3/4, an unclicked one with
    # 0.2 / (0.2 + 0.4) = 1/3.  Position 1 (3 clicks, 3 skips): relevant 9/4 + 1 = 13/4, so
    # a_1 = (9/4) / (13/4) = 9/13 and b_1 = (3/4) / (6 - 13/4) = 3/11.  Position 2 (1 click,
    # 5 skips): relevant 3/4 + 5/3 = 29/12, a_2 = 9/29, b_2 = (1/4) / (43/12) = 3/43.
    counts = Counts(
        doc=np.array([0, 0, 1, 1]),
        position=np.array([1, 2, 1, 2]),
        impressions=np.array([4, 2, 2, 4]),
        clicks=np.array([2, 0, 1, 1]),
    )
    one = estimate_em(counts, click_model="trust", max_iter=1)
    assert one.click_model == "trust" and one.iterations == 1
    np.testing.assert_allclose(one.beta, [3 / 11, 3 / 43])
    np.testing.assert_allclose(one.theta, [9 / 13 - 3 / 11, 9 / 29 - 3 / 43])  # alpha = a - b
    np.testing.assert_allclose(one.at([1, 2]), one.theta)
    np.testing.assert_allclose(one.offset([1, 2]), one.beta)


def test_deep_positions_share_parameters_in_widening_buckets():
    # (10, 12.5], (12.5, 15.6], (15.6, 19.5], (19.5, 24.4]: one bucket each.
    bucket = position_buckets(24, 10)
    assert list(bucket[:10]) == list(range(10))
    assert list(bucket[10:]) == [10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 13]
    assert list(position_buckets(4, None)) == [0, 1, 2, 3]
    # Two documents at positions 1-12: pooling after 10, positions 11 and 12 get one rate.
    position = np.tile(np.arange(1, 13), 2)
    relevance = np.repeat([0.9, 0.3], 12)
    counts = Counts(
        doc=np.repeat([0, 1], 12),
        position=position,
        impressions=np.full(24, 100),
        clicks=np.rint(100 * relevance / position).astype(np.int64) + (position == 12),
    )
    pooled = estimate_em(counts, pool_after=10)
    assert pooled.theta[10] == pooled.theta[11] and len(pooled.theta) == 12
    alone = estimate_em(counts)
    assert alone.theta[10] != pytest.approx(alone.theta[11], abs=0.005)
    trust = estimate_em(counts, click_model="trust")  # pools after 10 by default
    assert trust.theta[10] == trust.theta[11] and trust.beta[10] == trust.beta[11]
    with pytest.raises(ConfigError, match="pool_after"):
        estimate_em(counts, pool_after=0)


def test_affine_labels_undo_trust_bias_where_ips_labels_do_not(tmp_path):
    data, scores = judged_lists(200, 10, seed=2)
    model = TrustBiasModel(eta=1.0, false_click=0.65, max_grade=2)
    log = simulated_log(tmp_path, data, scores, model, sessions=300)
    counts = aggregate(log)
    grades = pair_grades(log, data)
    shown = np.bincount(counts.doc, weights=counts.impressions)
    mean_position = np.bincount(counts.doc, weights=counts.position * counts.impressions) / shown
    irrelevant = grades == 0

    def check(prop):
        labels = click_labels(log, prop, clip_negative=False)
        means = np.array([labels[grades == y].mean() for y in (0, 1, 2)])
        corr = np.corrcoef(labels[irrelevant], mean_position[irrelevant])[0, 1]
        return means, corr

    # True alpha_k, beta_k: the mean label of each grade is its relevance probability
    # (2^y - 1)/3, and an irrelevant document's label does not depend on where it was shown.
    means, corr = check(Propensity.formula(1.0, false_click=0.65))
    np.testing.assert_allclose(means, [0, 1 / 3, 1], atol=0.02)
    assert abs(corr) < 0.1
    # The EM estimate is determined up to an affine map of relevance: the labels' means keep
    # the spacing of (0, 1/3, 1), (L2 - L1) / (L1 - L0) = 2, and stay free of position.
    em = estimate_em(counts, click_model="trust")
    assert em.converged
    means, corr = check(em)
    assert (means[2] - means[1]) / (means[1] - means[0]) == pytest.approx(2, rel=0.1)
    assert abs(corr) < 0.1
    # IPS with the true examination credits the false clicks of top positions to irrelevant
    # documents that the logging ranker put there.
    means, corr = check(Propensity.formula(1.0))
    assert means[0] > 0.1 and corr < -0.4
    # Clipped labels are the unclipped ones with negatives made 0.
    raw, clipped = click_labels(log, em, clip_negative=False), click_labels(log, em)
    assert (raw < 0).any()
    np.testing.assert_array_equal(clipped, np.maximum(raw, 0))


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_em_recovers_the_simulated_position_bias(tmp_path, eta):
    data, scores = judged_lists(300, 10, seed=1)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=eta), sessions=200)
    estimate = estimate_em(aggregate(log))
    assert estimate.converged and len(estimate.theta) == 10
    truth = np.arange(1, 11.0) ** -eta
    np.testing.assert_allclose(estimate.theta, truth, atol=0.02)
    assert estimate.tail_eta == pytest.approx(eta, abs=0.05)


def test_regression_em_with_a_feature_per_document_is_the_per_document_em(tmp_path):
    # One indicator feature per (query, document): the logistic regression can give every
    # document its own relevance, as the per-document EM does (up to its mild L2 penalty).
    data, scores = judged_lists(20, 5, seed=4)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=1.0), sessions=200)
    counts = aggregate(log)
    regression = estimate_em(counts, features=np.eye(len(log.doc_ids)))
    assert regression.relevance_model == "logistic" and regression.converged
    per_document = estimate_em(counts)
    assert per_document.relevance_model is None
    np.testing.assert_allclose(regression.theta, per_document.theta, atol=0.005)


@pytest.mark.parametrize("queries, sessions", [(3000, 1), (1000, 3)])
def test_regression_em_recovers_position_bias_from_few_sessions(tmp_path, queries, sessions):
    # The first feature is the grade plus noise, so features predict relevance.
    data, scores = judged_lists(queries, 10, seed=3)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=1.0), sessions=sessions)
    counts, truth = aggregate(log), 1 / np.arange(1, 11)
    regression = estimate_em(counts, features=pair_features(log, data))
    np.testing.assert_allclose(regression.theta, truth, atol=0.05)
    if sessions == 1:  # no document moves: only shared relevance can tell position apart
        with pytest.raises(DataFormatError, match="one position only"):
            estimate_em(counts)
    else:  # a relevance per document fits the noise of three sessions
        per_document = estimate_em(counts)
        assert np.abs(np.array(per_document.theta) - truth).max() > 0.2


def test_relevance_prior_with_a_feature_per_document_is_each_documents_mle(tmp_path):
    # With theta_k known, a document's PBM likelihood has its maximum where
    # sum over impressions of c / gamma - (1 - c) theta_k / (1 - theta_k gamma) = 0 (scipy's
    # root finder); one indicator feature per document lets the prior reach it.
    from scipy.optimize import brentq

    data, scores = judged_lists(20, 5, seed=4)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=1.0), sessions=200)
    counts = aggregate(log)
    prior = relevance_prior(counts, Propensity.formula(1.0), np.eye(len(log.doc_ids)))
    checked = 0
    for d in range(len(log.doc_ids)):
        cells = counts.doc == d
        t, n, c = 1.0 / counts.position[cells], counts.impressions[cells], counts.clicks[cells]

        def score(g, t=t, n=n, c=c):
            return (c / g - (n - c) * t / (1 - t * g)).sum()

        mle = brentq(score, 1e-6, 1 - 1e-6) if score(1e-6) > 0 > score(1 - 1e-6) else None
        if mle is not None and 0.05 < mle < 0.95:  # the logistic cannot reach 0 or 1
            assert prior[d] == pytest.approx(mle, abs=0.02), d
            checked += 1
    assert checked >= 40


def test_a_relevance_prior_cuts_the_error_of_labels_from_few_sessions(tmp_path):
    model = PositionBasedModel(eta=1.0)
    data, scores = judged_lists(1000, 10, seed=5)
    log = simulated_log(tmp_path, data, scores, model, sessions=2)
    truth = model.attractiveness(pair_grades(log, data))
    prop = Propensity.formula(1.0)
    prior = relevance_prior(aggregate(log), prop, pair_features(log, data))
    ips = click_labels(log, prop)
    shrunk = click_labels(log, prop, prior=prior, prior_strength=10)
    # Two impressions per document: IPS labels are unbiased but their squared error is far
    # larger than that of labels that lean on the features.
    assert ((shrunk - truth) ** 2).mean() < 0.2 * ((ips - truth) ** 2).mean()
    assert abs(shrunk.mean() - truth.mean()) < 0.05
    with pytest.raises(ConfigError, match="together"):
        click_labels(log, prop, prior=prior)
    with pytest.raises(ConfigError, match="not trust bias"):
        relevance_prior(aggregate(log), Propensity.formula(1.0, false_click=0.5), prior[:, None])


@pytest.mark.parametrize(
    ("queries", "sessions", "informative"),
    [(1000, 2, True), (200, 100, True), (200, 100, False)],
    ids=["2-sessions", "100-sessions", "100-sessions-noise-features"],
)
def test_the_chosen_prior_strength_is_near_the_best_one_by_the_truth(
    tmp_path, queries, sessions, informative
):
    # The truth (each document's attractiveness) is hidden from the choice, which sees clicks
    # only; its labels must come near the grid's best against the truth, wherever that lies:
    # strong shrinkage for 2 sessions, little for 100 with features that say nothing.
    model, prop = PositionBasedModel(eta=1.0), Propensity.formula(1.0)
    data, scores = judged_lists(queries, 10, seed=5)
    if not informative:
        data.features[:] = np.random.default_rng(1).normal(size=data.features.shape)
    log = simulated_log(tmp_path, data, scores, model, sessions=sessions)
    truth = model.attractiveness(pair_grades(log, data))
    features = pair_features(log, data)
    choice = choose_prior_strength(log, prop, features)
    prior = relevance_prior(aggregate(log), prop, features)
    error = {
        s: (
            (click_labels(log, prop, prior=prior if s else None, prior_strength=s) - truth) ** 2
        ).mean()
        for s in PRIOR_STRENGTHS
    }
    assert choice.strengths == PRIOR_STRENGTHS
    assert error[choice.strength] <= 1.2 * min(error.values()), (choice, error)
    if sessions == 2:
        assert error[choice.strength] < 0.2 * error[0.0]
    if not informative:  # shrinking 100 impressions towards noise: the strongest priors lose
        assert choice.strength <= 20 and error[500.0] > 3 * error[choice.strength]


def test_prior_strength_errors_by_hand_leaving_one_session_out(tmp_path):
    # With one fold per session the deal does not matter: each session is held out once. With
    # a constant feature the prior is one relevance g for all, the PBM likelihood's maximum
    # over the other sessions' impressions (scipy's root finder). Each held-out impression of a
    # document shown in the other sessions is predicted as theta_k * label, label = (sum of
    # click / theta_k + s g) / (n + s) over the other sessions.
    from scipy.optimize import brentq

    data, scores = judged_lists(4, 5, seed=6)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=1.0), sessions=3)
    prop, strengths = Propensity.formula(1.0), (0.0, 2.0, 7.0)
    choice = choose_prior_strength(
        log, prop, np.ones((len(log.doc_ids), 1)), strengths=strengths, folds=log.num_sessions
    )
    theta = 1.0 / log.position
    squared, scored = np.zeros(len(strengths)), 0
    for session in range(log.num_sessions):
        out, rest = log.session == session, log.session != session
        t, c = theta[rest], log.click[rest]

        def score(g, t=t, c=c):
            return (c / g - (1 - c) * t / (1 - t * g)).sum()

        g = brentq(score, 1e-9, 1 - 1e-9)
        for i in np.flatnonzero(out):
            shown = rest & (log.doc == log.doc[i])
            if not shown.any():
                continue
            ips_sum, n = (log.click[shown] / theta[shown]).sum(), shown.sum()
            for j, s in enumerate(strengths):
                label = (ips_sum + s * g) / (n + s)
                squared[j] += (log.click[i] - theta[i] * label) ** 2
            scored += 1
    assert choice.impressions == scored and scored > 20
    np.testing.assert_allclose(choice.errors, squared / scored, rtol=2e-3)
    assert choice.strength == strengths[int(np.argmin(squared))]


def test_choose_prior_strength_refuses_what_it_cannot_do(tmp_path):
    data, scores = judged_lists(4, 5, seed=6)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(eta=1.0), sessions=3)
    features, prop = np.ones((len(log.doc_ids), 1)), Propensity.formula(1.0)
    with pytest.raises(ConfigError, match="folds must be in \\[2, 12\\]"):
        choose_prior_strength(log, prop, features, folds=13)
    with pytest.raises(ConfigError, match=">= 0"):
        choose_prior_strength(log, prop, features, strengths=(1.0, -2.0))
    with pytest.raises(ConfigError, match="not trust bias"):
        choose_prior_strength(log, Propensity.formula(1.0, false_click=0.5), features)


def test_regression_em_refuses_what_it_cannot_do():
    counts = Counts(np.array([0, 1]), np.array([1, 2]), np.array([3, 3]), np.array([1, 1]))
    with pytest.raises(ConfigError, match="PBM only"):
        estimate_em(counts, click_model="trust", features=np.ones((2, 1)))
    with pytest.raises(DataFormatError, match="NaN"):
        estimate_em(counts, features=np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="for 2 pairs"):
        estimate_em(counts, features=np.ones((1, 3)))


def test_em_refuses_a_log_that_never_moves_a_document(tmp_path):
    data, scores = judged_lists(20, 5)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(), sessions=20, temperature=0)
    with pytest.raises(DataFormatError, match="one position only"):
        estimate_em(aggregate(log))
    no_clicks = Counts(np.array([0, 0]), np.array([1, 2]), np.array([3, 3]), np.array([0, 0]))
    with pytest.raises(DataFormatError, match="no click"):
        estimate_em(no_clicks)


def test_ips_and_naive_labels_by_hand(tmp_path):
    # Query A, two sessions with string ids (document v only in the second); query B, one.
    rows = [
        ("s1", "A", "x", 1, 0),
        ("s1", "A", "y", 2, 1),
        ("s1", "A", "z", 3, 1),
        ("s2", "A", "y", 1, 1),
        ("s2", "A", "x", 2, 1),
        ("s2", "A", "z", 3, 0),
        ("s2", "A", "v", 4, 1),
        ("s3", "B", "x", 1, 0),
        ("s3", "B", "w", 2, 1),
    ]
    log = read_log(_write_log(tmp_path / "log.parquet", rows))
    by_pair = {
        (log.qids[q], d): i for i, (q, d) in enumerate(zip(log.doc_qid, log.doc_ids, strict=True))
    }

    def labels(prop, **kw):
        values = click_labels(log, prop, **kw)
        return {key: values[i] for key, i in by_pair.items()}

    naive = labels(None)
    assert naive == pytest.approx(
        {
            ("A", "x"): 0.5,
            ("A", "y"): 1.0,
            ("A", "z"): 0.5,
            ("A", "v"): 1.0,  # one click in its one impression
            ("B", "x"): 0.0,
            ("B", "w"): 1.0,
        }
    )
    ips = labels(Propensity.formula(1.0))  # theta_k = 1/k: a click at k counts k
    assert ips == pytest.approx(
        {
            ("A", "x"): 2 / 2,
            ("A", "y"): (2 + 1) / 2,
            ("A", "z"): 3 / 2,
            ("A", "v"): 4 / 1,
            ("B", "x"): 0.0,
            ("B", "w"): 2.0,
        }
    )
    clipped = labels(Propensity.formula(1.0), min_propensity=0.5)  # theta_3 = 1/3 -> 1/2
    assert clipped[("A", "z")] == pytest.approx(2 / 2)
    estimated = Propensity(method="em", theta=[1.0, 0.25, 0.2, 0.1])
    assert labels(estimated)[("A", "y")] == pytest.approx((4 + 1) / 2)
    with pytest.raises(DataFormatError, match="position 4, beyond the 2 positions"):
        click_labels(log, Propensity(method="em", theta=[1.0, 0.5]))
    # Past the estimate: theta_K * (K / k)^tail_eta, here 0.5 * (2/3)^2 at position 3 and
    # 0.5 * (2/4)^2 at position 4.
    tail = Propensity(method="em", theta=[1.0, 0.5], tail_eta=2.0)
    assert labels(tail)[("A", "z")] == pytest.approx(1 / (0.5 * (2 / 3) ** 2) / 2)
    assert labels(tail)[("A", "v")] == pytest.approx(1 / 0.125)
    np.testing.assert_allclose(tail.at([1, 2, 4]), [1.0, 0.5, 0.125])
    with pytest.raises(ConfigError):
        click_labels(log, None, min_propensity=2)
    # A prior of 2 pseudo-impressions: (sum of click / theta_k + 2 * prior) / (n + 2).
    prior = np.zeros(len(log.doc_ids))
    prior[by_pair[("A", "y")]], prior[by_pair[("B", "x")]] = 0.5, 0.25
    shrunk = labels(Propensity.formula(1.0), prior=prior, prior_strength=2)
    assert shrunk[("A", "y")] == pytest.approx((2 + 1 + 2 * 0.5) / (2 + 2))
    assert shrunk[("B", "x")] == pytest.approx((0 + 2 * 0.25) / (1 + 2))
    assert shrunk[("A", "v")] == pytest.approx(4 / (1 + 2))
    # Trust bias: the mean of (click - beta_k) / alpha_k, negatives made 0.
    trust = Propensity(
        method="em",
        click_model="trust",
        theta=[0.5, 0.25, 0.2, 0.1],
        beta=[0.2, 0.1, 0.05, 0.0],
    )
    affine = labels(trust)
    assert affine[("A", "x")] == pytest.approx(((0 - 0.2) / 0.5 + (1 - 0.1) / 0.25) / 2)
    assert affine[("A", "z")] == pytest.approx(((1 - 0.05) / 0.2 + (0 - 0.05) / 0.2) / 2)
    assert affine[("B", "x")] == 0.0  # (0 - 0.2) / 0.5 < 0
    assert labels(trust, clip_negative=False)[("B", "x")] == pytest.approx(-0.4)
    assert labels(trust, min_propensity=0.4)[("A", "y")] == pytest.approx(
        ((1 - 0.2) / 0.5 + (1 - 0.1) / 0.4) / 2
    )


def test_ips_labels_are_unbiased_and_click_rates_are_not(tmp_path):
    data, scores = judged_lists(200, 10, seed=2)
    model = PositionBasedModel(eta=1.0, noise=0.1, max_grade=2)
    log = simulated_log(tmp_path, data, scores, model, sessions=300)
    for prop, unbiased in ((Propensity.formula(1.0), True), (None, False)):
        write_labelled(log, click_labels(log, prop), data, tmp_path / "out.parquet")
        out = load_dataset(tmp_path / "out.parquet")
        np.testing.assert_array_equal(out.doc_ids, data.doc_ids)  # joined back in data order
        for grade in (0, 1, 2):
            mean = out.labels[data.labels == grade].mean()
            expected = model.attractiveness([grade])[0]  # what a user who looks clicks
            if unbiased:
                assert mean == pytest.approx(expected, rel=0.05), grade
            else:
                assert mean < 0.7 * expected, grade  # clicks lost to unexamined positions


def _features(qids, docs):
    n = len(docs)
    return ListDataset(
        np.arange(n * 2, dtype=np.float32).reshape(n, 2),
        np.zeros(n, dtype=np.float32),
        np.append(np.flatnonzero(np.r_[True, np.array(qids[1:]) != np.array(qids[:-1])]), n),
        list(dict.fromkeys(qids)),
        np.array(docs, dtype=object),
    )


def test_labelled_file_joins_features_and_leaves_unshown_documents_out(tmp_path):
    rows = [("1", "A", "y", 1, 1), ("1", "A", "x", 2, 0), ("2", "B", "w", 1, 0)]
    log = read_log(_write_log(tmp_path / "log.parquet", rows))
    feats = _features(["A", "A", "A", "B", "C"], ["x", "y", "never", "w", "v"])
    stats = write_labelled(log, click_labels(log, None), feats, tmp_path / "out.parquet")
    out = load_dataset(tmp_path / "out.parquet")
    assert list(out.qids) == ["A", "B"] and list(out.doc_ids) == ["x", "y", "w"]
    np.testing.assert_array_equal(out.labels, [0, 1, 0])
    np.testing.assert_array_equal(out.features, feats.features[[0, 1, 3]])
    assert (stats.queries, stats.documents, stats.unlogged_documents) == (2, 3, 1)
    with pytest.raises(DataFormatError, match=r"1 logged documents have no features.*'w'"):
        write_labelled(
            log,
            click_labels(log, None),
            _features(["A", "A"], ["x", "y"]),
            tmp_path / "bad.parquet",
        )
    with pytest.raises(DataFormatError, match="document 'x' of query 'A' twice"):
        write_labelled(
            log,
            click_labels(log, None),
            _features(["A", "A", "B"], ["x", "x", "w"]),
            tmp_path / "bad.parquet",
        )
    assert not (tmp_path / "bad.parquet").exists()


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("1", "A", "x", 0, 1)], "row 0 has position 0; positions are 1-based"),
        ([("1", "A", "x", 1, 0), ("1", "A", "y", 2, 2)], "row 1 has click 2"),
        ([("1", "A", "x", 1, 0), ("1", "B", "y", 2, 0)], "row 1: its session also holds another"),
        ([("1", "A", "x", 1, 0), ("1", "A", "x", 2, 0)], "shows the same document twice"),
        ([("1", "A", "x", 1, 0), ("1", "A", "y", 1, 0)], "same position twice"),
        ([("1", "A", None, 1, 0)], "row 0 has no doc_id"),
        ([], "holds no rows"),
    ],
)
def test_bad_logs_are_refused_with_the_row(tmp_path, rows, message):
    path = _write_log(tmp_path / "log.parquet", rows)
    with pytest.raises(DataFormatError, match=message):
        read_log(path)


def test_a_log_without_the_columns_is_refused(tmp_path):
    pq.write_table(pa.table({"qid": ["A"], "doc_id": ["x"]}), tmp_path / "log.parquet")
    with pytest.raises(DataFormatError, match="no 'session', 'position', 'click' column"):
        read_log(tmp_path / "log.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(DataFormatError, match="not a Parquet file"):
        read_log(tmp_path / "text.parquet")


def test_propensity_files(tmp_path):
    em = Propensity(method="em", theta=[1.0, 0.4], impressions=[10, 10], tail_eta=1.3)
    em.save(tmp_path / "p.json")
    assert Propensity.load(tmp_path / "p.json") == em
    Propensity.formula(2.0).save(tmp_path / "f.json")
    np.testing.assert_allclose(Propensity.load(tmp_path / "f.json").at([1, 3]), [1, 1 / 9])
    (tmp_path / "bad.json").write_text('{"method": "em", "theta": [1.0, 1.5]}')
    with pytest.raises(DataFormatError, match=r"numbers in \(0, 1\]"):
        Propensity.load(tmp_path / "bad.json")
    trust = Propensity(
        method="em", click_model="trust", theta=[0.4, 0.3], beta=[0.5, 0.1], tail_eta=1.0
    )
    trust.save(tmp_path / "t.json")
    assert Propensity.load(tmp_path / "t.json") == trust
    np.testing.assert_allclose(trust.offset([1, 2, 4]), [0.5, 0.1, 0.1 * 2 / 4])
    Propensity.formula(1.0, false_click=0.6).save(tmp_path / "tf.json")
    # alpha_2 = (1/2)(0.97 - 0.3), beta_2 = (1/2)(0.3)
    formula = Propensity.load(tmp_path / "tf.json")
    assert (formula.at([2])[0], formula.offset([2])[0]) == pytest.approx((0.335, 0.15))
    np.testing.assert_array_equal(Propensity.formula(1.0).offset([1, 5]), [0, 0])
    for bad in (
        '{"method": "em", "click_model": "trust", "theta": [0.6], "beta": [0.5]}',
        '{"method": "em", "click_model": "trust", "theta": [0.6, 0.3], "beta": [0.1]}',
        '{"method": "em", "click_model": "cascade", "theta": [1.0]}',
        '{"method": "formula", "click_model": "trust", "eta": 1, "false_click": 0.99}',
    ):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(DataFormatError, match=r"bad\.json"):
            Propensity.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(DataFormatError, match="not a propensity file"):
        Propensity.load(tmp_path / "junk.json")
