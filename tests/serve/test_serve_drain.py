"""Overload and shutdown on a real server: a full queue refuses at once; SIGTERM drains.

The server batches with a long window (5 s), so the calls it accepts are provably still in flight
when the queue fills up and when SIGTERM arrives.
"""

from __future__ import annotations

import signal
import time

import grpc
import numpy as np
import pytest

from ltr.artifact import load_model
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from tests.serve._helpers import ServerProcess, metric, offline_scores

CAPACITY = 8


def request_of(s5, q: int) -> pb.RerankRequest:
    rows = s5[q].rows
    return pb.RerankRequest(
        query_id=str(q),
        candidates=[pb.Candidate(id=f"r{r}", features=s5.features[r].tolist()) for r in rows],
    )


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def test_full_queue_refuses_at_once_and_sigterm_completes_every_accepted_call(
    tmp_path, tiny_artifact, s5
) -> None:
    server = ServerProcess(
        tmp_path,
        tiny_artifact,
        "--backend", "torch",
        "--batching.max_delay_ms", "5000",
        "--batching.max_batch_size", "64",
        "--batching.queue_capacity", str(CAPACITY),
    ).wait_ready()  # fmt: skip
    try:
        channel = server.channel()
        stub = pb_grpc.RerankerStub(channel)
        accepted = [stub.Rerank.future(request_of(s5, q), timeout=60) for q in range(CAPACITY)]
        wait_for(lambda: metric(server.scrape(), "ltr_queue_depth") == CAPACITY)

        with pytest.raises(grpc.RpcError) as full:
            stub.Rerank(request_of(s5, 99), timeout=30)
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full (8 of 8 waiting)" in full.value.details()
        assert not any(f.done() for f in accepted)  # refused without waiting for them

        server.signal(signal.SIGTERM)
        wait_for(lambda: "draining" in server.log())  # logged once new calls are refused
        for client in (stub, pb_grpc.RerankerStub(server.channel())):
            with pytest.raises(grpc.RpcError) as refused:
                client.Rerank(request_of(s5, 100), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.proc.poll() is None and not any(f.done() for f in accepted)

        offline = offline_scores(load_model(tiny_artifact).model, s5)
        for q, future in enumerate(accepted):
            response = future.result()  # raises if the call failed
            got = {c.id: c.score for c in response.candidates}
            want = {f"r{r}": offline[r] for r in s5[q].rows}
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)
        assert server.proc.wait(timeout=60) == 0
        assert "draining" in server.log()
    finally:
        server.kill()
