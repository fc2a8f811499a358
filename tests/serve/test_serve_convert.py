"""Decoding requests: the fast wire-view decoder gives exactly what reading every float through
the generated message gives, whatever legal encoding the client used."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ltr.serve import convert
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb


def _reference(request: pb.RerankRequest) -> tuple[list[str], list[list[float]], list[int]]:
    """Independent decoding: one Python float at a time through the generated classes."""
    cands = list(request.candidates)
    return [c.id for c in cands], [list(c.features) for c in cands], [c.initial_rank for c in cands]


def _check(request: pb.RerankRequest) -> None:
    query = convert.query_from_proto(request)
    ids, vectors, ranks = _reference(request)
    assert query.candidate_ids == ids
    assert query.feature_counts.tolist() == [len(v) for v in vectors]
    flat = np.array([x for v in vectors for x in v], dtype=np.float32)
    np.testing.assert_array_equal(query.features, flat)  # bit-exact, NaN and inf included
    assert query.features.dtype == np.float32
    if any(ranks):
        assert query.initial_ranks.tolist() == ranks
    else:
        assert query.initial_ranks is None
    assert query.query_id == request.query_id


@pytest.mark.parametrize("seed", range(5))
def test_random_requests_decode_like_the_generated_message(seed) -> None:
    rng = np.random.default_rng(seed)
    n, width = int(rng.integers(1, 300)), int(rng.integers(1, 60))
    candidates = []
    for i in range(n):
        # ragged lengths (what validation later rejects) must still decode faithfully
        k = width if rng.random() < 0.9 else int(rng.integers(0, 2 * width))
        values = rng.normal(size=k).astype(np.float32)
        if k and rng.random() < 0.1:
            values[rng.integers(0, k)] = rng.choice([np.nan, np.inf, -np.inf, -0.0])
        rank = int(rng.integers(0, n + 1)) if seed % 2 else 0
        candidates.append(pb.Candidate(id=f"döc-{i}-✓", features=values, initial_rank=rank))
    request = pb.RerankRequest(query_id=f"q{seed}", candidates=candidates, context=[1.5, -2.0])
    _check(request)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _candidate_bytes(cid: str, floats: list[float], *, mode: str) -> bytes:
    """A Candidate encoded by hand: features packed, unpacked, or packed in two runs."""
    body = b"\x0a" + _varint(len(cid.encode())) + cid.encode()  # field 1, length-delimited
    if mode == "unpacked":  # field 2, wire type 5 (fixed32), one tag per value
        body += b"".join(b"\x15" + struct.pack("<f", x) for x in floats)
    else:
        runs = [floats] if mode == "packed" else [floats[:2], floats[2:]]
        for run in runs:  # field 2, length-delimited; parsers must join consecutive runs
            payload = struct.pack(f"<{len(run)}f", *run)
            body += b"\x12" + _varint(len(payload)) + payload
    body += b"\x18" + _varint(7)  # field 3 (initial_rank) = 7
    return b"\x12" + _varint(len(body)) + body  # RerankRequest field 2 (candidates)


@pytest.mark.parametrize("mode", ["packed", "unpacked", "split"])
def test_every_legal_float_encoding_decodes(mode) -> None:
    floats = [[0.5, -1.25, 3.0, 4.5], [2.0, 0.0, -0.0, 1e-30]]
    raw = b"".join(_candidate_bytes(f"c{i}", f, mode=mode) for i, f in enumerate(floats))
    request = pb.RerankRequest.FromString(raw)
    query = convert.query_from_proto(request)
    np.testing.assert_array_equal(query.features, np.array(floats, np.float32).ravel())
    assert query.feature_counts.tolist() == [4, 4]
    assert query.initial_ranks.tolist() == [7, 7]
    _check(request)
