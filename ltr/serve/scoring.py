"""Score a batch of validated lists in one forward pass and rank each list.

Lists are padded to the longest one (zeros, mask False); the model's scores at padded slots are
never read. Ranking is by decreasing score; equal scores keep the request's order (stable sort).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltr.errors import InputError
from ltr.predictor import Predictor
from ltr.serve.domain import ModelRef, RankedList, ValidQuery


def pad(
    queries: Sequence[ValidQuery],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Pad lists into ``features [B, L, F]``, ``mask [B, L]``, ``initial_rank [B, L] | None``,
    ``context [B, C] | None``."""
    longest = max(len(q) for q in queries)
    f = queries[0].features.shape[1]
    features = np.zeros((len(queries), longest, f), dtype=np.float32)  # (B, L, F)
    mask = np.zeros((len(queries), longest), dtype=bool)  # (B, L)
    for b, q in enumerate(queries):
        features[b, : len(q)] = q.features
        mask[b, : len(q)] = True
    ranks = None
    if queries[0].initial_ranks is not None:
        ranks = np.zeros((len(queries), longest), dtype=np.int64)  # (B, L)
        for b, q in enumerate(queries):
            ranks[b, : len(q)] = q.initial_ranks
    context = None
    if queries[0].context is not None:
        context = np.stack([q.context for q in queries]).astype(np.float32)  # (B, C)
    return features, mask, ranks, context


def rank(query: ValidQuery, scores: np.ndarray, model: ModelRef) -> RankedList:
    """Order one list's ``[n]`` scores (best first), keeping ``top_k``."""
    order = np.argsort(-scores, kind="stable")  # (n,)
    if query.top_k is not None:
        order = order[: query.top_k]
    ids = query.candidate_ids
    return RankedList(
        query_id=query.query_id,
        ids=[ids[i] for i in order.tolist()],
        scores=scores[order],
        request_indices=order.astype(np.int64),
        model=model,
    )


def score_batch(
    predictor: Predictor, model: ModelRef, queries: Sequence[ValidQuery]
) -> list[RankedList | Exception]:
    """Score ``queries`` in one forward pass; one result (or error) per query, in order.

    A list whose feature count differs from the model's (possible only if the model was swapped
    for one with another schema after the list was validated) gets an :class:`InputError`.
    """
    width = predictor.loaded.manifest.num_features
    results: list[RankedList | Exception] = [
        InputError(
            f"the model now in use ({model.name} {model.version}) expects {width} features; "
            "check GetModelInfo and resend"
        )
        for _ in queries
    ]
    fit = [i for i, q in enumerate(queries) if q.features.shape[1] == width]
    if not fit:
        return results
    batch = [queries[i] for i in fit]
    features, mask, ranks, context = pad(batch)
    scores = predictor.predict(features, mask, ranks, context)  # (B, L)
    for b, i in enumerate(fit):
        n = len(queries[i])
        results[i] = rank(queries[i], np.asarray(scores[b, :n], dtype=np.float32), model)
    return results
