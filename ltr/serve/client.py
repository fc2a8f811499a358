"""A small blocking client for the reranking service.

Example::

    from ltr.serve.client import RerankerClient

    with RerankerClient("localhost:50051") as client:
        info = client.model_info()                      # name, version, feature names, limits
        ranked = client.rerank(["d1", "d2"], features)  # features: [2, info.spec.num_features]
        print(ranked.ids, ranked.scores, ranked.model.version)

For TLS pass ``ca=`` (the CA that signed the server's certificate), and ``cert=``/``key=`` for
mutual TLS. Failed calls raise :class:`RerankError`, which carries the gRPC status code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ltr.errors import LtrError
from ltr.serve import convert
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.domain import ModelInfo, RankedList, RerankQuery
from ltr.serve.tls import channel_credentials


class RerankError(LtrError):
    """A call to the reranker failed; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class RerankerClient:
    """Blocking client: :meth:`rerank`, :meth:`rerank_batch`, :meth:`model_info`, :meth:`health`.

    Args:
        target: ``host:port`` of the server.
        ca: PEM file of the CA to trust; turns TLS on.
        cert, key: PEM client certificate and key, for mutual TLS.
        timeout: default deadline per call, in seconds.
        max_message_bytes: largest message this client sends or accepts.
    """

    def __init__(
        self,
        target: str,
        *,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        timeout: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if ca is None and cert is None:
            self.channel = grpc.insecure_channel(target, options=options)
        else:
            creds = channel_credentials(ca, cert, key)
            self.channel = grpc.secure_channel(target, creds, options=options)
        self.stub = pb_grpc.RerankerStub(self.channel)
        self.timeout = timeout

    def __enter__(self) -> RerankerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _invoke(self, method, request, timeout: float | None):
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise RerankError(exc.code(), exc.details() or "") from None

    def rerank(
        self,
        candidate_ids: Sequence[str],
        features: np.ndarray,
        *,
        query_id: str = "",
        top_k: int | None = None,
        initial_ranks: np.ndarray | None = None,
        context: np.ndarray | None = None,
        model_name: str = "",
        timeout: float | None = None,
    ) -> RankedList:
        """Rank one list: ``features [n, F]`` for ``n`` candidate ids."""
        query = RerankQuery.from_matrix(
            list(candidate_ids),
            features,
            query_id=query_id,
            initial_ranks=initial_ranks,
            context=context,
            top_k=top_k,
            model_name=model_name,
        )
        response = self._invoke(self.stub.Rerank, convert.query_to_proto(query), timeout)
        return convert.ranked_from_proto(response)

    def rerank_batch(
        self, queries: Sequence[RerankQuery], *, timeout: float | None = None
    ) -> list[RankedList]:
        """Rank several lists in one call (build them with ``RerankQuery.from_matrix``)."""
        request = pb.RerankBatchRequest(requests=[convert.query_to_proto(q) for q in queries])
        response = self._invoke(self.stub.RerankBatch, request, timeout)
        return [convert.ranked_from_proto(r) for r in response.responses]

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        """The served model (name, version, features) and the server's limits."""
        message = self._invoke(self.stub.GetModelInfo, pb.GetModelInfoRequest(), timeout)
        return convert.info_from_proto(message)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The standard health check's status name (``SERVING``, ``NOT_SERVING``, ...)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._invoke(stub.Check, request, timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
