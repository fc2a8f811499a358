"""Which click model explains a log: each simulated log's own model, and the scores by hand."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.clicks.compare import cascade_probabilities, compare_click_models, relevance_given
from ltr.clicks.log import Counts, read_log
from ltr.clicks.model import (
    BrowsingModel,
    CascadeModel,
    DynamicBayesianModel,
    PositionBasedModel,
    TrustBiasModel,
)
from ltr.clicks.propensity import Propensity
from ltr.errors import ConfigError

from .conftest import judged_lists, simulated_log


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (PositionBasedModel(eta=1.0), "pbm"),
        (TrustBiasModel(eta=1.0, false_click=0.65), "trust"),
        # lambda 0 is the cascade model, which the UBM contains too (g = 0 below a click): the
        # two fit alike, and the one with fewer parameters is named
        (CascadeModel(continue_after_click=0.0), "cascade"),
        (CascadeModel(continue_after_click=0.3), "cascade"),
        (CascadeModel(continue_after_click=0.8), "cascade"),
        (DynamicBayesianModel(perseverance=0.7), "dbn"),
        (DynamicBayesianModel(perseverance=1.0), "dbn"),
        (BrowsingModel(eta=1.0), "ubm"),
    ],
    ids=["pbm", "trust", "cascade-0.0", "cascade-0.3", "cascade-0.8", "dbn-0.7", "dbn-1.0", "ubm"],
)
def test_each_simulated_log_is_best_explained_by_its_own_model(tmp_path, model, name):
    data, scores = judged_lists(200, 10, seed=4)
    log = simulated_log(tmp_path, data, scores, model, sessions=50)
    result = compare_click_models(log)
    assert result.recommended == name, result.scores
    assert {s.model for s in result.scores} == {"pbm", "trust", "cascade", "dbn", "ubm"}
    assert result.test_sessions + result.train_sessions == log.num_sessions
    assert 0.2 < result.test_sessions / log.num_sessions < 0.3
    # Each score's perplexity is the mean over positions 1-10 of its per-position values.
    for score in result.scores:
        assert len(score.perplexity_by_position) == 10
        assert score.perplexity == pytest.approx(np.mean(score.perplexity_by_position))
        assert 1 < score.perplexity < 2


def test_dcm_click_probabilities_by_hand(tmp_path):
    # One session shows a, b, c, d and clicks b. a: no click above, looked at: P = g_a.
    # b: the same, P = g_b. c: after the click at b, with nothing between: looked at with
    # lambda / (1 - lambda + lambda) = lambda. d: after b and a skip of c: P(skip c) = 1 - g_c,
    # looked at with lambda (1 - g_c) / (1 - lambda + lambda (1 - g_c)).
    path = tmp_path / "log.parquet"
    rows = [(7, "q", "c", 3, 0), (7, "q", "a", 1, 0), (7, "q", "d", 4, 0), (7, "q", "b", 2, 1)]
    names = ["session", "qid", "doc_id", "position", "click"]
    pq.write_table(pa.table(dict(zip(names, zip(*rows, strict=True), strict=True))), path)
    log = read_log(path)
    g = dict(zip("abcd", (0.2, 0.6, 0.5, 0.9), strict=True))
    gamma = np.array([g[d] for d in log.doc_ids])
    lam = 0.4
    p = cascade_probabilities(log, gamma, lam)
    looked_d = lam * 0.5 / (1 - lam + lam * 0.5)
    expected = {"a": 0.2, "b": 0.6, "c": lam * 0.5, "d": looked_d * 0.9}
    for row, doc in enumerate(log.doc_ids[log.doc]):
        assert p[row] == pytest.approx(expected[doc]), doc


def test_relevance_given_the_propensities_is_the_likelihood_maximum():
    # One document at positions 1 and 2 under theta = (1, 1/2): the PBM likelihood is maximal
    # where 3/g - 1/(1 - g) - 4 (1/2)/(1 - g/2) = 0 (3 of 4 clicked at 1, 1 of 5 at 2):
    # sum of c/g - (n - c) theta/(1 - theta g) = (3 + 1)/g - 1/(1-g) - 4 (1/2)/(1 - g/2).
    from scipy.optimize import brentq

    counts = Counts(np.array([0, 0]), np.array([1, 2]), np.array([4, 5]), np.array([3, 1]))
    g = relevance_given(counts, Propensity.formula(1.0), tol=1e-12, max_iter=100_000)

    def score(x):
        return 4 / x - 1 / (1 - x) - 4 * 0.5 / (1 - 0.5 * x)

    assert g[0] == pytest.approx(brentq(score, 1e-9, 1 - 1e-9), abs=1e-6)
    # Without position bias every impression is looked at, so relevance is the click rate, and
    # with 2 pseudo-impressions at 0.5 it is (4 + 1) / (9 + 2).
    flat = relevance_given(counts, Propensity.formula(0.0), pseudo=2.0, prior=0.5)
    assert flat[0] == pytest.approx(5 / 11)
    # Trust bias: a click rate beta_k of irrelevant documents is credited to them first; with
    # alpha = 0.5 and beta = 0.25 at every position, 0.5 g + 0.25 = 4/9 clicked gives g = 7/18.
    trust = Propensity(method="em", click_model="trust", theta=[0.5, 0.5], beta=[0.25, 0.25],
                       tail_eta=0.0)  # fmt: skip
    counts = Counts(np.array([0, 0]), np.array([1, 2]), np.array([4, 5]), np.array([3, 1]))
    assert relevance_given(counts, trust, tol=1e-12, max_iter=100_000)[0] == pytest.approx(
        (4 / 9 - 0.25) / 0.5, abs=1e-6
    )


def test_scores_by_hand_on_a_known_model(tmp_path):
    # Held-out perplexity at a position is 2 ** -(mean log2 P(observed)); for a model that
    # predicts the truth, the log-likelihood's expectation is minus the clicks' entropy.
    data, scores = judged_lists(100, 5, seed=9)
    model = PositionBasedModel(eta=0.0, noise=0.5)  # no position bias: every click rate 0.5-1
    log = simulated_log(tmp_path, data, scores, model, sessions=100)
    result = compare_click_models(log, models=("pbm",))
    (score,) = result.scores
    grades = data.labels.astype(float)
    rates = model.attractiveness(grades)
    entropy = -(rates * np.log(rates) + (1 - rates) * np.log(np.maximum(1 - rates, 1e-300)))
    assert score.log_likelihood == pytest.approx(-entropy.mean(), abs=0.02)
    assert score.perplexity == pytest.approx(math.exp(entropy.mean()), abs=0.03)


def test_compare_refuses_what_it_cannot_do(tmp_path):
    data, scores = judged_lists(10, 5, seed=9)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(), sessions=4)
    with pytest.raises(ConfigError, match="must be among"):
        compare_click_models(log, models=("ccm",))
    for share in (0.0, 1.0):
        with pytest.raises(ConfigError, match="no session"):
            compare_click_models(log, test_share=share)
