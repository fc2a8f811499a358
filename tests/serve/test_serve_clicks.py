"""RecordClicks on a real ``ltr serve``: clicks users send back land in the click log beside the
impression log, where ``ltr clicks join`` reads them exactly as a front end's click file; bad
click calls get their status code and the server goes on; a server without an impression log
refuses clicks."""

from __future__ import annotations

import signal
import time

import grpc
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from ltr.cli import main
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.client import RerankerClient, RerankError
from tests.serve._helpers import ServerProcess, metric


def click_rows(folder) -> pa.Table:
    files = sorted(folder.glob("clicks-*.parquet"))
    if not files:
        return pa.table({"session": pa.array([], pa.string()), "doc_id": pa.array([], pa.string())})
    return pa.concat_tables(pq.read_table(f) for f in files)


def test_clicks_sent_back_join_like_the_front_ends_file(tmp_path, tiny_artifact, mq2008_dir):
    """Simulated users send their clicks back (``ltr clicks simulate --record-clicks``): the
    click log, written while the server runs, holds exactly the clicks of the front end's file,
    and joining either gives the same click log."""
    impressions = tmp_path / "impressions"
    server = ServerProcess(
        tmp_path, tiny_artifact, "--backend", "torch", "--impressions", str(impressions),
        "--impressions.flush_seconds", "1",
    ).wait_ready()  # fmt: skip
    try:
        s5 = mq2008_dir / "S5.txt.xz"
        assert main(["clicks", "simulate", str(s5), "--server", server.target, "--sessions", "3",
                     "--top-k", "5", "--out", str(tmp_path / "truth.parquet"), "--clicks-out",
                     str(tmp_path / "clicks.csv"), "--record-clicks", "--quiet"]) == 0  # fmt: skip
        sent = pcsv.read_csv(tmp_path / "clicks.csv")
        assert sent.num_rows > 20
        stub = pb_grpc.RerankerStub(server.channel())
        with pytest.raises(grpc.RpcError) as raw:
            stub.RecordClicks(pb.RecordClicksRequest(), timeout=30)
        assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "holds no clicks" in raw.value.details()
        with RerankerClient(server.target) as client:
            assert client.record_clicks([]) == 0  # the client sends nothing
            for bad, why in (
                ([("s", "d"), ("", "d")], "click 1 has an empty impression_id"),
                ([("s", "")], "click 0 has an empty candidate_id"),
            ):
                with pytest.raises(RerankError) as info:
                    client.record_clicks(bad)
                assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
                assert why in str(info.value)
        deadline = time.monotonic() + 60  # written within flush_seconds, while serving
        while click_rows(impressions / "clicks").num_rows < sent.num_rows:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert metric(server.scrape(), "ltr_clicks_written_total") == sent.num_rows
    finally:
        assert server.stop() == 0, server.log()

    logged = click_rows(impressions / "clicks")
    pairs = set(zip(logged["session"].to_pylist(), logged["doc_id"].to_pylist(), strict=True))
    want = set(zip(sent["session"].to_pylist(), map(str, sent["doc_id"].to_pylist()), strict=True))
    assert pairs == want and logged.num_rows == sent.num_rows  # none lost, none twice
    assert logged["received_at"].null_count == 0
    outs = {}  # the click log is the default --clicks of an impression folder that has one
    for name, clicks in (("file", ["--clicks", str(tmp_path / "clicks.csv")]), ("log", [])):
        outs[name] = tmp_path / f"join-{name}.parquet"
        assert main(["clicks", "join", str(impressions), *clicks, "--out", str(outs[name]),
                     "--quiet"]) == 0  # fmt: skip
    assert pq.read_table(outs["log"]).equals(pq.read_table(outs["file"]))


def test_a_server_without_an_impression_log_refuses_clicks(tmp_path, tiny_artifact, s5):
    server = ServerProcess(tmp_path, tiny_artifact, "--backend", "torch").wait_ready()
    try:
        with RerankerClient(server.target) as client:
            with pytest.raises(RerankError) as info:
                client.record_clicks([("session", "doc")])
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "keeps no impression log" in str(info.value)
            ranked = client.rerank([f"d{i}" for i in range(4)], s5.features[:4])
            assert len(ranked.ids) == 4  # and it goes on serving
    finally:
        server.signal(signal.SIGTERM)
        assert server.stop() == 0, server.log()


def test_the_click_log_keeps_the_clicks_of_a_failed_write(tmp_path, monkeypatch):
    """In process: the first write fails (a full disk, say); its clicks are written with a
    later flush, none lost or doubled, and no temporary file is left."""
    from ltr.serve import clicklog

    real_write = clicklog.pq.write_table
    failures = []

    def flaky(table, where, **kwargs):
        if not failures:
            failures.append(table.num_rows)
            raise OSError("No space left on device")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(clicklog.pq, "write_table", flaky)
    log = clicklog.ClickLog(tmp_path / "clicks", flush_seconds=0.2)
    assert log.record([("s1", "a"), ("s1", "b")]) == 2
    deadline = time.monotonic() + 30
    while not failures:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert log.record([("s3", "a")]) == 1
    log.close()
    rows = click_rows(tmp_path / "clicks")
    assert failures == [2]
    assert sorted(zip(rows["session"].to_pylist(), rows["doc_id"].to_pylist(), strict=True)) == [
        ("s1", "a"), ("s1", "b"), ("s3", "a"),
    ]  # fmt: skip
    assert not list((tmp_path / "clicks").glob(".*"))


def test_a_call_that_does_not_fit_in_the_click_queue_is_refused_whole(tmp_path):
    from ltr.serve.clicklog import ClickLog
    from ltr.serve.errors import QueueFullError

    log = ClickLog(tmp_path / "clicks", flush_seconds=3600, max_queued=5)
    assert log.record([("s1", "a"), ("s1", "b")]) == 2
    with pytest.raises(QueueFullError, match="queue is full"):
        log.record([("s2", "a"), ("s2", "b"), ("s2", "c"), ("s2", "d")])  # 2 + 4 > 5
    assert log.record([("s3", "a"), ("s3", "b"), ("s3", "c")]) == 3  # 2 + 3 = 5 fits
    log.close()  # writes what is queued
    rows = click_rows(tmp_path / "clicks")
    assert sorted(set(rows["session"].to_pylist())) == ["s1", "s3"] and rows.num_rows == 5
