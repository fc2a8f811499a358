"""Flat, query-grouped rows -> padded ``[batch, list]`` chunks for the tensor metric core.

Rows of one query are contiguous. Queries are described by ``offsets`` (``[Q + 1]`` int64, query
``q`` is rows ``offsets[q]:offsets[q + 1]``), built by :func:`group_offsets` from either an array of
query ids (SVMlight ``qid:``) or group sizes (LightGBM's ``.query``/``group``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ltr.errors import ConfigError, DataFormatError

DEFAULT_MAX_CELLS = 1 << 20
"""Padded cells (lists x slots) per chunk: about 8 MB per float64 ``[B, L]`` tensor."""


def group_offsets(
    *, query_ids: np.ndarray | None = None, group_sizes: np.ndarray | None = None
) -> np.ndarray:
    """Turn query ids or group sizes into ``[Q + 1]`` row offsets.

    Args:
        query_ids: ``[N]`` query id of each row; each query's rows must be contiguous.
        group_sizes: ``[Q]`` non-negative number of rows of each query, in row order.

    Returns:
        ``[Q + 1]`` int64 offsets ``0 = o_0 <= o_1 <= ... <= o_Q = N``.

    Example:
        >>> group_offsets(query_ids=np.array([7, 7, 3, 3, 3])).tolist()
        [0, 2, 5]
        >>> group_offsets(group_sizes=np.array([2, 3])).tolist()
        [0, 2, 5]
    """
    if (query_ids is None) == (group_sizes is None):
        raise ConfigError("pass exactly one of query_ids= or group_sizes=")
    if group_sizes is not None:
        sizes = np.asarray(group_sizes)
        if sizes.ndim != 1:
            raise DataFormatError(f"group sizes must be 1-D, got shape {sizes.shape}")
        if sizes.size and (not np.all(np.equal(np.mod(sizes, 1), 0)) or bool((sizes < 0).any())):
            raise DataFormatError("group sizes must be non-negative integers")
        return np.concatenate([[0], np.cumsum(sizes.astype(np.int64))]).astype(np.int64)
    ids = np.asarray(query_ids)
    if ids.ndim != 1:
        raise DataFormatError(f"query ids must be 1-D, got shape {ids.shape}")
    if ids.size == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])
    run_ids = ids[starts]
    uniq, counts = np.unique(run_ids, return_counts=True)
    if uniq.size != run_ids.size:
        raise DataFormatError(
            f"rows of query {uniq[counts > 1][0]!r} are not contiguous; sort the rows by query id "
            "(keeping each query's row order) before evaluating"
        )
    return np.concatenate([starts, [ids.size]]).astype(np.int64)


def check_offsets(offsets: np.ndarray, n_rows: int) -> np.ndarray:
    """Validate ``[Q + 1]`` offsets against ``n_rows`` rows; return them as int64."""
    off = np.asarray(offsets)
    if off.ndim != 1 or off.size == 0:
        raise DataFormatError(f"offsets must be a 1-D array [Q + 1], got shape {off.shape}")
    if off.size > 1 and not np.issubdtype(off.dtype, np.integer):
        raise DataFormatError(f"offsets must be integers, got dtype {off.dtype}")
    off = off.astype(np.int64)
    if off[0] != 0 or off[-1] != n_rows or bool((np.diff(off) < 0).any()):
        raise DataFormatError(
            f"offsets must rise from 0 to the number of rows ({n_rows}); got {off[0]}..{off[-1]}"
            " (do the group sizes add up to the row count?)"
        )
    return off


@dataclass(frozen=True)
class Chunk:
    """Some queries padded into tensors.

    Attributes:
        queries: ``[b]`` indices of the queries in this chunk (into ``offsets``).
        scores: ``[b, l]`` float64 scores (0 at padded slots).
        labels: ``[b, l]`` float64 labels (0 at padded slots).
        mask: ``[b, l]`` bool, ``True`` for real rows.
    """

    queries: np.ndarray
    scores: Tensor
    labels: Tensor
    mask: Tensor


def padded_chunks(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> Iterator[Chunk]:
    """Yield the queries padded into chunks of similar length, each of at most ``max_cells`` slots.

    Queries are visited in order of length, so padding is small and memory stays bounded for any
    number of rows (a single query longer than ``max_cells`` gets a chunk of its own).

    Args:
        scores: ``[N]`` scores. labels: ``[N]`` labels. offsets: ``[Q + 1]`` row offsets.
        max_cells: upper bound on ``b * l`` per chunk (except for one over-long query).
    """
    if max_cells < 1:
        raise ConfigError(f"max_cells must be positive, got {max_cells}")
    lengths = np.diff(offsets)  # [Q]
    order = np.argsort(lengths, kind="stable")  # [Q], shortest first
    sorted_len = lengths[order]
    start = 0
    while start < order.size:
        # sizes[j] = cells of a chunk order[start : start + j + 1]; nondecreasing in j.
        sizes = np.arange(1, order.size - start + 1) * np.maximum(sorted_len[start:], 1)
        stop = start + max(1, int(np.searchsorted(sizes, max_cells, side="right")))
        queries = order[start:stop]  # [b]
        width = int(sorted_len[stop - 1])
        cols = np.arange(width)  # [l]
        valid = cols[None, :] < lengths[queries][:, None]  # [b, l]
        rows = np.where(valid, offsets[queries][:, None] + cols[None, :], 0)  # [b, l]
        yield Chunk(
            queries=queries,
            scores=torch.from_numpy(np.where(valid, scores[rows], 0.0)),
            labels=torch.from_numpy(np.where(valid, labels[rows], 0.0)),
            mask=torch.from_numpy(valid),
        )
        start = stop
