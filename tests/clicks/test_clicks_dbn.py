"""The dynamic Bayesian network: its simulated users against the model's formula, its E-step and
click predictions against an enumeration of every hidden path, and its EM against the truth of
simulated sessions and against the DCM's EM, which it contains."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.clicks.cascade import estimate_cascade
from ltr.clicks.dbn import dbn_probabilities, estimate_dbn, expectations, sessions_of
from ltr.clicks.log import read_log
from ltr.clicks.model import CascadeModel, DynamicBayesianModel
from ltr.errors import ConfigError, DataFormatError

from .conftest import judged_lists, pair_grades, simulated_log


def _log(path, rows):
    names = ["session", "qid", "doc_id", "position", "click"]
    pq.write_table(pa.table(dict(zip(names, zip(*rows, strict=True), strict=True))), path)
    return read_log(path)


@pytest.mark.parametrize("perseverance", [0.6, 1.0])
def test_dbn_clicks_follow_the_model(perseverance):
    # The chance of reading position k: P(E_1) = 1 and P(E_k+1) = gamma P(E_k) (1 - eps_k s_k),
    # since a reader goes on unless a click satisfied them, and then only with gamma.
    m = DynamicBayesianModel(perseverance=perseverance, noise=0.1, max_grade=2)
    grades = np.array([1, 0, 2, 1, 0, 2])
    eps = 0.1 + 0.9 * (2.0**grades - 1) / 3
    sat = (2.0**grades - 1) / 3
    reach = np.cumprod(np.r_[1.0, perseverance * (1 - eps[:-1] * sat[:-1])])
    clicks = m.clicks(np.tile(grades, (200_000, 1)), np.random.default_rng(0))
    np.testing.assert_allclose(clicks.mean(axis=0), eps * reach, atol=0.004)
    # A grade-2 document satisfies every click on it: nothing is clicked after one.
    first_top = np.argmax(clicks & (grades == 2), axis=1)
    clicked_top = (clicks & (grades == 2)).any(axis=1)
    after = np.arange(len(grades)) > first_top[:, None]
    assert not (clicks & after)[clicked_top].any()
    for bad in ({"perseverance": 0.0}, {"perseverance": 1.2}, {"noise": 1.0}):
        with pytest.raises(ConfigError):
            DynamicBayesianModel(**bad)


def _enumerate(a, s, gamma):
    """Every hidden path of one session shown documents with attractiveness ``a`` and
    satisfaction ``s``: ``{clicks: [probability, examined, satisfied, read on, chances]}``
    summed over the paths that give those clicks."""
    m = len(a)
    out: dict[tuple, list] = {}
    for bits in itertools.product((0, 1), repeat=3 * m):
        attracted, satisfies, goes_on = bits[:m], bits[m : 2 * m], bits[2 * m :]
        p = math.prod(
            (a[j] if attracted[j] else 1 - a[j])
            * (s[j] if satisfies[j] else 1 - s[j])
            * (gamma if goes_on[j] else 1 - gamma)
            for j in range(m)
        )
        reading, clicks, looked, happy, read_on, chances = True, [], [], [], 0, 0
        for j in range(m):
            click = reading and attracted[j]
            clicks.append(int(click))
            looked.append(float(reading))
            happy.append(float(click and satisfies[j]))
            unsatisfied = reading and not (click and satisfies[j])
            if unsatisfied and j < m - 1:
                chances += 1
                read_on += goes_on[j]
            reading = unsatisfied and goes_on[j]
        acc = out.setdefault(tuple(clicks), [0.0, np.zeros(m), np.zeros(m), 0.0, 0.0])
        acc[0] += p
        acc[1] += p * np.array(looked)
        acc[2] += p * np.array(happy)
        acc[3] += p * read_on
        acc[4] += p * chances
    return out


def _random_sessions(tmp_path, rng):
    """Sessions of 1 to 4 of six documents, with and without clicks, written in a shuffled
    order: the log and, per session, its rows of the log in shown order and its clicks."""
    rows, sessions = [], []
    for session, length in enumerate((3, 1, 4, 2, 4, 3, 4, 2, 1)):
        shown = rng.permutation(list("abcdef"))[:length]
        clicks = (rng.random(length) < 0.4).astype(int)
        rows += [
            (session, "q", d, k + 1, c) for k, (d, c) in enumerate(zip(shown, clicks, strict=True))
        ]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    log = _log(tmp_path / "log.parquet", rows)  # row i of the log is rows[i]
    for session in range(9):
        mine = sorted((r[3], i) for i, r in enumerate(rows) if r[0] == session)
        at = [i for _, i in mine]
        sessions.append((at, tuple(int(log.click[i]) for i in at)))
    return log, sessions


def _enumerated(log, sessions, a, s, gamma):
    """The DBN's posteriors and predictions for ``log`` by enumeration: per log row P(examined),
    P(satisfied) and P(click | clicks above); summed read-ons, chances and log-likelihood."""
    examined, satisfied, predicted = (np.zeros(len(log)) for _ in range(3))
    read_on = chances = log_likelihood = 0.0
    for at, clicks in sessions:
        paths = _enumerate(a[log.doc[at]], s[log.doc[at]], gamma)
        p, looked, happy, on, chance = paths[clicks]
        examined[at], satisfied[at] = looked / p, happy / p
        read_on, chances = read_on + on / p, chances + chance / p
        log_likelihood += math.log(p)
        for k, i in enumerate(at):  # P(clicks above, click) / P(clicks above)
            mass = [
                sum(v[0] for key, v in paths.items() if key[: k + 1] == (*clicks[:k], c))
                for c in (0, 1)
            ]
            predicted[i] = mass[1] / (mass[0] + mass[1])
    return examined, satisfied, predicted, read_on, chances, log_likelihood


@pytest.mark.parametrize("seed", [3, 4, 5, 7])
def test_e_step_and_predictions_match_an_enumeration_of_every_hidden_path(tmp_path, seed):
    # Random parameters; the exact posteriors are sums over every path of attracted /
    # satisfied / reads on at each position (the E-step lays sessions out longest first).
    # The seeds give sessions without a click, with a last click at the end and above it, and
    # with more than one click.
    rng = np.random.default_rng(seed)
    log, sessions = _random_sessions(tmp_path, rng)
    clicks = [c for _, c in sessions]
    assert any(sum(c) == 0 for c in clicks) and any(sum(c) > 1 for c in clicks)
    assert any(c[-1] for c in clicks) and any(sum(c) and not c[-1] for c in clicks)
    a, s, gamma = rng.uniform(0.05, 0.95, 6), rng.uniform(0.0, 1.0, 6), 0.7
    examined, satisfied, predicted, read_on, chances, log_likelihood = _enumerated(
        log, sessions, a, s, gamma
    )
    laid = sessions_of(log)
    e = expectations(laid, a, s, gamma)
    np.testing.assert_allclose(e.examined, examined[laid.rows], rtol=1e-9)
    np.testing.assert_allclose(e.satisfied, satisfied[laid.rows], rtol=1e-9, atol=1e-12)
    assert e.read_on == pytest.approx(read_on, rel=1e-9)
    assert e.chances == pytest.approx(chances, rel=1e-9)
    assert e.log_likelihood == pytest.approx(log_likelihood, rel=1e-9)
    np.testing.assert_allclose(dbn_probabilities(log, a, s, gamma), predicted, rtol=1e-9)


def test_one_em_step_is_the_m_step_of_the_enumerated_posteriors(tmp_path):
    # EM starts from a = s = gamma = 1/2; its first step is clicks over expected examinations,
    # expected satisfying clicks over clicks, and expected reads on over chances to read on;
    # with pseudo-counts, (x + pseudo * prior) / (n + pseudo) of each.
    log, sessions = _random_sessions(tmp_path, np.random.default_rng(5))
    half = np.full(6, 0.5)
    examined, satisfied, _, read_on, chances, _ = _enumerated(log, sessions, half, half, 0.5)
    clicks = np.bincount(log.doc, weights=log.click, minlength=6)
    looked = np.bincount(log.doc, weights=examined, minlength=6)
    happy = np.bincount(log.doc, weights=satisfied, minlength=6)
    fit = estimate_dbn(log, max_iter=1)
    np.testing.assert_allclose(fit.attractiveness, clicks / looked, rtol=1e-9)
    np.testing.assert_allclose(
        fit.satisfaction, np.divide(happy, clicks, out=np.zeros(6), where=clicks > 0), atol=1e-12
    )
    assert fit.perseverance == pytest.approx(read_on / chances, rel=1e-9)
    np.testing.assert_allclose(fit.labels, fit.attractiveness * fit.satisfaction)
    assert fit.iterations == 1 and not fit.converged
    shrunk = estimate_dbn(
        log, max_iter=1, pseudo=2.0, prior_attractiveness=0.3, prior_satisfaction=0.6
    )
    np.testing.assert_allclose(shrunk.attractiveness, (clicks + 0.6) / (looked + 2), rtol=1e-9)
    np.testing.assert_allclose(shrunk.satisfaction, (happy + 1.2) / (clicks + 2), rtol=1e-9)
    held = estimate_dbn(log, max_iter=1, perseverance=0.5)
    assert held.perseverance == 0.5
    np.testing.assert_allclose(held.attractiveness, fit.attractiveness)


@pytest.mark.parametrize("perseverance", [0.7, 1.0])
def test_dbn_em_recovers_the_simulated_users(tmp_path, perseverance):
    # gamma within 0.03; each grade's mean label within 0.04 of eps(y) sigma(y) (at gamma 0.7
    # the lower grades read about 0.03 high: a satisfaction is a share of a document's few
    # clicks, and cannot fall below 0); and the labels are far nearer the truth than the DCM's,
    # which cannot tell a click that ended the search from one that did not.
    model = DynamicBayesianModel(perseverance=perseverance)
    data, scores = judged_lists(300, 10, seed=4)
    log = simulated_log(tmp_path, data, scores, model, sessions=100)
    grades = pair_grades(log, data)
    truth = model.attractiveness(grades) * model.satisfaction(grades)
    fit = estimate_dbn(log)
    assert fit.converged
    assert fit.perseverance == pytest.approx(perseverance, abs=0.03)
    for grade in (0, 1, 2):
        assert fit.labels[grades == grade].mean() == pytest.approx(
            model.attractiveness(grade) * model.satisfaction(grade), abs=0.04
        )
    dcm = estimate_cascade(log).labels
    assert ((fit.labels - truth) ** 2).mean() < 0.5 * ((dcm - truth) ** 2).mean()


def test_accelerated_em_reaches_plain_em_in_fewer_steps(tmp_path):
    # SQUAREM only changes the path: the fit (and its likelihood) is plain EM's, in fewer steps.
    data, scores = judged_lists(100, 8, seed=8)
    log = simulated_log(tmp_path, data, scores, DynamicBayesianModel(0.8), sessions=40)
    fast, plain = estimate_dbn(log), estimate_dbn(log, accelerate=False)
    assert fast.converged and plain.converged
    assert fast.iterations < 0.5 * plain.iterations
    assert fast.perseverance == pytest.approx(plain.perseverance, abs=1e-4)
    np.testing.assert_allclose(fast.labels, plain.labels, atol=2e-4)
    laid = sessions_of(log)
    fits = [
        expectations(laid, f.attractiveness, f.satisfaction, f.perseverance) for f in (fast, plain)
    ]
    assert fits[0].log_likelihood == pytest.approx(fits[1].log_likelihood, abs=1e-3)


def test_with_perseverance_held_at_1_the_dbn_contains_the_dcm(tmp_path):
    # On a DCM log (nobody gives up; a click ends the session with probability 1 - lambda
    # whatever the document), the DBN with gamma = 1 finds the DCM's labels as attractiveness
    # (up to each document's own satisfaction, read from its few clicks where the DCM has one
    # lambda for all) and a satisfaction per click of 1 - lambda.
    data, scores = judged_lists(200, 8, seed=6)
    log = simulated_log(tmp_path, data, scores, CascadeModel(continue_after_click=0.4), sessions=60)
    dbn = estimate_dbn(log, perseverance=1.0)
    dcm = estimate_cascade(log)
    assert dbn.perseverance == 1.0 and dbn.converged
    clicks = np.bincount(log.doc, weights=log.click, minlength=len(log.doc_ids))
    apart = np.abs(dbn.attractiveness - dcm.labels)
    assert apart.mean() < 0.01 and np.median(apart[clicks > 0]) < 0.002
    assert np.corrcoef(dbn.attractiveness, dcm.labels)[0, 1] > 0.998
    mean_s = np.average(dbn.satisfaction, weights=clicks)  # per click, as the DCM's lambda
    assert mean_s == pytest.approx(1 - dcm.continue_after_click, abs=0.005)


def test_dbn_em_refuses_what_it_cannot_do(tmp_path):
    log = _log(tmp_path / "log.parquet", [(1, "q", "x", 1, 0), (1, "q", "y", 2, 0)])
    with pytest.raises(DataFormatError, match="no click"):
        estimate_dbn(log)
    for bad in (0.0, 1.2):
        with pytest.raises(ConfigError, match=r"\(0, 1\]"):
            estimate_dbn(log, perseverance=bad)
