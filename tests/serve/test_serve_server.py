"""A real ``ltr serve`` process (ONNX Runtime, exported on load) and real gRPC clients."""

from __future__ import annotations

import json
import subprocess
import threading

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ltr.artifact import load_model
from ltr.errors import InputError
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.client import RerankerClient
from ltr.serve.healthcheck import main as healthcheck
from tests.serve._helpers import LTR, ServerProcess, metric, offline_scores

MAX_CANDIDATES = 150
MAX_MESSAGE = 256 * 1024
ATOL = 1e-5  # the export's parity contract


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_artifact):
    tmp = tmp_path_factory.mktemp("server")
    process = ServerProcess(
        tmp,
        tiny_artifact,
        "--max_candidates", str(MAX_CANDIDATES),
        "--max_message_bytes", str(MAX_MESSAGE),
        "--batching.max_delay_ms", "5",
        "--batching.workers", "2",  # two passes at once; the other servers' tests run one
    )  # fmt: skip
    yield process.wait_ready()
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def stub(server):
    with server.channel() as channel:
        yield pb_grpc.RerankerStub(channel)


@pytest.fixture(scope="module")
def offline(tiny_artifact, s5):
    return offline_scores(load_model(tiny_artifact).model, s5)


def request_of(s5, q: int, order=None, **fields) -> pb.RerankRequest:
    """The request for list ``q`` of S5 (candidate ids = doc ids), in ``order`` if given."""
    item = s5[q]
    rows = item.rows if order is None else item.rows[order]
    candidates = [
        pb.Candidate(id=str(s5.doc_ids[r]), features=s5.features[r].tolist()) for r in rows
    ]
    return pb.RerankRequest(query_id=str(s5.qids[q]), candidates=candidates, **fields)


def scores_by_id(response) -> dict[str, float]:
    return {c.id: c.score for c in response.candidates}


def expected_by_id(s5, offline, q: int) -> dict[str, float]:
    rows = s5[q].rows
    return {str(s5.doc_ids[r]): float(offline[r]) for r in rows}


def assert_matches_offline(response, s5, offline, q: int) -> None:
    want = expected_by_id(s5, offline, q)
    got = scores_by_id(response)
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=0, atol=ATOL)
    scores = [c.score for c in response.candidates]
    assert scores == sorted(scores, reverse=True)


def test_model_info_health_and_reflection(server, stub, tiny_artifact) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert (info.model.name, info.model.version) == ("tiny-model", "run-seed1")
    assert info.num_features == 46 and list(info.feature_names)[:2] == ["f1", "f2"]
    assert (info.max_candidates, info.max_message_bytes) == (MAX_CANDIDATES, MAX_MESSAGE)
    assert info.backend == pb.BACKEND_ONNX_RUNTIME
    assert not (tiny_artifact / "model.onnx").exists()  # exported on load, elsewhere
    assert healthcheck([server.target]) == 0  # the container health check
    with RerankerClient(server.target) as client:
        assert client.health() == "SERVING"
        assert client.health("ltr.reranker.v1.Reranker") == "SERVING"
    with server.channel() as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert {"ltr.reranker.v1.Reranker", "grpc.health.v1.Health"} <= set(services)


def test_every_list_scores_as_the_offline_path(stub, s5, offline) -> None:
    lists = list(range(len(s5)))
    for start in range(0, len(lists), 20):
        chunk = lists[start : start + 20]
        reply = stub.RerankBatch(
            pb.RerankBatchRequest(requests=[request_of(s5, q) for q in chunk]), timeout=30
        )
        assert len(reply.responses) == len(chunk)
        for q, response in zip(chunk, reply.responses, strict=True):
            assert response.query_id == str(s5.qids[q])
            assert (response.model.name, response.model.version) == ("tiny-model", "run-seed1")
            assert_matches_offline(response, s5, offline, q)


def test_shuffled_candidates_keep_their_scores(stub, s5, offline) -> None:
    rng = np.random.default_rng(7)
    q = int(np.argmax(s5.list_lengths))
    first = stub.Rerank(request_of(s5, q), timeout=10)
    order = rng.permutation(len(s5[q].rows))
    shuffled = stub.Rerank(request_of(s5, q, order), timeout=10)
    a, b = scores_by_id(first), scores_by_id(shuffled)
    assert a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in a], list(a.values()), rtol=0, atol=ATOL)
    # request_index points into the shuffled request
    ids = [str(s5.doc_ids[r]) for r in s5[q].rows[order]]
    assert all(ids[c.request_index] == c.id for c in shuffled.candidates)


def test_top_k_returns_the_best_k(stub, s5, offline) -> None:
    q = 3
    full = stub.Rerank(request_of(s5, q), timeout=10)
    top = stub.Rerank(request_of(s5, q, top_k=2), timeout=10)
    assert [c.id for c in top.candidates] == [c.id for c in full.candidates[:2]]


def _bad_requests(s5) -> list[tuple[str, object, grpc.StatusCode, str]]:
    good = request_of(s5, 0)
    short = request_of(s5, 0)
    del short.candidates[1].features[-1]
    nan = request_of(s5, 0)
    nan.candidates[0].features[5] = float("nan")
    inf = request_of(s5, 0)
    inf.candidates[2].features[0] = float("inf")
    dup = request_of(s5, 0)
    dup.candidates[1].id = dup.candidates[0].id
    many = pb.RerankRequest(
        candidates=[pb.Candidate(id=f"d{i}", features=[0.0] * 46) for i in range(151)]
    )
    huge = pb.RerankRequest(
        candidates=[pb.Candidate(id=f"d{i}", features=[0.5] * 46) for i in range(2000)]
    )
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    return [
        ("wrong feature count", short, invalid, "has 45 features but the model expects 46"),
        ("NaN", nan, invalid, "non-finite value (nan) for feature 'f6'"),
        ("infinity", inf, invalid, "non-finite value (inf) for feature 'f1'"),
        ("empty list", pb.RerankRequest(query_id="q"), invalid, "no candidates"),
        ("over the cap", many, invalid, "151 candidates but this server accepts at most 150"),
        ("duplicate ids", dup, invalid, f"{dup.candidates[0].id!r} appears more than once"),
        ("too large", huge, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
        ("unknown model", request_of(s5, 0, model_name="nope"), grpc.StatusCode.NOT_FOUND,
         "model 'nope' is not served here; it serves 'tiny-model'"),
        ("top_k 0", request_of(s5, 0, top_k=0), invalid, "top_k must be at least 1"),
        ("context for a model without one", request_of(s5, 0, context=[1.0]), invalid,
         "takes no context vector"),
        ("good", good, grpc.StatusCode.OK, ""),
    ]  # fmt: skip


def test_bad_inputs_get_a_status_and_a_reason_and_the_server_keeps_serving(
    server, stub, s5, offline
) -> None:
    before = server.scrape()
    for name, request, code, reason in _bad_requests(s5):
        if code == grpc.StatusCode.OK:
            continue
        with pytest.raises(grpc.RpcError) as info:
            stub.Rerank(request, timeout=10)
        assert info.value.code() == code, name
        assert reason in info.value.details(), (name, info.value.details())
        assert_matches_offline(stub.Rerank(request_of(s5, 0), timeout=10), s5, offline, 0)
    bad_batch = pb.RerankBatchRequest(requests=[request_of(s5, 0), _bad_requests(s5)[1][1]])
    with pytest.raises(grpc.RpcError) as info:
        stub.RerankBatch(bad_batch, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("request 1: candidate")
    after = server.scrape()
    delta = {
        code: metric(after, "ltr_requests_total", method="Rerank", code=code)
        - metric(before, "ltr_requests_total", method="Rerank", code=code)
        for code in ("INVALID_ARGUMENT", "NOT_FOUND", "OK")
    }
    # the oversized message never reached the service: gRPC refused it
    assert delta == {"INVALID_ARGUMENT": 8, "NOT_FOUND": 1, "OK": 10}


def test_many_concurrent_clients_get_correct_answers(server, s5, offline) -> None:
    before = server.scrape()
    failures: list[str] = []
    calls_per_client, clients = 6, 16

    def client(k: int) -> None:
        with server.channel() as channel:
            stub = pb_grpc.RerankerStub(channel)
            for j in range(calls_per_client):
                q = (k * calls_per_client + j) % len(s5)
                try:
                    assert_matches_offline(
                        stub.Rerank(request_of(s5, q), timeout=30), s5, offline, q
                    )
                except Exception as exc:  # collected and reported below
                    failures.append(f"client {k} list {q}: {exc!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    after = server.scrape()
    calls = metric(after, "ltr_requests_total", method="Rerank", code="OK") - metric(
        before, "ltr_requests_total", method="Rerank", code="OK"
    )
    lists = metric(after, "ltr_batch_lists_sum") - metric(before, "ltr_batch_lists_sum")
    batches = metric(after, "ltr_batch_lists_count") - metric(before, "ltr_batch_lists_count")
    assert calls == lists == clients * calls_per_client
    assert 1 <= batches <= lists
    assert metric(after, "ltr_queue_depth") == 0
    assert metric(after, "ltr_model_info", name="tiny-model", version="run-seed1",
                  backend="onnx") == 1  # fmt: skip


def test_python_client_and_ltr_rerank_command(server, s5, offline, mq2008_dir) -> None:
    q = 10
    with RerankerClient(server.target) as client:
        info = client.model_info()
        ranked = client.rerank(
            [str(d) for d in s5.doc_ids[s5[q].rows]], s5[q].features, query_id="q", top_k=3
        )
    assert info.spec.num_features == 46 and info.spec.backend == "onnx"
    want = expected_by_id(s5, offline, q)
    best = sorted(want, key=want.get, reverse=True)[:3]
    assert ranked.ids == best
    np.testing.assert_allclose(ranked.scores, [want[k] for k in best], atol=ATOL)

    out = subprocess.run(
        [str(LTR), "rerank", "--server", server.target, "--data",
         str(mq2008_dir / "S5.txt.xz"), "--query", str(s5.qids[q]), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    reply = json.loads(out.stdout)
    got = {c["id"]: c["score"] for c in reply["candidates"]}
    assert reply["model"] == {"name": "tiny-model", "version": "run-seed1"}
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=ATOL)
    file_labels = dict(zip(map(str, s5.doc_ids[s5[q].rows]), s5[q].labels.tolist(), strict=True))
    assert {c["id"]: c["label"] for c in reply["candidates"]} == file_labels


def test_ltr_rerank_takes_unlabelled_candidates_with_variable_length_feature_lists(
    server, s5, offline, tmp_path
) -> None:
    """What ltr score takes (and Spark writes): no label column, features as list<float>."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    q = 10
    rows = s5[q].rows
    table = pa.table(
        {
            "qid": [str(s5.qids[q])] * len(rows),
            "doc_id": [str(d) for d in s5.doc_ids[rows]],
            "features": pa.array(s5.features[rows].tolist(), type=pa.list_(pa.float32())),
        }
    )
    path = tmp_path / "candidates.parquet"
    pq.write_table(table, path)
    argv = [str(LTR), "rerank", "--server", server.target, "--data", str(path)]
    out = subprocess.run(
        [*argv, "--format", "json"], capture_output=True, text=True, timeout=120, check=True
    )
    reply = json.loads(out.stdout)
    want = expected_by_id(s5, offline, q)
    got = {c["id"]: c["score"] for c in reply["candidates"]}
    assert got.keys() == want.keys() and all("label" not in c for c in reply["candidates"])
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=ATOL)
    table_out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    assert table_out.stdout.splitlines()[1].split() == ["rank", "score", "id"]
    # evaluation needs labels: said so, naming the file
    done = subprocess.run(
        [str(LTR), "evaluate", "--server", server.target, "--data", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{path}: the Parquet file has no 'label' column, which this command needs" in (
        done.stderr
    )


def test_python_client_refuses_ids_and_rows_that_differ_in_number(server, s5) -> None:
    x = s5[10].features[:3]  # 3 rows
    with RerankerClient(server.target) as client:
        for ids in (["a", "b"], ["a", "b", "c", "d"]):  # was: 2 results, or a bare IndexError
            with pytest.raises(InputError, match=rf"^{len(ids)} candidate ids but 3 feature rows"):
                client.rerank(ids, x)
        with pytest.raises(InputError, match=r"initial_ranks has shape \(2,\) for 3 candidate"):
            client.rerank(["a", "b", "c"], x, initial_ranks=np.array([1, 2]))
        assert len(client.rerank(["a", "b", "c"], x, initial_ranks=np.array([1, 2, 3])).ids) == 3


def test_evaluate_through_the_live_server_equals_offline_evaluation(
    server, tiny_artifact, s5, offline, mq2008_dir, capsys
) -> None:
    from ltr.cli import main
    from ltr.data.dataset import ListDataset
    from ltr.errors import ConfigError, DataFormatError
    from ltr.serve.client import score_dataset

    with RerankerClient(server.target) as client:
        # 256 KiB messages hold about 600 candidates: the lists go in many small batches
        scores = score_dataset(client, s5)
        np.testing.assert_allclose(scores, offline, rtol=0, atol=ATOL)
        too_long = ListDataset(np.zeros((151, 46)), np.zeros(151), np.array([0, 151]), ["long"])
        with pytest.raises(ConfigError, match="'long' has 151 candidates but the server scores"):
            score_dataset(client, too_long)
        holes = np.zeros((3, 46))
        holes[2, 5] = (
            np.nan
        )  # a missing value: offline it is the feature's mean, on the wire nothing
        with_holes = ListDataset(holes, np.zeros(3), np.array([0, 1, 3]), ["a", "b"])
        with pytest.raises(DataFormatError, match=r"query 'b' has a missing .* \(row 2\)"):
            score_dataset(client, with_holes)
    data = str(mq2008_dir / "S5.txt.xz")
    got = {}
    for source in (["--model", str(tiny_artifact)], ["--server", server.target]):
        assert main(["evaluate", *source, "--data", data, "--format", "json"]) == 0
        got[source[0]] = json.loads(capsys.readouterr().out)
    for convention, values in got["--model"].items():
        for name, value in values.items():
            assert got["--server"][convention][name] == pytest.approx(value, abs=1e-6), name
    assert main(["evaluate", "--server", server.target, "--data", data]) == 0
    assert f"tiny-model {load_model(tiny_artifact).manifest.version or 'unversioned'} at" in (
        capsys.readouterr().out
    )
