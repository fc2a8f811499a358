"""Request validation: every fault a caller can make, reported in one sentence.

:func:`validate` turns a :class:`~ltr.serve.domain.RerankQuery` into a
:class:`~ltr.serve.domain.ValidQuery` for a model described by a
:class:`~ltr.serve.domain.ModelSpec` (:func:`validate_text` does the same for a
:class:`~ltr.serve.domain.TextQuery`), or raises :class:`~ltr.errors.InputError` (a bad request)
or :class:`~ltr.serve.errors.UnknownModelError` (a model this server does not serve).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ltr.errors import InputError
from ltr.serve.domain import ModelSpec, RerankQuery, TextQuery, ValidQuery, ValidTextQuery
from ltr.serve.errors import TextNotServedError, UnknownModelError


def validate(query: RerankQuery, spec: ModelSpec, *, max_candidates: int) -> ValidQuery:
    """Check ``query`` against the model and the server's limits.

    Checks, in order: model name, empty list, list size cap, empty and duplicate ids, feature
    count per candidate, finite feature values, ``top_k``, context vector size and values.
    """
    _check_model_name(query.model_name, spec)
    ids = query.candidate_ids
    n = len(ids)
    _check_size(n, max_candidates)
    _check_ids(ids)
    f = spec.num_features
    counts = np.asarray(query.feature_counts)
    if counts.shape != (n,):
        raise InputError(f"{counts.shape[0]} feature vectors were sent for {n} candidates")
    wrong = np.flatnonzero(counts != f)
    if wrong.size:
        i = int(wrong[0])
        raise InputError(
            f"candidate {ids[i]!r} has {int(counts[i])} features but the model expects {f}; "
            "send one value per feature in the order of GetModelInfo.feature_names"
        )
    features = np.asarray(query.features, dtype=np.float32).reshape(n, f)  # (n, F)
    if not np.isfinite(features).all():
        i, j = (int(v) for v in np.argwhere(~np.isfinite(features))[0])
        raise InputError(
            f"candidate {ids[i]!r} has a non-finite value ({features[i, j]}) for feature "
            f"{spec.feature_names[j]!r}; send finite numbers only"
        )
    _check_top_k(query.top_k)
    return ValidQuery(
        query_id=query.query_id,
        candidate_ids=list(ids),
        features=features,
        initial_ranks=_initial_ranks(query, spec, n),
        context=_context(query, spec),
        top_k=query.top_k,
    )


def validate_text(query: TextQuery, spec: ModelSpec, *, max_candidates: int) -> ValidTextQuery:
    """Check a text request against the model and the server's limits.

    Checks, in order: model name, whether text is served, the query text, empty list, list size
    cap, one text per candidate, empty and duplicate ids, ``top_k``. Any text, empty included,
    is a valid candidate (an empty document has features like any other).
    """
    _check_model_name(query.model_name, spec)
    if not spec.accepts_text:
        raise TextNotServedError(
            f"model {spec.ref.name!r} was served without a text featurizer, so it ranks feature "
            "vectors only; call Rerank, or start the server with --featurizer "
            "(or serve a model trained on ltr text-features files)"
        )
    if not query.query.strip():
        raise InputError("the query text is empty; send the query's words")
    ids = query.candidate_ids
    n = len(ids)
    _check_size(n, max_candidates)
    if len(query.texts) != n:
        raise InputError(f"{len(query.texts)} texts were sent for {n} candidates")
    _check_ids(ids)
    _check_top_k(query.top_k)
    return ValidTextQuery(
        query_id=query.query_id,
        query=query.query,
        candidate_ids=list(ids),
        texts=list(query.texts),
        top_k=query.top_k,
    )


def _check_model_name(name: str, spec: ModelSpec) -> None:
    if name and name != spec.ref.name:
        raise UnknownModelError(
            f"model {name!r} is not served here; it serves {spec.ref.name!r} "
            "(leave model_name empty to use it)"
        )


def _check_size(n: int, max_candidates: int) -> None:
    if n == 0:
        raise InputError("the request has no candidates; send at least one")
    if n > max_candidates:
        raise InputError(
            f"the request has {n} candidates but this server accepts at most {max_candidates} "
            "per list; split the list or raise max_candidates in the server config"
        )


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1 (or unset for all), got {top_k}")


def _check_ids(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        if "" in ids:
            raise InputError(f"candidate {ids.index('')} has an empty id; give every one an id")
        return
    duplicate = next(i for i, c in Counter(ids).items() if c > 1)
    raise InputError(
        f"candidate id {duplicate!r} appears more than once; ids must be unique within a list"
    )


def _initial_ranks(query: RerankQuery, spec: ModelSpec, n: int) -> np.ndarray | None:
    if not spec.uses_initial_rank:
        return None  # ignored by models that do not use them
    if query.initial_ranks is None:
        return np.zeros(n, dtype=np.int64)  # 0 = unknown rank
    ranks = np.asarray(query.initial_ranks, dtype=np.int64)
    if ranks.shape != (n,):
        raise InputError(f"{ranks.shape[0]} initial ranks were sent for {n} candidates")
    return ranks


def _context(query: RerankQuery, spec: ModelSpec) -> np.ndarray | None:
    context = np.asarray(query.context, dtype=np.float32).reshape(-1)
    if spec.context_dim == 0:
        if context.size:
            raise InputError(
                f"this model takes no context vector but {context.size} values were sent; "
                "leave context empty"
            )
        return None
    if context.size != spec.context_dim:
        raise InputError(
            f"this model needs a context vector of {spec.context_dim} values but "
            f"{context.size} were sent"
        )
    if not np.isfinite(context).all():
        raise InputError("the context vector has a non-finite value; send finite numbers only")
    return context
