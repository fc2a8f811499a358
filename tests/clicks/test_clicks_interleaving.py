"""Interleaving end to end: ``ltr serve --challenger`` answers with the team-draft interleaving
of two models' rankings, simulated users click on it (``ltr clicks simulate --server``), and
``ltr clicks interleaving`` names the model users prefer, with the credit counted by hand."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.artifact import save_linear_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.serve.client import RerankerClient, query_of
from ltr.serve.domain import ModelRef, RankedList, ValidQuery
from ltr.serve.impressions import ImpressionLog
from tests.serve._helpers import ServerProcess, make_artifact

BM25 = "f25"  # MQ2008's BM25 of the whole document


def test_users_prefer_bm25_to_its_reverse_and_the_credit_is_counted_right(
    tmp_path, mq2008_dir, capsys
):
    s5_path = mq2008_dir / "S5.txt.xz"
    s5 = load_dataset(s5_path)
    names = list(s5.feature_names)
    good = save_linear_model(tmp_path / "bm25", names, {BM25: 1.0})
    bad = save_linear_model(tmp_path / "reverse-bm25", names, {BM25: -1.0})
    impressions = tmp_path / "impressions"
    server = ServerProcess(
        tmp_path, good, "--backend", "torch", "--challenger", str(bad),
        "--impressions", str(impressions), "--impressions.flush_seconds", "600",
    ).wait_ready()  # fmt: skip
    try:
        assert "interleaved with reverse-bm25" in server.log()
        rival = ModelRef("reverse-bm25", "reverse-bm25")  # a local artifact: version = run id
        with RerankerClient(server.target) as client:
            assert client.model_info().challenger == rival
            ids = [str(d) for d in s5.doc_ids[s5[0].rows]]  # one more session, never clicked
            query = query_of(s5, 0, uses_initial_rank=False, ids=ids)
            assert client.rerank_query(query).challenger == rival
        truth, clicks = tmp_path / "truth.parquet", tmp_path / "clicks.csv"
        assert main(["clicks", "simulate", str(s5_path), "--server", server.target,
                     "--sessions", "12", "--top-k", "10", "--out", str(truth),
                     "--clicks-out", str(clicks), "--quiet"]) == 0  # fmt: skip
    finally:
        server.stop()  # SIGTERM writes the impression log

    log = pa.concat_tables(pq.read_table(p) for p in sorted(impressions.glob("*.parquet")))
    rows = log.to_pylist()
    assert {(r["challenger_name"], r["challenger_version"]) for r in rows} == {
        ("reverse-bm25", "reverse-bm25")  # a local artifact: its version is its run id
    }
    # every list is the team-draft interleaving of BM25 (team 0) and reverse BM25 (team 1)
    bm25 = dict(
        zip(zip(s5.qids[s5.query_of_row], s5.doc_ids, strict=True), s5.features[:, 24], strict=True)
    )
    sessions: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        sessions[r["session"]].append(r)
    for shown in sessions.values():
        shown.sort(key=lambda r: r["position"])
        qid = shown[0]["qid"]
        docs = {d: v for (q, d), v in bm25.items() if q == qid}
        by_team = (
            sorted(docs, key=lambda d: -docs[d]),  # ties: any order of the tied documents
            sorted(docs, key=lambda d: docs[d]),
        )
        teams = [r["team"] for r in shown]
        for t, r in enumerate(shown):
            above = {s["doc_id"] for s in shown[:t]}
            left = [d for d in by_team[r["team"]] if d not in above]
            best = docs[left[0]]
            assert docs[r["doc_id"]] == best  # its team's best (by value: ties are equal)
            assert abs(teams[: t + 1].count(0) - teams[: t + 1].count(1)) <= 1
            assert r["score"] == pytest.approx(docs[r["doc_id"]], abs=1e-6)  # the model's score

    # the credit, counted by hand from what the users did and who placed it
    team_of = {(r["session"], r["doc_id"]): r["team"] for r in rows}
    credit: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in pq.read_table(truth).to_pylist():
        if r["click"]:
            credit[r["session"]][team_of[(r["session"], r["doc_id"])]] += 1
    wins = [sum(c[0] > c[1] for c in credit.values()), sum(c[1] > c[0] for c in credit.values())]
    ties = sum(c[0] == c[1] for c in credit.values())

    assert (
        main(["clicks", "interleaving", str(impressions), "--clicks", str(clicks), "--json"]) == 0
    )
    (verdict,) = json.loads(capsys.readouterr().out)
    assert verdict["sessions"] == len(s5) * 12 + 1 == len(sessions)
    assert verdict["clicked_sessions"] == len(credit)
    assert [verdict["model_wins"], verdict["challenger_wins"], verdict["ties"]] == [*wins, ties]
    assert verdict["preference"] == pytest.approx((wins[1] + ties / 2) / len(credit) - 0.5)
    # users prefer BM25: about -0.13 +- 0.015 (the server's coins vary), z about 9
    assert verdict["preference"] < -0.05 and verdict["p_value"] < 1e-3
    assert main(["clicks", "interleaving", str(impressions), "--clicks", str(clicks)]) == 0
    assert "users preferred the model" in capsys.readouterr().out
    assert main(["clicks", "interleaving", str(impressions), "--clicks", str(clicks),
                 "--exit-code", "--json"]) == 1  # fmt: skip


def test_interleaving_refuses_a_challenger_of_other_features_and_logs_without_teams(
    tmp_path, mq2008_dir, capsys
):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = make_artifact(tmp_path / "model", s1, seed=1)
    other = save_linear_model(tmp_path / "three", ["a", "b", "c"], {"a": 1.0})
    server = ServerProcess(tmp_path, model, "--backend", "torch", "--challenger", str(other))
    with pytest.raises(RuntimeError, match="cannot interleave: the challenger"):
        server.wait_ready(timeout=120)
    assert server.proc.wait(timeout=60) != 0

    plain = tmp_path / "plain"  # a log of one list answered by the model alone
    log = ImpressionLog(plain, flush_seconds=60)
    query = ValidQuery("q", ["a", "b"], s1.features[:2], None, None, None)
    ranked = RankedList("q", ["a", "b"], np.zeros(2, np.float32), np.arange(2), ModelRef("m", "1"))
    assert log.record(query, ranked, tuple(s1.feature_names))
    log.close()
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("session,doc_id\nx,a\n")
    assert main(["clicks", "interleaving", str(plain), "--clicks", str(clicks)]) != 0
    assert "holds no interleaved lists" in capsys.readouterr().err


def test_the_verdict_of_a_hand_made_log_and_its_exit_code(tmp_path, capsys):
    """Ten interleaved sessions, the challenger's candidate clicked in 9 and both in 1: the
    challenger wins 9 to 0 with a tie (sign test p = 2 / 2**9), so --exit-code says 0; a log of
    two model pairs is refused with --exit-code."""

    def log_sessions(folder, challenger_version: str, count: int) -> list[str]:
        log = ImpressionLog(folder, rows_per_file=1000, flush_seconds=60)
        ids = []
        for k in range(count):
            query = ValidQuery(f"q{k}", ["a", "b"], np.ones((2, 3), np.float32), None, None, None)
            ranked = RankedList(
                f"q{k}", ["a", "b"], np.array([1.0, 0.5], np.float32), np.array([0, 1]),
                ModelRef("m", "1"), teams=np.array([0, 1], np.int8),
                challenger=ModelRef("c", challenger_version),
            )  # fmt: skip
            ids.append(log.record(query, ranked, ("x", "y", "z")))
        log.close()
        return ids

    sessions = log_sessions(tmp_path / "log", "2", 10)
    clicks = tmp_path / "clicks.csv"
    rows = [(s, "b") for s in sessions[:9]] + [(sessions[9], "a"), (sessions[9], "b")]
    clicks.write_text("session,doc_id\n" + "".join(f"{s},{d}\n" for s, d in rows))
    argv = ["clicks", "interleaving", str(tmp_path / "log"), "--clicks", str(clicks)]
    assert main([*argv, "--json", "--exit-code"]) == 0
    (verdict,) = json.loads(capsys.readouterr().out)
    assert (verdict["model"], verdict["challenger"]) == ("m 1", "c 2")
    assert [verdict["model_wins"], verdict["challenger_wins"], verdict["ties"]] == [0, 9, 1]
    assert verdict["preference"] == pytest.approx((9 + 0.5) / 10 - 0.5)
    assert verdict["p_value"] == pytest.approx(2 / 2**9)
    assert main([*argv, "--alpha", "0.001", "--exit-code"]) == 1  # not preferred at 0.001
    assert "no preference shown at the 0.001 level" in capsys.readouterr().out

    # sequential: with a = 1 (sd of the uniform prior, sqrt(1/12)) the Bayes factor of 9 wins to
    # 0 is B(10, 1) / B(1, 1) * 2**9 = 512 / 10, so the anytime p-value is 10 / 512
    uniform = ["--sequential", "--effect", str(math.sqrt(1 / 12))]
    assert main([*argv, *uniform, "--json", "--exit-code"]) == 0
    (verdict,) = json.loads(capsys.readouterr().out)
    assert verdict["anytime_p_value"] == pytest.approx(10 / 512)
    assert main([*argv, *uniform, "--alpha", "0.01", "--exit-code"]) == 1
    assert "no preference shown yet at the 0.01 level" in capsys.readouterr().out
    # the default effect, 0.05: a = (1 / (4 * 0.05**2) - 1) / 2 = 49.5
    assert main([*argv, "--sequential", "--json"]) == 0
    a = 49.5
    log_b = math.lgamma(9 + a) + math.lgamma(a) - math.lgamma(9 + 2 * a)
    log_b0 = 2 * math.lgamma(a) - math.lgamma(2 * a)
    (verdict,) = json.loads(capsys.readouterr().out)
    assert verdict["anytime_p_value"] == pytest.approx(math.exp(log_b0 - log_b) / 2**9)
    assert verdict["effect"] == 0.05
    assert main([*argv, "--effect", "0.1"]) == 2
    assert "pass it with --sequential" in capsys.readouterr().err
    assert main([*argv, "--sequential", "--effect", "0.5"]) == 2
    assert "the effect must be between 0 and 0.5" in capsys.readouterr().err

    log_sessions(tmp_path / "log", "3", 2)  # a second challenger version in the same folder
    assert main([*argv, "--exit-code"]) == 2
    assert "holds 2: c 2 against m 1; c 3 against m 1" in capsys.readouterr().err


def test_the_anytime_p_value_may_be_read_after_every_session():
    """Users with no preference, and the verdict read every 5 decided sessions up to 400: the
    sign test's p-value falls below 0.05 at some reading in far more than 5 % of 2,000 such
    experiments (peeking), the anytime p-value in at most 5 % (Ville's inequality; 3 sigma of
    slack for the draws). With a real preference (the challenger wins 60 % of decided
    sessions) the sequential test stops in most experiments, most of them well before the
    last reading."""
    from scipy.stats import binom

    from ltr.clicks.interleaving import Verdict

    rng = np.random.default_rng(7)
    runs, horizon, every = 2000, 400, 5
    looks = np.arange(every, horizon + 1, every)  # (K,)
    table: dict[tuple[int, int], float] = {}

    def anytime(won: int, lost: int) -> float:
        if (won, lost) not in table:
            table[(won, lost)] = Verdict("m", "c", 0, 0, lost, won, 0).anytime_p_value()
        return table[(won, lost)]

    def first_rejection(p_win: float, sequential: bool) -> np.ndarray:
        """Per experiment, the first reading (sessions decided) at p < 0.05; 0 = never."""
        wins = np.cumsum(rng.random((runs, horizon)) < p_win, axis=1)[:, looks - 1]  # (R, K)
        if sequential:
            p = np.vectorize(lambda w, n: anytime(int(w), int(n - w)))(wins, looks)
        else:  # two-sided sign test, symmetric: 2 P(X <= min(w, n - w))
            p = np.minimum(1.0, 2 * binom.cdf(np.minimum(wins, looks - wins), looks, 0.5))
        hit = p < 0.05
        return np.where(hit.any(axis=1), looks[hit.argmax(axis=1)], 0)

    sigma = math.sqrt(0.05 * 0.95 / runs)
    assert (first_rejection(0.5, sequential=False) > 0).mean() > 0.15  # peeking inflates it
    assert (first_rejection(0.5, sequential=True) > 0).mean() <= 0.05 + 3 * sigma
    stops = first_rejection(0.6, sequential=True)
    assert (stops > 0).mean() > 0.8
    assert np.median(stops[stops > 0]) < 0.7 * horizon  # about 215 of 400 sessions
