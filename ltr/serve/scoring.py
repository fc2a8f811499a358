"""Score a batch of validated lists in one forward pass and rank each list.

Lists are padded to the longest one (zeros, mask False); the model's scores at padded slots are
never read. Ranking is by decreasing score; equal scores keep the request's order (stable sort).
Text lists first get their feature rows from the model's featurizer (:func:`featurize`), within
the same batch, so features and scores always come from one model version.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ltr.errors import InputError
from ltr.predictor import Predictor
from ltr.serve.domain import ModelRef, ModelSpec, RankedList, ValidQuery, ValidTextQuery
from ltr.serve.errors import TextNotServedError
from ltr.serve.interleaving import team_draft

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
        all_scores=scores,
    )


def batch_scores(
    predictor: Predictor, model: ModelRef, queries: Sequence[ValidQuery]
) -> list[np.ndarray | Exception]:
    """Score ``queries`` in one forward pass: one ``[n]`` float32 array (or error) per query.

    A list whose feature count differs from the model's (possible only if the model was swapped
    for one with another schema after the list was validated) gets an :class:`InputError`.
    """
    width = predictor.loaded.manifest.num_features
    results: list[np.ndarray | Exception] = [
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
        results[i] = np.asarray(scores[b, : len(queries[i])], dtype=np.float32)
    return results


def score_batch(
    predictor: Predictor, model: ModelRef, queries: Sequence[ValidQuery]
) -> list[RankedList | Exception]:
    """Score ``queries`` in one forward pass; one ranking (or error) per query, in order."""
    return [
        s if isinstance(s, Exception) else rank(q, s, model)
        for q, s in zip(queries, batch_scores(predictor, model, queries), strict=True)
    ]


def incompatibility(primary: ModelSpec, challenger: ModelSpec) -> str | None:
    """Why ``challenger`` cannot score ``primary``'s lists (None = it can): the same features,
    in the same order, and the same use of initial ranks and context vectors."""
    if challenger.feature_names != primary.feature_names:
        return (
            f"the challenger ({challenger.ref.name} {challenger.ref.version}) reads other "
            f"features than the model ({challenger.num_features} against {primary.num_features}, "
            "or other names or order)"
        )
    if challenger.uses_initial_rank != primary.uses_initial_rank:
        return "the challenger and the model differ in whether they read initial ranks"
    if challenger.context_dim != primary.context_dim:
        return (
            f"the challenger reads a context vector of {challenger.context_dim} values, the model "
            f"{primary.context_dim}"
        )
    return None


def interleave_batch(
    primary: tuple[Predictor, ModelRef],
    challenger: tuple[Predictor, ModelRef],
    queries: Sequence[ValidQuery],
    theirs: Sequence[ValidQuery | Exception | None],
    rng: random.Random,
) -> list[RankedList | Exception]:
    """Score ``queries`` with the primary and ``theirs`` (the same lists as the challenger reads
    them: the same query for a feature list, its own featurizer's rows for a text list; None =
    not interleaved) with the challenger, and answer each list the challenger scored with the
    team-draft interleaving of the two rankings (``top_k`` of it); the others get the primary's
    ranking. Scores returned are the primary's. A list the challenger fails on (or could not
    featurize) gets the primary's ranking: the challenger never fails a call."""
    ours = batch_scores(*primary, queries)
    both = [
        i
        for i, (s, t) in enumerate(zip(ours, theirs, strict=True))
        if isinstance(t, ValidQuery) and not isinstance(s, Exception)
    ]
    against_of: dict[int, np.ndarray | Exception] = {}
    if both:
        try:
            found = batch_scores(*challenger, [theirs[i] for i in both])  # type: ignore[misc]
        except Exception as exc:  # the challenger's failure is not the caller's
            log.error("the challenger failed to score a batch", exc_info=exc)
            found = [exc] * len(both)
        against_of = dict(zip(both, found, strict=True))
    model, other = primary[1], challenger[1]
    results: list[RankedList | Exception] = []
    for i, (query, scores) in enumerate(zip(queries, ours, strict=True)):
        if isinstance(scores, Exception):
            results.append(scores)
            continue
        against = against_of.get(i)
        if against is None or isinstance(against, Exception):
            results.append(rank(query, scores, model))
            continue
        order, team = team_draft(
            np.argsort(-scores, kind="stable"),
            np.argsort(-against, kind="stable"),
            query.top_k,
            rng,
        )
        ids = query.candidate_ids
        results.append(
            RankedList(
                query_id=query.query_id,
                ids=[ids[j] for j in order.tolist()],
                scores=scores[order],
                request_indices=order,
                model=model,
                teams=team,
                challenger=other,
                all_scores=scores,
            )
        )
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
