"""Wire messages <-> domain objects, both directions (used by the servicer and the client).

Feature vectors are read with one pass over the candidates into flat numpy arrays; whether they
make sense is :mod:`ltr.serve.validation`'s business, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve.domain import ModelInfo, ModelRef, ModelSpec, RankedList, RerankQuery

BACKENDS = {"onnx": pb.BACKEND_ONNX_RUNTIME, "torch": pb.BACKEND_PYTORCH}
BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}


def query_from_proto(request: pb.RerankRequest) -> RerankQuery:
    """A :class:`RerankQuery` from a ``RerankRequest`` (no checks beyond decoding)."""
    ids: list[str] = []
    vectors = []
    ranks: list[int] = []
    for c in request.candidates:  # one pass; each field read once
        ids.append(c.id)
        vectors.append(c.features)
        ranks.append(c.initial_rank)
    n = len(ids)
    counts = np.fromiter(map(len, vectors), dtype=np.int64, count=n)
    features = np.fromiter(chain.from_iterable(vectors), dtype=np.float32, count=int(counts.sum()))
    initial = np.asarray(ranks, dtype=np.int64)
    return RerankQuery(
        query_id=request.query_id,
        candidate_ids=ids,
        features=features,
        feature_counts=counts,
        initial_ranks=initial if initial.any() else None,
        context=np.asarray(request.context, dtype=np.float32),
        top_k=request.top_k if request.HasField("top_k") else None,
        model_name=request.model_name,
    )


def query_to_proto(query: RerankQuery) -> pb.RerankRequest:
    """The ``RerankRequest`` for a query (client side)."""
    offsets = np.concatenate([[0], np.cumsum(query.feature_counts)]).astype(np.int64)
    values = np.asarray(query.features, dtype=np.float32)
    ranks = query.initial_ranks
    candidates = [
        pb.Candidate(
            id=cid,
            features=values[offsets[i] : offsets[i + 1]],
            initial_rank=0 if ranks is None else int(ranks[i]),
        )
        for i, cid in enumerate(query.candidate_ids)
    ]
    request = pb.RerankRequest(
        query_id=query.query_id,
        candidates=candidates,
        context=np.asarray(query.context, dtype=np.float32).tolist(),
        model_name=query.model_name,
    )
    if query.top_k is not None:
        request.top_k = query.top_k
    return request


def ranked_to_proto(ranked: RankedList) -> pb.RerankResponse:
    """The ``RerankResponse`` for a ranked list."""
    response = pb.RerankResponse(
        query_id=ranked.query_id,
        model=pb.ModelRef(name=ranked.model.name, version=ranked.model.version),
    )
    response.candidates.extend(
        [
            pb.RankedCandidate(id=cid, score=score, request_index=index)
            for cid, score, index in zip(
                ranked.ids, ranked.scores.tolist(), ranked.request_indices.tolist(), strict=True
            )
        ]
    )
    return response


def ranked_from_proto(response: pb.RerankResponse) -> RankedList:
    """A :class:`RankedList` from a ``RerankResponse`` (client side)."""
    candidates = response.candidates
    return RankedList(
        query_id=response.query_id,
        ids=[c.id for c in candidates],
        scores=np.fromiter((c.score for c in candidates), np.float32, count=len(candidates)),
        request_indices=np.fromiter(
            (c.request_index for c in candidates), np.int64, count=len(candidates)
        ),
        model=ModelRef(response.model.name, response.model.version),
    )


def batch_from_proto(request: pb.RerankBatchRequest) -> list[RerankQuery]:
    return [query_from_proto(r) for r in request.requests]


def batch_to_proto(ranked: Sequence[RankedList]) -> pb.RerankBatchResponse:
    return pb.RerankBatchResponse(responses=[ranked_to_proto(r) for r in ranked])


def info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    spec = info.spec
    return pb.ModelInfo(
        model=pb.ModelRef(name=spec.ref.name, version=spec.ref.version),
        num_features=spec.num_features,
        feature_names=list(spec.feature_names),
        max_candidates=info.max_candidates,
        backend=BACKENDS[spec.backend],
        uses_initial_rank=spec.uses_initial_rank,
        context_dim=spec.context_dim,
        max_message_bytes=info.max_message_bytes,
    )


def info_from_proto(message: pb.ModelInfo) -> ModelInfo:
    spec = ModelSpec(
        ref=ModelRef(message.model.name, message.model.version),
        feature_names=tuple(message.feature_names),
        uses_initial_rank=message.uses_initial_rank,
        context_dim=message.context_dim,
        backend=BACKEND_NAMES[message.backend],
    )
    return ModelInfo(spec, message.max_candidates, message.max_message_bytes)
