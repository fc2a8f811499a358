"""The user browsing model: its simulator against its formula, its EM fit against a general
optimiser's maximum of the likelihood, and what the fit recovers from simulated users."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.optimize import minimize

from ltr.clicks.labels import click_labels
from ltr.clicks.log import aggregate, read_log
from ltr.clicks.model import BrowsingModel
from ltr.clicks.propensity import estimate_em
from ltr.clicks.ubm import _cell, estimate_ubm, last_click_above
from ltr.errors import DataFormatError

from .conftest import judged_lists, pair_grades, simulated_log


def _write_log(path, sessions: list[list[tuple[str, int]]]) -> None:
    """A log of one query whose sessions show (doc_id, click) pairs in order, rows shuffled."""
    rows = [
        (s, "q", doc, k + 1, click)
        for s, shown in enumerate(sessions)
        for k, (doc, click) in enumerate(shown)
    ]
    order = np.random.default_rng(0).permutation(len(rows))
    columns = list(zip(*[rows[i] for i in order], strict=True))
    names = ["session", "qid", "doc_id", "position", "click"]
    pq.write_table(pa.table(dict(zip(names, columns, strict=True))), path)


def test_last_click_above_by_hand(tmp_path):
    _write_log(
        tmp_path / "log.parquet",
        [
            [("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 0)],
            [("b", 1), ("a", 1), ("c", 0)],
            [("c", 0), ("d", 0)],
            [("d", 0), ("a", 1)],
        ],
    )
    log = read_log(tmp_path / "log.parquet")
    above = last_click_above(log)
    # Sessions by the document they show first (the log numbers them its own way).
    first = {
        int(s): log.doc_ids[d]
        for s, d, k in zip(log.session, log.doc, log.position, strict=True)
        if k == 1
    }
    expected = {
        ("a", 1): 0, ("a", 2): 0, ("a", 3): 2, ("a", 4): 2, ("a", 5): 4,
        ("b", 1): 0, ("b", 2): 1, ("b", 3): 2,
        ("c", 1): 0, ("c", 2): 0,
        ("d", 1): 0, ("d", 2): 0,
    }  # fmt: skip
    got = {
        (first[int(s)], int(k)): int(a)
        for s, k, a in zip(log.session, log.position, above, strict=True)
    }
    assert got == expected
    # Each click's probability is a_d g(k, column): column 0 below no click, else k - l.
    fit = estimate_ubm(log, pool_after=None)
    column = [0 if expected[key] == 0 else key[1] - expected[key] for key in got]
    hand = [
        fit.attractiveness[d] * fit.examination[k - 1, c]
        for d, k, c in zip(log.doc, log.position, column, strict=True)
    ]
    np.testing.assert_allclose(fit.probabilities(log), hand, rtol=1e-12)


def test_the_simulator_follows_the_formula():
    # The third document is always attractive: it is clicked exactly when examined, with
    # probability 1 right below a click, (1/2)^eta two below one and (1/3)^eta below none.
    model = BrowsingModel(eta=1.5, noise=0.3)
    sessions = 200_000
    grades = np.tile([1.0, 1.0, 2.0], (sessions, 1))
    clicks = model.clicks(grades, np.random.default_rng(0))
    a = model.attractiveness(np.array([1.0, 1.0, 2.0]))
    assert a[2] == 1.0
    one, two, three = clicks.T
    assert three[two].all()
    cases = [
        (one, two, a[1]),
        (~one, two, a[1] * 0.5**1.5),
        (one & ~two, three, 0.5**1.5),
        (~one & ~two, three, (1 / 3) ** 1.5),
    ]
    for given, outcome, rate in cases:
        sd = np.sqrt(rate * (1 - rate) / given.sum())
        assert abs(outcome[given].mean() - rate) < 4 * sd, (outcome[given].mean(), rate)
    with pytest.raises(ValueError, match="above it"):
        model.examination(np.array([2]), np.array([2]))


def _log_likelihood(log, g_table: np.ndarray, a: np.ndarray, buckets: np.ndarray) -> float:
    row, column = _cell(buckets, log.position, last_click_above(log))
    p = g_table[row, column] * a[log.doc]
    return float(np.where(log.click == 1, np.log(p), np.log1p(-p)).sum())


@pytest.mark.parametrize("pseudo", [0.0, 3.0])
def test_em_reaches_the_maximum_a_general_optimiser_finds(tmp_path, pseudo):
    data, scores = judged_lists(6, 4, seed=3)
    log = simulated_log(tmp_path, data, scores, BrowsingModel(eta=1.0), sessions=300)
    prior = np.linspace(0.2, 0.6, len(log.doc_ids))
    fit = estimate_ubm(log, pseudo=pseudo, prior=prior, pool_after=None, tol=1e-10)
    assert fit.converged
    # The objective over the cells the log shows (the top held at 1) and the attractiveness,
    # maximised by L-BFGS-B from the middle of the box.
    shown = fit.cell_impressions > 0
    free = shown.copy()
    free[0, 0] = False
    size = len(log.doc_ids)

    def objective(x: np.ndarray) -> float:
        g = np.ones(fit.examination.shape)
        g[free] = x[: free.sum()]
        a = x[free.sum() :]
        value = _log_likelihood(log, g, a, fit.buckets)
        value += pseudo * float((prior * np.log(a) + (1 - prior) * np.log1p(-a)).sum())
        return -value

    start = np.full(int(free.sum()) + size, 0.5)
    best = minimize(
        objective, start, method="L-BFGS-B", bounds=[(1e-9, 1 - 1e-9)] * len(start),
        options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-10},
    )  # fmt: skip
    ours = -objective(np.r_[fit.examination[free], np.clip(fit.attractiveness, 1e-9, 1 - 1e-9)])
    assert ours >= -best.fun - 1e-6
    assert ours - (-best.fun) < 1e-3  # the same maximum, not a better one by a bug
    np.testing.assert_allclose(fit.examination[free], best.x[: free.sum()], atol=2e-3)
    np.testing.assert_allclose(fit.attractiveness, best.x[free.sum() :], atol=2e-3)
    assert fit.examination[0, 0] == 1.0
    # A cell the log never shows takes its column's impression-weighted mean.
    filled = 0
    for c in range(shown.shape[1]):
        if (~shown[:, c]).any() and shown[:, c].any():
            weights = fit.cell_impressions[:, c][shown[:, c]]
            mean = (fit.examination[:, c][shown[:, c]] * weights).sum() / weights.sum()
            np.testing.assert_allclose(fit.examination[:, c][~shown[:, c]], mean)
            filled += 1
    assert filled


def test_squarem_reaches_plain_ems_fit_in_fewer_steps(tmp_path):
    data, scores = judged_lists(30, 8, seed=5)
    log = simulated_log(tmp_path, data, scores, BrowsingModel(eta=1.0), sessions=40)
    fast = estimate_ubm(log, tol=1e-9)
    slow = estimate_ubm(log, tol=1e-9, accelerate=False, max_iter=50_000)
    assert fast.converged and slow.converged
    assert fast.iterations < slow.iterations / 2
    np.testing.assert_allclose(fast.attractiveness, slow.attractiveness, atol=1e-5)
    np.testing.assert_allclose(fast.examination, slow.examination, atol=1e-5)


def test_recovers_the_users_attention_and_beats_position_propensities(tmp_path):
    model = BrowsingModel(eta=1.0)
    data, scores = judged_lists(200, 8, seed=7)
    log = simulated_log(tmp_path, data, scores, model, sessions=200)
    fit = estimate_ubm(log)
    assert fit.converged
    k = np.arange(1, 9)
    # Below nothing clicked: (1/k)^eta; below a click at distance d: (1/d)^eta.
    np.testing.assert_allclose(fit.examination[:, 0], model.examination(k, 0 * k), atol=0.04)
    for row in range(1, 8):
        d = np.arange(1, row + 1)
        truth = model.examination(np.full(row, row + 1), row + 1 - d)
        np.testing.assert_allclose(fit.examination[row, d], truth, atol=0.06)
    truth = model.attractiveness(pair_grades(log, data))
    error = np.abs(fit.labels - truth)
    assert error.max() < 0.15
    # IPS with the PBM's propensities cannot see that a click lifts attention below it.
    ips = click_labels(log, estimate_em(aggregate(log)))
    assert ((fit.labels - truth) ** 2).mean() < 0.5 * ((ips - truth) ** 2).mean()


def test_refuses_a_log_it_cannot_fit(tmp_path):
    data, scores = judged_lists(5, 4, seed=1)
    log = simulated_log(tmp_path, data, scores, BrowsingModel(), sessions=20, top_k=1)
    with pytest.raises(DataFormatError, match="one \\(position, distance"):
        estimate_ubm(log)
    no_clicks = simulated_log(tmp_path, data, scores, BrowsingModel(noise=0.0), sessions=3)
    if no_clicks.click.any():  # judged_lists has relevant documents; make a log without any
        data.labels[:] = 0
        no_clicks = simulated_log(tmp_path, data, scores, BrowsingModel(noise=0.0), sessions=3)
    with pytest.raises(DataFormatError, match="no click"):
        estimate_ubm(no_clicks)
