"""The gRPC servicer: a thin adapter, proto -> domain object -> service call -> proto.

All decisions live in :class:`~ltr.serve.service.RerankService`; errors become status codes in
:mod:`ltr.serve.status`; this module only translates, passes the caller's deadline on, and records
each call's latency and status code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from ltr.serve import convert
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.metrics import ServerMetrics
from ltr.serve.service import RerankService
from ltr.serve.status import status_of

M = TypeVar("M")


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline on ``time.monotonic()``'s scale (None = no deadline)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class RerankerServicer(pb_grpc.RerankerServicer):
    """``ltr.reranker.v1.Reranker`` over a :class:`RerankService`."""

    def __init__(self, service: RerankService, metrics: ServerMetrics) -> None:
        self.service = service
        self.metrics = metrics

    async def _call(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        work: Callable[[float | None], Awaitable[M]],
    ) -> M:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await work(deadline_of(context))
        except asyncio.CancelledError:  # the caller went away or its deadline passed
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code, message = status_of(exc)
            await context.abort(code, message)
            raise  # unreachable: abort raises
        finally:
            self.metrics.observe_call(method, code.name, time.perf_counter() - started)

    async def Rerank(self, request: pb.RerankRequest, context) -> pb.RerankResponse:
        async def work(deadline: float | None) -> pb.RerankResponse:
            query = convert.query_from_proto(request)
            return convert.ranked_to_proto(await self.service.rerank(query, deadline))

        return await self._call("Rerank", context, work)

    async def RerankBatch(self, request: pb.RerankBatchRequest, context) -> pb.RerankBatchResponse:
        async def work(deadline: float | None) -> pb.RerankBatchResponse:
            queries = convert.batch_from_proto(request)
            return convert.batch_to_proto(await self.service.rerank_batch(queries, deadline))

        return await self._call("RerankBatch", context, work)

    async def RerankText(self, request: pb.RerankTextRequest, context) -> pb.RerankResponse:
        async def work(deadline: float | None) -> pb.RerankResponse:
            query = convert.text_query_from_proto(request)
            return convert.ranked_to_proto(await self.service.rerank_text(query, deadline))

        return await self._call("RerankText", context, work)

    async def RecordClicks(
        self, request: pb.RecordClicksRequest, context
    ) -> pb.RecordClicksResponse:
        async def work(deadline: float | None) -> pb.RecordClicksResponse:
            clicks = [(c.impression_id, c.candidate_id) for c in request.clicks]
            return pb.RecordClicksResponse(recorded=self.service.record_clicks(clicks))

        return await self._call("RecordClicks", context, work)

    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context) -> pb.ModelInfo:
        async def work(deadline: float | None) -> pb.ModelInfo:
            return convert.info_to_proto(self.service.model_info())

        return await self._call("GetModelInfo", context, work)
