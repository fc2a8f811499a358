"""Score a batch of validated lists in one forward pass and rank each list.

Lists are padded to the longest one (zeros, mask False); the model's scores at padded slots are
never read. Ranking is by decreasing score; equal scores keep the request's order (stable sort).
Text lists first get their feature rows from the model's featurizer (:func:`featurize`), within
the same batch, so features and scores always come from one model version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ltr.errors import InputError
from ltr.predictor import Predictor
from ltr.serve.domain import ModelRef, ModelSpec, RankedList, ValidQuery, ValidTextQuery
from ltr.serve.errors import TextNotServedError

if TYPE_CHECKING:
    from ltr.text.featurizer import TextFeaturizer

log = logging.getLogger("ltr.serve")


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


def featurize(
    featurizer: TextFeaturizer | None,
    spec: ModelSpec,
    items: Sequence[ValidQuery | ValidTextQuery],
) -> list[ValidQuery | Exception]:
    """Each text list as a :class:`ValidQuery` of ``featurizer``'s rows (feature lists pass as
    they are); a list that cannot be featurized gets its error instead.

    A model that takes initial ranks gets each text list's own order, ``1..n``; a model with a
    context vector gets the featurizer's vector of each list's query.
    """
    out: list[ValidQuery | Exception] = list(items)  # type: ignore[arg-type]
    text = [i for i, q in enumerate(items) if isinstance(q, ValidTextQuery)]
    if not text:
        return out
    if featurizer is None:  # the model was swapped for one without a featurizer meanwhile
        for i in text:
            out[i] = TextNotServedError(
                f"the model now in use ({spec.ref.name} {spec.ref.version}) came without a text "
                "featurizer; call Rerank with feature vectors"
            )
        return out
    lists = [items[i] for i in text]
    contexts: Sequence[np.ndarray | None] = [None] * len(lists)
    try:
        rows = featurizer.list_features([q.query for q in lists], [q.texts for q in lists])
        if spec.context_dim:  # the featurizer's query vectors (paired when the model loaded)
            contexts = featurizer.query_context([q.query for q in lists])  # (T, C)
    except Exception as exc:  # a bug; fail these lists, not the feature lists beside them
        log.error("computing text features failed", exc_info=exc)
        for i in text:
            out[i] = exc
        return out
    for i, q, x, context in zip(text, lists, rows, contexts, strict=True):
        n = len(q)
        out[i] = ValidQuery(
            query_id=q.query_id,
            candidate_ids=q.candidate_ids,
            features=np.ascontiguousarray(x, dtype=np.float32),  # (n, F)
            initial_ranks=np.arange(1, n + 1, dtype=np.int64) if spec.uses_initial_rank else None,
            context=context,
            top_k=q.top_k,
        )
    return out
