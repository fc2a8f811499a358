"""The impression log: what the server answered, with the features it scored, as whole Parquet
files; it never stops serving (full queue, failed write) and loses at most the unwritten tail."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.errors import ConfigError
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.client import RerankerClient
from ltr.serve.domain import ModelRef, RankedList, RerankQuery, ValidQuery
from ltr.serve.impressions import PREFIX, ImpressionLog
from tests.serve._helpers import LTR, ServerProcess, metric

MODEL = ModelRef("m", "7")


class Seen:
    """An observer that keeps what the log reports."""

    def __init__(self) -> None:
        self.written = 0
        self.dropped: Counter[str] = Counter()
        self.lock = threading.Lock()

    def impressions_written(self, rows: int) -> None:
        with self.lock:
            self.written += rows

    def impressions_dropped(self, reason: str, rows: int) -> None:
        with self.lock:
            self.dropped[reason] += rows


def served(rng, n: int, *, top_k: int | None = None, ranks: bool = False, qid: str = "q"):
    """A validated list of ``n`` candidates and a ranking of it (random order, ``top_k`` kept)."""
    features = rng.normal(size=(n, 3)).astype(np.float32)
    query = ValidQuery(
        query_id=qid,
        candidate_ids=[f"{qid}-d{i}" for i in range(n)],
        features=features,
        initial_ranks=np.arange(1, n + 1, dtype=np.int64) if ranks else None,
        context=None,
        top_k=top_k,
    )
    order = rng.permutation(n)[: top_k or n]
    ranked = RankedList(
        query_id=qid,
        ids=[query.candidate_ids[i] for i in order],
        scores=rng.normal(size=len(order)).astype(np.float32),
        request_indices=order.astype(np.int64),
        model=MODEL,
    )
    return query, ranked


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{PREFIX}*.parquet"))


def test_rows_are_the_returned_candidates_and_no_list_is_split(tmp_path):
    rng = np.random.default_rng(0)
    seen = Seen()
    log = ImpressionLog(tmp_path, rows_per_file=7, flush_seconds=60, observer=seen)
    lists = [
        served(rng, 3, qid="a"),
        served(rng, 6, top_k=4, ranks=True, qid="b"),
        served(rng, 5, qid="c"),
        served(rng, 2, qid="d"),
        served(rng, 9, qid="e"),  # more than a file's rows: a file of its own
    ]
    sessions = [log.record(q, r) for q, r in lists]
    log.close()

    assert len(set(sessions)) == len(sessions) and all(len(s) == 32 for s in sessions)
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    where: dict[str, str] = {}
    for path in files(tmp_path):
        table = pq.read_table(path)
        assert table.num_rows <= 7 or len(set(table["session"].to_pylist())) == 1
        for session in set(table["session"].to_pylist()):
            assert session not in where, "a list was split between files"
            where[session] = path.name
        rows = table.to_pylist()
        for session, (query, ranked) in zip(sessions, lists, strict=True):
            mine = [row for row in rows if row["session"] == session]
            if not mine:
                continue
            assert [row["doc_id"] for row in mine] == ranked.ids
            assert [row["position"] for row in mine] == list(range(1, len(ranked.ids) + 1))
            assert [row["qid"] for row in mine] == [query.query_id] * len(ranked.ids)
            np.testing.assert_array_equal(
                np.array([row["score"] for row in mine], np.float32), ranked.scores
            )
            np.testing.assert_array_equal(
                np.array([row["features"] for row in mine], np.float32),
                query.features[ranked.request_indices],
            )
            want_ranks = (
                [None] * len(mine)
                if query.initial_ranks is None
                else (query.initial_ranks[ranked.request_indices]).tolist()
            )
            assert [row["initial_rank"] for row in mine] == want_ranks
            assert {(row["model_name"], row["model_version"]) for row in mine} == {("m", "7")}
    assert sorted(where) == sorted(sessions)
    assert seen.written == 3 + 4 + 5 + 2 + 9 and not seen.dropped


def test_a_file_holds_one_feature_schema_named_in_its_metadata(tmp_path):
    """A model swap to other features mid-file starts another file; each file's metadata names
    its features as ``ltr``'s own Parquet data does."""
    from ltr.data.parquet import feature_names_of

    rng = np.random.default_rng(6)
    log = ImpressionLog(tmp_path, rows_per_file=1000, flush_seconds=60)
    first = log.record(*served(rng, 4, qid="a"), ("bm25", "tf", "len"))
    query, ranked = served(rng, 3, qid="b")
    narrow = replace(query, features=query.features[:, :2])  # the next model reads 2 features
    second = log.record(narrow, ranked, ("bm25", "tf"))
    unnamed = log.record(*served(rng, 2, qid="c"))  # no names given: f1 .. fF
    log.close()
    by_names = {}
    for path in files(tmp_path):
        file_schema = pq.read_schema(path)
        names = tuple(feature_names_of(file_schema))
        assert file_schema.field("features").type.list_size == len(names)
        by_names[names] = set(pq.read_table(path)["session"].to_pylist())
    assert by_names == {
        ("bm25", "tf", "len"): {first},
        ("bm25", "tf"): {second},
        ("f1", "f2", "f3"): {unnamed},
    }


def test_a_file_is_closed_after_flush_seconds_without_close(tmp_path):
    log = ImpressionLog(tmp_path, rows_per_file=1000, flush_seconds=0.2)
    session = log.record(*served(np.random.default_rng(1), 4))
    deadline = time.monotonic() + 30
    while not files(tmp_path):
        assert time.monotonic() < deadline, "no file after 30 s"
        time.sleep(0.05)
    assert pq.read_table(files(tmp_path)[0])["session"].to_pylist() == [session] * 4
    log.close()


def test_a_sample_logs_its_share_of_lists_and_only_those_get_ids(tmp_path):
    rng = np.random.default_rng(7)
    log = ImpressionLog(tmp_path, rows_per_file=100_000, flush_seconds=60, sample=0.25)
    one = served(rng, 1)
    ids = [log.record(*one) for _ in range(4000)]
    log.close()
    kept = [i for i in ids if i]
    # binomial(4000, 0.25): mean 1000, sd 27; outside 850..1150 has probability below 1e-7
    assert 850 <= len(kept) <= 1150 and len(set(kept)) == len(kept)
    logged = {s for path in files(tmp_path) for s in pq.read_table(path)["session"].to_pylist()}
    assert logged == set(kept)


def test_a_full_queue_drops_new_lists_and_counts_them(tmp_path):
    rng = np.random.default_rng(2)
    seen = Seen()
    log = ImpressionLog(
        tmp_path, rows_per_file=1000, flush_seconds=60, max_queued_rows=5, observer=seen
    )
    kept = log.record(*served(rng, 3))
    assert log.record(*served(rng, 3)) == ""  # 6 rows would wait: left out, without an id
    log.close()
    assert seen.dropped == {"queue_full": 3} and seen.written == 3
    (path,) = files(tmp_path)
    assert set(pq.read_table(path)["session"].to_pylist()) == {kept}


def test_a_failed_write_is_counted_and_the_log_goes_on(tmp_path):
    rng = np.random.default_rng(3)
    seen = Seen()
    folder = tmp_path / "log"
    log = ImpressionLog(folder, rows_per_file=2, flush_seconds=60, observer=seen)
    folder.rmdir()
    folder.write_text("not a folder any more")  # every write into it fails
    log.record(*served(rng, 2))
    deadline = time.monotonic() + 30
    while not seen.dropped:
        assert time.monotonic() < deadline, "the failed write was not reported"
        time.sleep(0.05)
    folder.unlink()
    folder.mkdir()
    later = log.record(*served(rng, 2))
    log.close()
    assert seen.dropped == {"write_error": 2} and seen.written == 2
    (path,) = files(folder)
    assert set(pq.read_table(path)["session"].to_pylist()) == {later}


def test_an_unwritable_folder_is_refused_and_stale_temporary_files_are_removed(tmp_path):
    import os

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"impressions.directory .*file/log.* cannot be written"):
        ImpressionLog(blocker / "log")
    stale = tmp_path / f".{PREFIX}20260101T000000-1-ab-000001.parquet.tmp"
    stale.write_bytes(b"half a file, left by a crash two hours ago")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    live = tmp_path / f".{PREFIX}20260101T000000-2-cd-000001.parquet.tmp"
    live.write_bytes(b"another replica's file, being written")
    ImpressionLog(tmp_path, flush_seconds=60).close()
    assert not stale.exists() and live.exists()


def test_two_logs_in_one_folder_keep_every_list(tmp_path):
    """Replicas (here: two logs in one process, in the same second) share a folder: no file
    overwrites another's, and neither removes the other's file in progress."""
    rng = np.random.default_rng(5)
    first = ImpressionLog(tmp_path, rows_per_file=1000, flush_seconds=60)
    one = [first.record(*served(rng, 3, qid="a")) for _ in range(4)]
    second = ImpressionLog(tmp_path, rows_per_file=1000, flush_seconds=60)
    two = [second.record(*served(rng, 2, qid="b")) for _ in range(5)]
    first.close()
    second.close()
    logged = read_log(tmp_path)
    assert sorted(logged) == sorted(one + two)
    assert sum(len(rows) for rows in logged.values()) == 4 * 3 + 5 * 2
    assert len(files(tmp_path)) == 2


# ---------------------------------------------------------------- a real server


def request_of(s5, q: int, rng, top_k: int | None = None) -> pb.RerankRequest:
    rows = rng.permutation(s5[q].rows)
    request = pb.RerankRequest(
        query_id=f"q{q}",
        candidates=[pb.Candidate(id=f"r{r}", features=s5.features[r].tolist()) for r in rows],
    )
    if top_k is not None:
        request.top_k = top_k
    return request


def read_log(directory: Path) -> dict[str, list[dict]]:
    """``{session: rows in position order}``, checking that no session spans two files."""
    out: dict[str, list[dict]] = {}
    for path in files(directory):
        here: dict[str, list[dict]] = {}
        for row in pq.read_table(path).to_pylist():
            here.setdefault(row["session"], []).append(row)
        assert not set(here) & set(out), "a list was split between files"
        out.update(here)
    return out


def test_the_server_logs_what_it_answered_and_sigterm_writes_the_rest(
    tmp_path, tiny_artifact, s5, mq2008_dir
):
    log_dir = tmp_path / "impressions"
    server = ServerProcess(
        tmp_path, tiny_artifact, "--backend", "torch", "--impressions", str(log_dir),
        "--impressions.flush_seconds", "600",  # nothing is written before SIGTERM
    ).wait_ready()  # fmt: skip
    rng = np.random.default_rng(4)
    try:
        stub = pb_grpc.RerankerStub(server.channel())
        requests = [request_of(s5, q, rng, top_k=3 if q % 2 else None) for q in range(6)]
        responses = [stub.Rerank(r, timeout=60) for r in requests]
        batch = pb.RerankBatchRequest(requests=[request_of(s5, q, rng) for q in (6, 7)])
        responses += list(stub.RerankBatch(batch, timeout=60).responses)
        requests += list(batch.requests)
        bad = pb.RerankRequest(query_id="bad", candidates=[pb.Candidate(id="x", features=[1.0])])
        with pytest.raises(Exception, match="features"):
            stub.Rerank(bad, timeout=60)  # refused: not an impression
        # the command line and the Python client hand the id on too
        out = subprocess.run(
            [str(LTR), "rerank", "--server", server.target, "--data", str(mq2008_dir / "S5.txt.xz"),
             "--query", str(s5.qids[8]), "--format", "json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        cli_session = json.loads(out.stdout)["impression_id"]
        with RerankerClient(server.target) as client:
            query = RerankQuery.from_matrix([f"r{r}" for r in s5[9].rows], s5[9].features)
            client_session = client.rerank_query(query).impression_id
        assert not files(log_dir)
        # the compute thread and the log's writer are named for top -H and /proc
        names = {
            (task / "comm").read_text().strip()
            for task in Path(f"/proc/{server.proc.pid}/task").iterdir()
        }
        assert {"ltr-compute_0", "ltr-impressions"} <= names, names
        server.signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    finally:
        server.stop()

    logged = read_log(log_dir)
    sessions = [r.impression_id for r in responses]
    assert len(set(sessions)) == len(sessions) and all(sessions)
    assert sorted(logged) == sorted([*sessions, cli_session, client_session])
    assert len(logged[cli_session]) == len(s5[8].rows) and len(logged[client_session]) == len(
        s5[9].rows
    )
    assert {row["qid"] for row in logged[cli_session]} == {str(s5.qids[8])}
    for request, response in zip(requests, responses, strict=True):
        rows = logged[response.impression_id]
        assert [row["doc_id"] for row in rows] == [c.id for c in response.candidates]
        assert [row["position"] for row in rows] == list(range(1, len(rows) + 1))
        assert {row["qid"] for row in rows} == {request.query_id}
        assert {row["model_version"] for row in rows} == {response.model.version}
        np.testing.assert_array_equal(
            np.array([row["score"] for row in rows], np.float32),
            np.array([c.score for c in response.candidates], np.float32),
        )
        sent = {c.id: np.array(c.features, np.float32) for c in request.candidates}
        for row in rows:  # the very features the model scored, bit for bit
            np.testing.assert_array_equal(
                np.array(row["features"], np.float32), sent[row["doc_id"]]
            )
    # with a click column joined on (session, doc_id) the log is an `ltr clicks` log
    import pyarrow as pa

    from ltr.clicks.log import read_log as read_click_log

    table = pa.concat_tables(pq.read_table(path) for path in files(log_dir))
    clicks = pa.array((table["position"].to_numpy() == 1).astype(np.int8))
    pq.write_table(table.append_column("click", clicks), tmp_path / "clicks.parquet")
    click_log = read_click_log(tmp_path / "clicks.parquet")
    assert len(click_log) == table.num_rows and click_log.num_sessions == len(logged)
    assert int(click_log.click.sum()) == len(logged)
    assert [len(logged[s]) for s in sessions[:6]] == [
        len(s5[q].rows) if q % 2 == 0 else 3 for q in range(6)
    ]


def test_a_killed_server_leaves_only_whole_files(tmp_path, tiny_artifact, s5):
    log_dir = tmp_path / "impressions"
    server = ServerProcess(
        tmp_path, tiny_artifact, "--backend", "torch", "--impressions", str(log_dir),
        "--impressions.rows_per_file", "40", "--impressions.flush_seconds", "0.1",
    ).wait_ready()  # fmt: skip
    rng = np.random.default_rng(5)
    answered = {}
    try:
        stub = pb_grpc.RerankerStub(server.channel())
        for q in range(40):
            response = stub.Rerank(request_of(s5, q % 20, rng), timeout=60)
            answered[response.impression_id] = [c.id for c in response.candidates]
        deadline = time.monotonic() + 60
        while metric(server.scrape(), "ltr_impressions_written_total") == 0:
            assert time.monotonic() < deadline, "nothing written after 60 s"
            time.sleep(0.05)
        server.proc.kill()  # SIGKILL: no drain, no last write
        server.proc.wait(timeout=60)
    finally:
        server.stop()
    logged = read_log(log_dir)  # every file reads, and no list spans two
    assert logged and set(logged) <= set(answered)
    for session, rows in logged.items():
        assert [row["doc_id"] for row in rows] == answered[session]  # whole lists only
