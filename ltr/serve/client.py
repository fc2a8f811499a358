"""A small blocking client for the reranking service.

Example::

    from ltr.serve.client import RerankerClient

    with RerankerClient("localhost:50051") as client:
        info = client.model_info()                      # name, version, feature names, limits
        ranked = client.rerank(["d1", "d2"], features)  # features: [2, info.spec.num_features]
        print(ranked.ids, ranked.scores, ranked.model.version)

For TLS pass ``ca=`` (the CA that signed the server's certificate), and ``cert=``/``key=`` for
mutual TLS. Failed calls raise :class:`RerankError`, which carries the gRPC status code.

Calls the server refuses for a passing reason are retried by gRPC itself (a retry policy in the
channel's service config), with exponential backoff within the call's deadline:
``RESOURCE_EXHAUSTED`` (the request queue is full) and ``UNAVAILABLE`` (the server is draining or
not reachable yet). Reranking is read-only, so a retried call cannot do anything twice. A request
over the server's size limit is also ``RESOURCE_EXHAUSTED`` and is retried in vain; stay under
``model_info().max_message_bytes``. ``retries=0`` turns retrying off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ltr.errors import LtrError
from ltr.serve import convert
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.domain import (
    MAX_CLICKS_PER_CALL,
    ModelInfo,
    ModelSpec,
    RankedList,
    RerankQuery,
    TextQuery,
)
from ltr.serve.tls import channel_credentials


class RerankError(LtrError):
    """A call to the reranker failed; ``code`` is the gRPC status code, ``details`` gRPC's text
    and ``hint`` what to check (may be empty), which the message adds after them."""

    def __init__(self, code: grpc.StatusCode, details: str, hint: str = "") -> None:
        super().__init__(f"{code.name}: {details}" + (f"; {hint}" if hint else ""))
        self.code = code
        self.details = details
        self.hint = hint


RETRYABLE = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
"""Status codes retried by the client: the server's queue is full, or it is draining/unreachable."""
MAX_RETRIES = 4  # gRPC allows at most 5 attempts per call


def retry_service_config(retries: int, initial_backoff: float = 0.02) -> str:
    """The gRPC service config (JSON) that retries every ``Reranker`` call up to ``retries``
    times on :data:`RETRYABLE` codes, backing off ``initial_backoff`` seconds, then twice as long
    each time (at most 1 s; gRPC adds jitter). Health checks are not retried."""
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be between 0 and {MAX_RETRIES}, got {retries}")
    if retries == 0:
        return json.dumps({"methodConfig": []})
    policy = {
        "maxAttempts": retries + 1,
        "initialBackoff": f"{initial_backoff:g}s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(RETRYABLE),
    }
    service = pb.DESCRIPTOR.services_by_name["Reranker"].full_name  # health checks: no retries
    return json.dumps({"methodConfig": [{"name": [{"service": service}], "retryPolicy": policy}]})


class RerankerClient:
    """Blocking client: :meth:`rerank`, :meth:`rerank_batch`, :meth:`rerank_text`,
    :meth:`record_clicks`, :meth:`model_info`, :meth:`health`.

    Args:
        target: ``host:port`` of the server.
        ca: PEM file of the CA to trust; turns TLS on.
        cert, key: PEM client certificate and key, for mutual TLS.
        timeout: default deadline per call, in seconds (retries included).
        max_message_bytes: largest message this client sends or accepts.
        retries: retries of a call refused with a :data:`RETRYABLE` code (0 to 4; 0 = none).
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
        retries: int = 3,
    ) -> None:
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 1 if retries else 0),
            ("grpc.service_config", retry_service_config(retries)),
        ]
        if ca is None and cert is None:
            self.channel = grpc.insecure_channel(target, options=options)
        else:
            creds = channel_credentials(ca, cert, key)
            self.channel = grpc.secure_channel(target, creds, options=options)
        self.stub = pb_grpc.RerankerStub(self.channel)
        self.timeout = timeout
        self.target = target
        self.tls = ca is not None or cert is not None

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
            hint = self.unavailable_hint() if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
            raise RerankError(exc.code(), exc.details() or "", hint) from None

    def unavailable_hint(self) -> str:
        """What to check when the server is not reachable (``UNAVAILABLE``)."""
        where = f"check that `ltr serve` is running and listening on {self.target}"
        if self.tls:
            return (
                f"{where} with TLS, its certificate signed by the CA given as --ca (and, for "
                "mutual TLS, that --cert and --key are a client certificate and key it accepts)"
            )
        return f"{where} without TLS (a server with TLS needs --ca)"

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
        return self.rerank_query(query, timeout=timeout)

    def rerank_query(self, query: RerankQuery, *, timeout: float | None = None) -> RankedList:
        """Rank one list given as a :class:`RerankQuery` (see :func:`query_of` for data files)."""
        response = self._invoke(self.stub.Rerank, convert.query_to_proto(query), timeout)
        return convert.ranked_from_proto(response)

    def rerank_batch(
        self, queries: Sequence[RerankQuery], *, timeout: float | None = None
    ) -> list[RankedList]:
        """Rank several lists in one call (build them with ``RerankQuery.from_matrix``)."""
        request = pb.RerankBatchRequest(requests=[convert.query_to_proto(q) for q in queries])
        response = self._invoke(self.stub.RerankBatch, request, timeout)
        return [convert.ranked_from_proto(r) for r in response.responses]

    def rerank_text(
        self,
        query: str,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        query_id: str = "",
        top_k: int | None = None,
        model_name: str = "",
        timeout: float | None = None,
    ) -> RankedList:
        """Rank one query's candidate ``texts`` (in the first stage's order) on a server with a
        text featurizer (``model_info().spec.accepts_text``); ``ids`` default to ``"0"``,
        ``"1"``, ... by position."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of candidate texts, not one string")
        ids = [str(i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} candidate texts")
        request = convert.text_query_to_proto(
            TextQuery(query_id, query, ids, list(texts), top_k, model_name)
        )
        return convert.ranked_from_proto(self._invoke(self.stub.RerankText, request, timeout))

    def record_clicks(
        self, clicks: Iterable[tuple[str, str]], *, timeout: float | None = None
    ) -> int:
        """Send users' clicks back, ``(impression_id, candidate_id)`` pairs, for the server's
        click log (``RecordClicks``, in calls of at most 10,000); returns how many it took (no
        call for no clicks)."""
        pairs = [(str(s), str(c)) for s, c in clicks]
        recorded = 0
        for start in range(0, len(pairs), MAX_CLICKS_PER_CALL):
            request = pb.RecordClicksRequest(
                clicks=[
                    pb.Click(impression_id=s, candidate_id=c)
                    for s, c in pairs[start : start + MAX_CLICKS_PER_CALL]
                ]
            )
            recorded += self._invoke(self.stub.RecordClicks, request, timeout).recorded
        return recorded

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


def load_served_data(
    spec: ModelSpec,
    paths,
    *,
    group_file: str | Path | None = None,
    context_columns: Sequence[str] | None = None,
    labels: bool = True,
):
    """A LETOR/Parquet :class:`~ltr.data.dataset.ListDataset` for the model a server reports
    (``labels``: whether the data must carry labels, as for evaluation).

    The context vector, if the model takes one, comes from ``context_columns``, else the columns
    the model was trained with (``spec.context_columns``), else the list column ``context``.

    Raises:
        DataFormatError: the data's feature count is not the model's.
    """
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.errors import DataFormatError

    config = {"use_initial_rank": spec.uses_initial_rank, "context_dim": spec.context_dim}
    context = resolve(
        config, context_columns=context_columns, trained_context_columns=spec.context_columns
    )
    data = load_dataset(
        paths,
        group_file=group_file,
        num_features=spec.num_features,
        context=context,
        labels=labels,
    )
    if data.num_features != spec.num_features:
        raise DataFormatError(
            f"the data has {data.num_features} features but the served model expects "
            f"{spec.num_features}"
        )
    return data


def query_of(data, index: int, *, uses_initial_rank: bool, ids: Sequence[str] | None = None):
    """List ``index`` of a :class:`~ltr.data.dataset.ListDataset` as a :class:`RerankQuery`.

    Candidate ids are ``ids`` (default: the rows' numbers in the data, unique by construction);
    a model that uses initial ranks gets the file's order (as in training and ``ltr evaluate``);
    the list's context vector goes along when the data carries one.
    """
    item = data[index]
    return RerankQuery.from_matrix(
        list(ids) if ids is not None else [str(r) for r in item.rows.tolist()],
        item.features,
        query_id=str(data.qids[index]),
        initial_ranks=item.ranks() if uses_initial_rank else None,
        context=item.context,
    )


def check_servable(data, info: ModelInfo, *, offline: str) -> None:
    """Refuse data a server would refuse list by list: a missing or non-finite feature value,
    a list longer than the server's ``max_candidates`` (``offline``: what to do instead, for the
    first message).

    Raises:
        DataFormatError, ConfigError: naming the first such query.
    """
    from ltr.errors import ConfigError, DataFormatError

    missing = ~np.isfinite(data.features)
    if missing.any():
        row = int(np.argwhere(missing)[0][0])
        q = int(np.searchsorted(data.offsets, row, side="right")) - 1
        raise DataFormatError(
            f"query {data.qids[q]!r} has a missing or non-finite feature value (row {row}); the "
            f"server refuses those (a request has no way to say 'missing'), so {offline}, or "
            "fill the values first"
        )
    lengths = data.list_lengths
    if int(lengths.max()) > info.max_candidates:
        q = int(np.argmax(lengths))
        raise ConfigError(
            f"query {data.qids[q]!r} has {int(lengths[q])} candidates but the server scores at "
            f"most {info.max_candidates} per list; raise its max_candidates to send whole lists"
        )


def score_dataset(
    client: RerankerClient, data, *, lists_per_call: int = 32, progress: bool | None = None
) -> np.ndarray:
    """``[rows]`` float64 scores of every row of ``data`` from the served model.

    Lists go in ``RerankBatch`` calls of up to ``lists_per_call`` lists, fewer when that would
    come near the server's message limit; each list is scored whole, so a list longer than the
    server's ``max_candidates`` is an error (split lists would change the scores).
    ``progress``: a bar on stderr (None = only on a terminal).
    """
    import sys

    from tqdm import tqdm

    info = client.model_info()
    check_servable(data, info, offline="evaluate this data offline with --model")
    spec = info.spec
    lengths = data.list_lengths
    # bytes per candidate on the wire: features, id and framing (generously), half the limit
    per_candidate = 4 * spec.num_features + 32
    budget = max(info.max_message_bytes // 2, per_candidate * int(lengths.max()))
    scores = np.full(data.num_rows, np.nan)
    shown = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=len(data), unit="list", disable=not shown, desc="scoring") as bar:
        start = 0
        while start < len(data):
            stop, size = start, 0
            while stop < len(data) and stop - start < lists_per_call:
                size += per_candidate * int(lengths[stop])
                if stop > start and size > budget:
                    break
                stop += 1
            queries = [
                query_of(data, q, uses_initial_rank=spec.uses_initial_rank)
                for q in range(start, stop)
            ]
            for query, ranked in zip(queries, client.rerank_batch(queries), strict=True):
                rows = np.asarray(query.candidate_ids, dtype=np.int64)
                scores[rows[ranked.request_indices]] = ranked.scores
            bar.update(stop - start)
            start = stop
    if np.isnan(scores).any():
        raise RerankError(
            grpc.StatusCode.DATA_LOSS, "the server returned fewer candidates than were sent"
        )
    return scores
