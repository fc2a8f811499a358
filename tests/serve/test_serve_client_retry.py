"""The client's retry policy against a real gRPC server on loopback that refuses on purpose.

The server here is a plain ``grpc.server`` whose ``Rerank`` fails its first calls with a chosen
status code and then answers; it counts the attempts that reached it, so each case shows exactly
how many times gRPC's retry machinery (configured by :class:`RerankerClient`) sent the call.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.client import RerankerClient, RerankError, retry_service_config


class Refusing(pb_grpc.RerankerServicer):
    """Fails the first ``failures`` calls with ``code``, then ranks by the first feature."""

    def __init__(self, code: grpc.StatusCode, failures: int) -> None:
        self.code, self.failures = code, failures
        self.attempts = 0
        self.lock = threading.Lock()

    def Rerank(self, request, context):
        with self.lock:
            self.attempts += 1
            attempt = self.attempts
        if attempt <= self.failures:
            context.abort(self.code, f"refused on purpose (attempt {attempt})")
        firsts = [c.features[0] for c in request.candidates]
        order = np.argsort(firsts)[::-1]
        response = pb.RerankResponse(query_id=request.query_id)
        for i in order.tolist():
            response.candidates.add(id=request.candidates[i].id, score=firsts[i], request_index=i)
        return response


@pytest.fixture
def serve():
    servers = []

    def start(code: grpc.StatusCode, failures: int) -> tuple[str, Refusing]:
        servicer = Refusing(code, failures)
        server = grpc.server(futures.ThreadPoolExecutor(2))
        pb_grpc.add_RerankerServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", servicer

    yield start
    for server in servers:
        server.stop(None)


FEATURES = np.array([[0.1], [0.9], [0.5]], dtype=np.float32)


def test_a_full_queue_is_retried_until_the_server_answers(serve) -> None:
    target, servicer = serve(grpc.StatusCode.RESOURCE_EXHAUSTED, failures=2)
    with RerankerClient(target, retries=3) as client:
        ranked = client.rerank(["a", "b", "c"], FEATURES)
    assert ranked.ids == ["b", "c", "a"]
    assert servicer.attempts == 3  # two refusals, then the answer


def test_retries_stop_after_the_configured_number(serve) -> None:
    target, servicer = serve(grpc.StatusCode.UNAVAILABLE, failures=100)
    with RerankerClient(target, retries=2) as client, pytest.raises(RerankError) as err:
        client.rerank(["a", "b", "c"], FEATURES)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert "attempt 3" in err.value.details
    assert servicer.attempts == 3


@pytest.mark.parametrize(
    ("code", "retries"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0),  # retrying turned off
        (grpc.StatusCode.INVALID_ARGUMENT, 4),  # a bad request is not retried
        (grpc.StatusCode.NOT_FOUND, 4),
    ],
)
def test_other_codes_and_retries_0_fail_at_once(serve, code, retries) -> None:
    target, servicer = serve(code, failures=1)
    with RerankerClient(target, retries=retries) as client, pytest.raises(RerankError) as err:
        client.rerank(["a", "b", "c"], FEATURES)
    assert err.value.code == code
    assert servicer.attempts == 1


def test_retries_are_bounded_by_what_grpc_allows() -> None:
    with pytest.raises(ValueError, match="between 0 and 4"):
        retry_service_config(5)
    with pytest.raises(ValueError, match="between 0 and 4"):
        RerankerClient("127.0.0.1:1", retries=-1)


@pytest.mark.parametrize("command", ["rerank", "evaluate", "rerank-text"])
def test_an_unreachable_server_is_reported_with_what_to_check(
    command, mq2008_dir, tmp_path, capsys
):
    from ltr.cli import main
    from tests.serve._helpers import free_port

    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    docs = tmp_path / "hits.jsonl"
    docs.write_text('{"doc_id": "a", "text": "flow past a cylinder"}\n')
    data = ["--data", str(mq2008_dir / "S5.txt.xz")]
    rest = {"rerank": data, "evaluate": data, "rerank-text": ["--query", "q", "--docs", str(docs)]}
    assert main([command, "--server", target, "--timeout", "5", *rest[command]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ltr {command}: error: UNAVAILABLE: ") and err.count("\n") == 1, err
    assert "Connection refused" in err  # gRPC's own detail is kept
    assert f"; check that `ltr serve` is running and listening on {target} without TLS" in err
