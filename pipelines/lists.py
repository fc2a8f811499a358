"""The per-list scorer shared by every pipeline: flat rows of whole queries -> scores and ranks.

Rows of a query are contiguous; ``offsets [Q + 1]`` say where each query starts
(query ``q`` owns rows ``offsets[q]:offsets[q + 1]``). Lists are always scored whole: they are
sorted by length, padded into batches of at most ``batch_size`` lists (and about ``max_slots``
padded candidates), and scored by a :class:`ltr.predictor.Predictor`. Models that take initial
ranks or a context vector get them padded the way the server pads them
(:func:`ltr.serve.scoring.pad`): ranks are 0 (unknown) at padded slots, contexts one row per list.

Ranks are 1-based within each query, by descending score; equal scores are ranked in input order
(the earlier row first), and NaN scores come last.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltr.errors import DataFormatError
from ltr.predictor import Predictor

DEFAULT_BATCH_SIZE = 128
"""Lists per forward pass (as in ``ltr evaluate``)."""
DEFAULT_MAX_SLOTS = 1 << 16
"""Padded candidates per forward pass, ``batch * longest list`` (a longer list goes alone)."""


def score_flat(
    predictor: Predictor,
    features: np.ndarray,
    offsets: np.ndarray,
    *,
    initial_rank: np.ndarray | None = None,
    context: np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_slots: int = DEFAULT_MAX_SLOTS,
) -> np.ndarray:
    """Score every row of every list with ``predictor``.

    Args:
        predictor: any :class:`ltr.predictor.Predictor` (torch or ONNX backend).
        features: ``[N, F]`` float32 features, rows of a query contiguous.
        offsets: ``[Q + 1]`` int64 row offsets of the queries.
        initial_rank: ``[N]`` int 1-based initial rank of each row (0 = unknown), for models
            that use initial ranks (see :mod:`ltr.data.list_inputs`).
        context: ``[Q, C]`` float32 context vector of each query, for models that take one.
        batch_size: most lists per forward pass.
        max_slots: most padded candidates (lists x longest) per forward pass.

    Returns:
        ``[N]`` float32 scores aligned with the rows.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    if initial_rank is not None:
        initial_rank = np.asarray(initial_rank, dtype=np.int64)  # (N,)
    if context is not None:
        context = np.asarray(context, dtype=np.float32)  # (Q, C)
    lengths = np.diff(offsets)  # [Q]
    scores = np.empty(features.shape[0], dtype=np.float32)
    order = np.argsort(lengths, kind="stable")  # shortest first: little padding
    start = 0
    while start < order.size:
        stop = min(start + batch_size, order.size)
        longest = int(lengths[order[stop - 1]])
        while stop - start > 1 and (stop - start) * longest > max_slots:
            stop = start + max(1, max_slots // max(longest, 1))
            longest = int(lengths[order[stop - 1]])
        queries = order[start:stop]  # [B]
        cols = np.arange(longest)  # [L]
        mask = cols[None, :] < lengths[queries][:, None]  # [B, L]
        rows = offsets[queries][:, None] + cols[None, :]  # [B, L]
        padded = np.zeros((len(queries), longest, features.shape[1]), dtype=np.float32)
        real = rows[mask]  # [n] the rows behind the real slots, slot by slot
        padded[mask] = features[real]  # (B, L, F)
        ranks = None
        if initial_rank is not None:
            ranks = np.zeros((len(queries), longest), dtype=np.int64)  # (B, L), 0 = padded
            ranks[mask] = initial_rank[real]
        ctx = None if context is None else context[queries]  # (B, C)
        out = predictor.predict(padded, mask, ranks, ctx)  # (B, L)
        scores[real] = out[mask]
        start = stop
    return scores


def rank_in_lists(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """1-based rank of each row within its query by descending score, ties by input order.

    Args:
        scores: ``[N]`` scores. offsets: ``[Q + 1]`` row offsets.

    Returns:
        ``[N]`` int32 ranks; within a query of ``n`` rows the ranks are a permutation of ``1..n``.

    Example:
        >>> rank_in_lists(np.array([0.1, 0.9, 0.5, 2.0, 2.0]), np.array([0, 3, 5])).tolist()
        [3, 1, 2, 1, 2]
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = int(offsets[-1])
    query = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))  # [N]
    key = -np.asarray(scores, dtype=np.float64)  # NaN sorts last
    order = np.lexsort((key, query))  # by query, then score desc; stable: ties keep row order
    ranks = np.empty(n, dtype=np.int32)
    ranks[order] = np.arange(n) - offsets[query[order]] + 1
    return ranks


def query_starts(qids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Indices where a new query begins in a row-ordered Arrow column of query ids.

    Raises:
        DataFormatError: a query id is null.
    """
    if isinstance(qids, pa.ChunkedArray):
        qids = qids.combine_chunks()
    n = len(qids)
    if qids.null_count:
        row = int(pc.index(pc.is_null(qids), True).as_py())
        raise DataFormatError(f"the query id is null at row {row}; every row needs a query id")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = pc.not_equal(qids.slice(1), qids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)


def offsets_of(qids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``[Q + 1]`` offsets of the runs of equal query ids (rows of a query must be contiguous)."""
    return np.append(query_starts(qids), len(qids)).astype(np.int64)
