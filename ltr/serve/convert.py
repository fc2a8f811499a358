"""Wire messages <-> domain objects, both directions (used by the servicer and the client).

Feature vectors are read with one pass over the candidates into flat numpy arrays; whether they
make sense is :mod:`ltr.serve.validation`'s business, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve.domain import ModelInfo, ModelRef, ModelSpec, RankedList, RerankQuery, TextQuery

BACKENDS = {"onnx": pb.BACKEND_ONNX_RUNTIME, "torch": pb.BACKEND_PYTORCH}
BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}


def _wire_view() -> type:
    """A message class that reads ``RerankRequest`` bytes with each candidate's ``features`` as
    raw ``bytes``.

    A packed ``repeated float`` is on the wire exactly a length-delimited run of little-endian
    float32 values, i.e. what a ``bytes`` field with the same number holds; reading it as bytes
    lets numpy take a whole list's features in one copy instead of one Python float at a time
    (about 4x faster decoding at 1,000 candidates). Field numbers come from the real descriptors,
    so the view follows the proto. Only bytes this process serialised are read through it
    (always one packed run per vector), never a client's bytes directly.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    kind = descriptor_pb2.FieldDescriptorProto
    number = {
        (m.name, f.name): f.number
        for m in (pb.Candidate.DESCRIPTOR, pb.RerankRequest.DESCRIPTOR)
        for f in m.fields
    }
    file = descriptor_pb2.FileDescriptorProto(
        name="ltr_reranker_wire_view.proto", package="ltr_wire_view", syntax="proto3"
    )
    candidate = file.message_type.add(name="Candidate")
    for name, type_ in (
        ("id", kind.TYPE_STRING),
        ("features", kind.TYPE_BYTES),
        ("initial_rank", kind.TYPE_UINT32),
    ):
        candidate.field.add(
            name=name, number=number["Candidate", name], type=type_, label=kind.LABEL_OPTIONAL
        )
    request = file.message_type.add(name="Request")
    request.field.add(
        name="candidates",
        number=number["RerankRequest", "candidates"],
        type=kind.TYPE_MESSAGE,
        type_name=".ltr_wire_view.Candidate",
        label=kind.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ltr_wire_view.Request"))


_WireRequest = _wire_view()


def query_from_proto(request: pb.RerankRequest) -> RerankQuery:
    """A :class:`RerankQuery` from a ``RerankRequest`` (no checks beyond decoding)."""
    # Re-serialising gives canonical bytes (one packed run per vector, whatever encoding the
    # client used), which the wire view then reads without a Python object per float.
    wire = _WireRequest.FromString(request.SerializeToString()).candidates
    ids: list[str] = []
    vectors: list[bytes] = []
    ranks: list[int] = []
    for c in wire:  # one pass: each candidate's wrapper object is made once (2x faster than 3)
        ids.append(c.id)
        vectors.append(c.features)
        ranks.append(c.initial_rank)
    n = len(ids)
    counts = np.fromiter(map(len, vectors), dtype=np.int64, count=n) // 4
    features = np.frombuffer(b"".join(vectors), dtype="<f4").astype(np.float32, copy=False)
    initial = np.array(ranks, dtype=np.int64)
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


def text_query_from_proto(request: pb.RerankTextRequest) -> TextQuery:
    """A :class:`TextQuery` from a ``RerankTextRequest`` (no checks beyond decoding)."""
    candidates = request.candidates
    return TextQuery(
        query_id=request.query_id,
        query=request.query,
        candidate_ids=[c.id for c in candidates],
        texts=[c.text for c in candidates],
        top_k=request.top_k if request.HasField("top_k") else None,
        model_name=request.model_name,
    )


def text_query_to_proto(query: TextQuery) -> pb.RerankTextRequest:
    """The ``RerankTextRequest`` for a text query (client side)."""
    request = pb.RerankTextRequest(
        query_id=query.query_id,
        query=query.query,
        candidates=[
            pb.TextCandidate(id=cid, text=text)
            for cid, text in zip(query.candidate_ids, query.texts, strict=True)
        ],
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
        impression_id=ranked.impression_id,
    )
    if ranked.challenger is not None:
        response.challenger.name = ranked.challenger.name
        response.challenger.version = ranked.challenger.version
    add = response.candidates.add  # in place: about half the cost of building and copying
    for cid, score, index in zip(
        ranked.ids, ranked.scores.tolist(), ranked.request_indices.tolist(), strict=True
    ):
        add(id=cid, score=score, request_index=index)
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
        impression_id=response.impression_id,
        challenger=_ref_or_none(response, "challenger"),
    )


def _ref_or_none(message, field: str) -> ModelRef | None:
    """The :class:`ModelRef` in ``message.field``, or None when the field is unset."""
    if not message.HasField(field):
        return None
    ref = getattr(message, field)
    return ModelRef(ref.name, ref.version)


def batch_from_proto(request: pb.RerankBatchRequest) -> list[RerankQuery]:
    return [query_from_proto(r) for r in request.requests]


def batch_to_proto(ranked: Sequence[RankedList]) -> pb.RerankBatchResponse:
    return pb.RerankBatchResponse(responses=[ranked_to_proto(r) for r in ranked])


def info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    spec = info.spec
    rival = info.challenger
    return pb.ModelInfo(
        model=pb.ModelRef(name=spec.ref.name, version=spec.ref.version),
        challenger=None if rival is None else pb.ModelRef(name=rival.name, version=rival.version),
        num_features=spec.num_features,
        feature_names=list(spec.feature_names),
        max_candidates=info.max_candidates,
        backend=BACKENDS[spec.backend],
        uses_initial_rank=spec.uses_initial_rank,
        context_dim=spec.context_dim,
        max_message_bytes=info.max_message_bytes,
        context_columns=list(spec.context_columns),
        accepts_text=spec.accepts_text,
    )


def info_from_proto(message: pb.ModelInfo) -> ModelInfo:
    spec = ModelSpec(
        ref=ModelRef(message.model.name, message.model.version),
        feature_names=tuple(message.feature_names),
        uses_initial_rank=message.uses_initial_rank,
        context_dim=message.context_dim,
        backend=BACKEND_NAMES[message.backend],
        context_columns=tuple(message.context_columns),
        accepts_text=message.accepts_text,
    )
    return ModelInfo(
        spec,
        message.max_candidates,
        message.max_message_bytes,
        challenger=_ref_or_none(message, "challenger"),
    )
