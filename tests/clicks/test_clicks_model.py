"""The click model and the simulator, checked against the position-based model's formulas."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.clicks.log import read_log
from ltr.clicks.model import CascadeModel, PositionBasedModel, TrustBiasModel
from ltr.clicks.simulate import logging_scores, rank_sessions, simulate_clicks
from ltr.errors import ConfigError, DataFormatError

from .conftest import judged_lists


def test_examination_and_attractiveness_by_hand():
    m = PositionBasedModel(eta=2.0, noise=0.1, max_grade=2)
    np.testing.assert_allclose(m.examination([1, 2, 3]), [1, 1 / 4, 1 / 9])
    # noise + (1 - noise)(2^y - 1)/(2^2 - 1)
    np.testing.assert_allclose(m.attractiveness([0, 1, 2]), [0.1, 0.1 + 0.9 / 3, 1.0])
    np.testing.assert_allclose(m.click_probability([3], [1]), [(0.1 + 0.3) / 9])
    assert PositionBasedModel(eta=0).examination([7])[0] == 1.0
    for bad in ({"eta": -1}, {"noise": 1.0}, {"noise": -0.1}, {"max_grade": 0}):
        with pytest.raises(ConfigError):
            PositionBasedModel(**bad)


def test_trust_bias_model_by_hand():
    m = TrustBiasModel(eta=1.0, false_click=0.6, max_grade=2)
    # eps+_k = 1 - (min(k, 20) + 1)/100; eps-_k = 0.6 / min(k, 10)
    np.testing.assert_allclose(m.eps_plus([1, 2, 20, 30]), [0.98, 0.97, 0.79, 0.79])
    np.testing.assert_allclose(m.eps_minus([1, 3, 10, 30]), [0.6, 0.2, 0.06, 0.06])
    np.testing.assert_allclose(m.relevance([0, 1, 2]), [0, 1 / 3, 1])
    # position 3, grade 1: (1/3) * (0.96 * 1/3 + 0.2 * 2/3)
    np.testing.assert_allclose(m.click_probability([3], [1]), [(0.32 + 0.4 / 3) / 3])
    np.testing.assert_allclose(m.alpha([2]), [0.5 * (0.97 - 0.3)])
    np.testing.assert_allclose(m.beta([2]), [0.5 * 0.3])
    assert TrustBiasModel(eta=2).examination([3])[0] == pytest.approx(1 / 9)
    for bad in ({"eta": -1}, {"false_click": 0.98}, {"false_click": -0.1}, {"max_grade": 0}):
        with pytest.raises(ConfigError):
            TrustBiasModel(**bad)


@pytest.mark.parametrize("read_on", [0.0, 0.4, 1.0])
def test_cascade_clicks_follow_the_dcm_formula(read_on):
    # A reader reaches position k unless a click above ended the session: each document above
    # lets them through with probability 1 - eps_j (1 - lambda), so
    # P(click at k) = eps_k * prod over j < k of (1 - eps_j (1 - lambda)).
    m = CascadeModel(continue_after_click=read_on, noise=0.1, max_grade=2)
    grades = np.array([2, 0, 1, 2, 0])
    eps = 0.1 + 0.9 * (2.0**grades - 1) / 3
    reach = np.cumprod(np.r_[1.0, 1 - eps[:-1] * (1 - read_on)])
    clicks = m.clicks(np.tile(grades, (200_000, 1)), np.random.default_rng(0))
    np.testing.assert_allclose(clicks.mean(axis=0), eps * reach, atol=0.004)
    if read_on == 0:  # the cascade model: one click at most
        assert clicks.sum(axis=1).max() == 1
    for bad in ({"continue_after_click": 1.5}, {"continue_after_click": -0.1}, {"noise": 1.0}):
        with pytest.raises(ConfigError):
            CascadeModel(**bad)


def _pbm_click_rate(position, grade):
    return (1 / position) * (0.1 + 0.9 * (2**grade - 1) / 3)


def _trust_click_rate(position, grade):
    r = (2**grade - 1) / 3
    plus, minus = 1 - (min(position, 20) + 1) / 100, 0.65 / min(position, 10)
    return (1 / position) * (plus * r + minus * (1 - r))


@pytest.mark.parametrize(
    "model, click_rate",
    [
        (PositionBasedModel(eta=1.0, noise=0.1, max_grade=2), _pbm_click_rate),
        (TrustBiasModel(eta=1.0, false_click=0.65, max_grade=2), _trust_click_rate),
    ],
    ids=["pbm", "trust"],
)
def test_click_rates_by_position_and_grade_follow_the_model(tmp_path, model, click_rate):
    data, scores = judged_lists(30, 6)
    simulate_clicks(
        data, scores, tmp_path / "log.parquet", model=model, sessions=1500, progress=False
    )
    table = pq.read_table(tmp_path / "log.parquet").to_pandas()
    grade = dict(
        zip(zip(data.qids[data.query_of_row], data.doc_ids, strict=True), data.labels, strict=True)
    )
    table["grade"] = [grade[(q, d)] for q, d in zip(table.qid, table.doc_id, strict=True)]
    cells = table.groupby(["position", "grade"]).click.agg(["mean", "count"])
    assert len(cells) >= 15  # most (position, grade) pairs occur
    for (position, g), row in cells.iterrows():
        p = click_rate(position, g)
        sd = math.sqrt(p * (1 - p) / row["count"])
        assert abs(row["mean"] - p) < 4.5 * sd + 1e-9, (position, g, row["mean"], p)


def test_rankings_follow_the_scores_at_temperature_zero(tmp_path):
    data, scores = judged_lists(5, 7)
    model = PositionBasedModel()
    simulate_clicks(
        data,
        scores,
        tmp_path / "log.parquet",
        model=model,
        sessions=3,
        temperature=0,
        progress=False,
    )
    log = pq.read_table(tmp_path / "log.parquet").to_pandas()
    for q in range(5):
        rows = slice(data.offsets[q], data.offsets[q + 1])
        expected = list(data.doc_ids[rows][np.argsort(-scores[rows])])
        for _, session in log[log.qid == f"q{q}"].groupby("session"):
            assert list(session.sort_values("position").doc_id) == expected


def test_temperature_sampling_puts_documents_first_by_softmax():
    scores = np.array([2.0, 0.5, -1.0, 0.0])
    z = (scores - scores.mean()) / scores.std()
    for temperature in (0.5, 2.0):
        first = rank_sessions(scores, 40_000, temperature, np.random.default_rng(0))[:, 0]
        freq = np.bincount(first, minlength=4) / len(first)
        expected = np.exp(z / temperature) / np.exp(z / temperature).sum()
        np.testing.assert_allclose(freq, expected, atol=4.5 * np.sqrt(0.25 / len(first)))


def test_top_k_seeds_and_metadata(tmp_path):
    data, scores = judged_lists(4, 9)
    model = PositionBasedModel(eta=1.5)

    def run(name, seed):
        simulate_clicks(
            data,
            scores,
            tmp_path / name,
            model=model,
            sessions=50,
            top_k=3,
            seed=seed,
            progress=False,
        )
        return pq.read_table(tmp_path / name)

    a, b, c = run("a.parquet", 7), run("b.parquet", 7), run("c.parquet", 8)
    assert a.equals(b) and not a.equals(c)
    assert a.num_rows == 4 * 50 * 3 and max(a.column("position").to_pylist()) == 3
    log = read_log(tmp_path / "a.parquet")
    assert log.simulation["eta"] == 1.5 and log.simulation["top_k"] == 3
    assert list(log.sessions_per_query()) == [50] * 4


def test_simulation_refuses_what_it_cannot_do(tmp_path):
    data, scores = judged_lists(2, 3, with_doc_ids=False)
    with pytest.raises(DataFormatError, match="without a document id"):
        simulate_clicks(data, scores, tmp_path / "x.parquet", model=PositionBasedModel())
    data, scores = judged_lists(2, 3)
    with pytest.raises(ConfigError, match="max_grade"):
        simulate_clicks(data, scores, tmp_path / "x.parquet", model=PositionBasedModel(max_grade=1))
    with pytest.raises(ConfigError, match="sessions"):
        simulate_clicks(
            data, scores, tmp_path / "x.parquet", model=PositionBasedModel(), sessions=0
        )
    scores[1] = np.nan
    with pytest.raises(DataFormatError, match="row 1"):
        simulate_clicks(data, scores, tmp_path / "x.parquet", model=PositionBasedModel())
    with pytest.raises(ConfigError, match=r"no feature 'f25'.*named a, b, c"):
        logging_scores(data, feature="f25")
    assert not (tmp_path / "x.parquet").exists()


def test_logging_scores_join_a_scores_table():
    import pyarrow as pa

    data, _ = judged_lists(2, 3)
    qids = list(data.qids[data.query_of_row])
    table = pa.table(
        {"qid": qids[::-1], "doc_id": list(data.doc_ids)[::-1], "score": np.arange(6.0)[::-1]}
    )
    np.testing.assert_array_equal(logging_scores(data, scores=table), np.arange(6.0))
    with pytest.raises(DataFormatError, match="no logging score for document 'd2' of query 'q1'"):
        logging_scores(data, scores=table.slice(1))
    with pytest.raises(DataFormatError, match="no 'score' column"):
        logging_scores(data, scores=table.drop_columns(["score"]))
