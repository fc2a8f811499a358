"""``ltr clicks simulate --server``: simulated users of a real ``ltr serve`` process, one Rerank
call per session. Its click log must be what ``ltr clicks join`` rebuilds from the server's
impression log and the clicks file, follow the click model's formula, and hold the same clicks
as the offline simulation on the same rankings."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from ltr.artifact import load_model
from ltr.cli import main
from ltr.clicks.log import read_log
from ltr.clicks.model import PositionBasedModel
from ltr.clicks.simulate import simulate_clicks
from ltr.data import load_dataset
from tests.serve._helpers import ServerProcess, free_port, make_artifact, offline_scores

SESSIONS, TOP_K = 20, 5


def rows_of(path) -> dict[tuple[str, str], tuple[str, int, int]]:
    """A click log as ``{(session, doc_id): (qid, position, click)}``."""
    return {
        (str(r["session"]), r["doc_id"]): (r["qid"], r["position"], r["click"])
        for r in pq.read_table(path).to_pylist()
    }


def by_pair(data, values) -> dict[tuple[str, str], float]:
    """``{(qid, doc_id): value}`` for every row of ``data``."""
    keys = zip(data.qids[data.query_of_row], data.doc_ids, strict=True)
    return dict(zip(keys, values, strict=True))


def sessions_in_order(path) -> list[list[dict]]:
    """The log's sessions in file order, each its rows in position order."""
    out: dict[str, list[dict]] = {}
    for r in pq.read_table(path).to_pylist():
        out.setdefault(str(r["session"]), []).append(r)
    return [sorted(rows, key=lambda r: r["position"]) for rows in out.values()]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, mq2008_dir):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    return make_artifact(tmp_path_factory.mktemp("served") / "model", s1, seed=3)


def test_users_of_a_live_server_make_the_log_that_join_rebuilds(
    artifact, mq2008_dir, tmp_path, capsys
):
    tmp = tmp_path
    # the impression log samples half of the lists: the others get no impression id
    server = ServerProcess(
        tmp, artifact, "--backend", "torch", "--impressions", str(tmp / "impressions"),
        "--impressions.sample", "0.5", "--impressions.flush_seconds", "600",
    ).wait_ready()  # fmt: skip
    try:
        _check_the_loop(server, artifact, mq2008_dir, tmp, capsys)
    finally:
        server.stop()


def _check_the_loop(server, artifact, mq2008_dir, tmp, capsys) -> None:
    s5_path = mq2008_dir / "S5.txt.xz"
    log, clicks = tmp / "log.parquet", tmp / "clicks.csv"
    assert main(["clicks", "simulate", str(s5_path), "--server", server.target,
                 "--sessions", str(SESSIONS), "--top-k", str(TOP_K), "--concurrency", "4",
                 "--out", str(log), "--clicks-out", str(clicks)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    s5 = load_dataset(s5_path)
    shown = np.minimum(s5.list_lengths, TOP_K)
    assert len(read_log(log)) == int(shown.sum()) * SESSIONS  # the checks of every clicks command
    sessions = sessions_in_order(log)
    assert len(sessions) == len(s5) * SESSIONS
    unlogged = [s for s in sessions if str(s[0]["session"]).startswith("unlogged-")]
    assert f"{len(unlogged):,} sessions came back without an impression id" in printed
    assert 0.35 < len(unlogged) / len(sessions) < 0.65  # the server's 50 % sample

    # each user saw the server's top 5 by the model's offline scores, best first
    model = load_model(artifact).model
    score = by_pair(s5, offline_scores(model, s5))
    for rows in sessions:
        q = str(rows[0]["qid"])
        seen = [score[(q, r["doc_id"])] for r in rows]
        assert all(a >= b - 1e-5 for a, b in itertools.pairwise(seen))
    by_query: dict[str, list[float]] = {}
    for (q, _), v in score.items():
        by_query.setdefault(q, []).append(v)
    for rows in sessions[::SESSIONS]:
        q = str(rows[0]["qid"])
        fifth = sorted(by_query[q], reverse=True)[len(rows) - 1]
        assert min(score[(q, r["doc_id"])] for r in rows) >= fifth - 1e-5

    # the clicks file holds the clicks of the logged sessions, which join turns back into the log
    front_end = pcsv.read_csv(clicks).to_pylist()
    truth = rows_of(log)
    logged = {k: v for k, v in truth.items() if not k[0].startswith("unlogged-")}
    assert sorted((c["session"], c["doc_id"]) for c in front_end) == sorted(
        k for k, v in logged.items() if v[2] == 1
    )
    server.stop()  # SIGTERM writes the impression log
    joined = tmp / "joined.parquet"
    assert main(["clicks", "join", str(tmp / "impressions"), "--clicks", str(clicks),
                 "--out", str(joined), "--quiet"]) == 0  # fmt: skip
    assert rows_of(joined) == logged

    # click rates follow the PBM: (1/k) * (0.1 + 0.9 (2^y - 1) / 3) at position k, grade y
    grade = by_pair(s5, s5.labels)
    for k in range(1, TOP_K + 1):
        for y in (0, 1, 2):
            cell = [c for (_, d), (q, at, c) in truth.items() if at == k and grade[(q, d)] == y]
            if len(cell) < 100:
                continue
            p = (1 / k) * (0.1 + 0.9 * (2**y - 1) / 3)
            if p == 1:  # the top grade at the top: always clicked
                assert all(cell)
                continue
            z = (np.mean(cell) - p) / np.sqrt(p * (1 - p) / len(cell))
            assert abs(z) < 4.5, (k, y, len(cell), np.mean(cell), p)

    # on the same rankings, the offline simulation draws the same clicks (same seeding)
    offline = tmp / "offline.parquet"
    scores = offline_scores(model, s5)
    simulate_clicks(s5, scores, offline, model=PositionBasedModel(max_grade=2.0),
                    sessions=SESSIONS, temperature=0.0, top_k=TOP_K, progress=False)  # fmt: skip
    reference = sessions_in_order(offline)
    same_order = 0
    for q in range(len(s5)):
        live = sessions[q * SESSIONS : (q + 1) * SESSIONS]
        ref = reference[q * SESSIONS : (q + 1) * SESSIONS]
        if [r["doc_id"] for r in live[0]] != [r["doc_id"] for r in ref[0]]:
            continue  # a near tie the two paths break differently
        same_order += 1
        assert [[r["click"] for r in s] for s in live] == [[r["click"] for r in s] for s in ref]
    assert same_order >= 0.9 * len(s5)


def test_simulate_against_a_server_refuses_what_it_cannot_do(
    artifact, mq2008_dir, tmp_path, capsys
):
    server = ServerProcess(tmp_path, artifact, "--max_candidates", "200").wait_ready()
    try:
        _check_refusals(server, mq2008_dir, tmp_path, capsys)
    finally:
        server.stop()


def _check_refusals(server, mq2008_dir, tmp_path, capsys) -> None:
    s5 = str(mq2008_dir / "S5.txt.xz")
    out = tmp_path / "log.parquet"

    def refused(*argv: str, why: str) -> None:
        assert main(["clicks", "simulate", *argv, "--out", str(out), "--quiet"]) != 0
        assert why in capsys.readouterr().err
        assert not out.exists()

    refused(s5, "--server", server.target, "--temperature", "1",
            why="--temperature is not an option with --server")  # fmt: skip
    refused(s5, "--ranker-feature", "f25", "--clicks-out", str(tmp_path / "c.csv"),
            why="--clicks-out is an option of --server")  # fmt: skip
    refused(s5, "--server", server.target, "--clicks-out", str(tmp_path / "c.txt"),
            why="the clicks file must end in .csv or .parquet")  # fmt: skip
    long_list = tmp_path / "long.txt"  # one query of 201 documents: over the server's cap
    long_list.write_text(
        "".join(f"1 qid:7 {' '.join(f'{j}:0.5' for j in range(1, 47))} #docid = d{i}\n"
                for i in range(201))
    )  # fmt: skip
    refused(str(long_list), "--server", server.target,
            why="query '7' has 201 candidates but the server scores at most 200")  # fmt: skip
    wide = tmp_path / "wide.txt"
    wide.write_text("1 qid:7 1:0.5 47:0.1 #docid = a\n0 qid:7 1:0.2 2:0.3 #docid = b\n")
    refused(str(wide), "--server", server.target,
            why="line 1: feature index 47 is above the feature count 46")  # fmt: skip
    twice = tmp_path / "twice.txt"
    twice.write_text("1 qid:7 1:0.5 #docid = a\n0 qid:7 1:0.2 #docid = a\n")
    refused(str(twice), "--server", server.target, why="query '7' lists a document id twice")
    refused(s5, "--server", f"127.0.0.1:{free_port()}", "--timeout", "2", why="UNAVAILABLE")
