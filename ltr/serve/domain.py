"""Domain objects of the reranking service: what a caller asks, what the model is, what comes back.

Free of gRPC and protobuf: ``ltr.serve.convert`` maps them to and from the wire messages, and
everything else (validation, batching, scoring, the model holder) works on these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ltr.errors import InputError

Backend = Literal["onnx", "torch"]


MAX_CLICKS_PER_CALL = 10_000
"""Most clicks one ``RecordClicks`` call may carry (the client splits larger sends)."""


@dataclass(frozen=True)
class ModelRef:
    """Which model produced a ranking: registry name and version (or run id for local files)."""

    name: str
    version: str


@dataclass(frozen=True)
class ModelSpec:
    """What a served model needs from a request."""

    ref: ModelRef
    feature_names: tuple[str, ...]
    uses_initial_rank: bool = False
    context_dim: int = 0
    backend: Backend = "onnx"
    context_columns: tuple[str, ...] = ()
    """Data columns the context vector was trained from (empty = not recorded)."""
    accepts_text: bool = False
    """Whether the model came with its text featurizer (``RerankText`` is served)."""

    @property
    def num_features(self) -> int:
        return len(self.feature_names)


@dataclass(frozen=True)
class ModelInfo:
    """The served model and the limits the server enforces (answer of ``GetModelInfo``)."""

    spec: ModelSpec
    max_candidates: int
    max_message_bytes: int
    challenger: ModelRef | None = None
    """The model interleaved with ``spec``'s (None = no interleaving)."""


@dataclass(frozen=True)
class RerankQuery:
    """One candidate list as the caller sent it, not yet validated.

    Attributes:
        query_id: the caller's query id (echoed back).
        candidate_ids: ``n`` candidate ids.
        features: all candidates' feature values concatenated, ``[sum(feature_counts)]`` float32.
        feature_counts: ``[n]`` how many values each candidate sent.
        initial_ranks: ``[n]`` int64 1-based initial ranks (0 = unknown), or None.
        context: ``[c]`` float32 per-list context vector (empty = none sent).
        top_k: return only the best ``top_k`` (None = all).
        model_name: the model the caller expects ("" = any).
    """

    query_id: str
    candidate_ids: list[str]
    features: np.ndarray
    feature_counts: np.ndarray
    initial_ranks: np.ndarray | None = None
    context: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    top_k: int | None = None
    model_name: str = ""

    @classmethod
    def from_matrix(
        cls,
        candidate_ids: list[str],
        features: np.ndarray,
        *,
        query_id: str = "",
        initial_ranks: np.ndarray | None = None,
        context: np.ndarray | None = None,
        top_k: int | None = None,
        model_name: str = "",
    ) -> RerankQuery:
        """Build from a dense ``[n, F]`` feature matrix, one row per candidate id.

        Raises:
            InputError: ``features`` is not a matrix, or its rows, the ids and the initial
                ranks (when given) differ in number.
        """
        x = np.ascontiguousarray(features, dtype=np.float32)  # (n, F)
        if x.ndim != 2:
            raise InputError(f"features must be [candidates, features], got shape {x.shape}")
        ids = list(candidate_ids)
        if len(ids) != x.shape[0]:
            raise InputError(
                f"{len(ids)} candidate ids but {x.shape[0]} feature rows; give one row per id"
            )
        ranks = None if initial_ranks is None else np.asarray(initial_ranks, np.int64)  # (n,)
        if ranks is not None and ranks.shape != (len(ids),):
            raise InputError(
                f"initial_ranks has shape {ranks.shape} for {len(ids)} candidate ids; give one "
                "rank per id"
            )
        return cls(
            query_id=query_id,
            candidate_ids=ids,
            features=x.reshape(-1),
            feature_counts=np.full(x.shape[0], x.shape[1], dtype=np.int64),
            initial_ranks=ranks,
            context=np.zeros(0, np.float32) if context is None else np.asarray(context, np.float32),
            top_k=top_k,
            model_name=model_name,
        )


@dataclass(frozen=True)
class TextQuery:
    """One query's candidate texts as the caller sent them, not yet validated.

    Attributes:
        query_id: the caller's query id (echoed back).
        query: the query's text.
        candidate_ids: ``n`` candidate ids.
        texts: ``n`` candidate texts, in the first stage's order.
        top_k: return only the best ``top_k`` (None = all).
        model_name: the model the caller expects ("" = any).
    """

    query_id: str
    query: str
    candidate_ids: list[str]
    texts: list[str]
    top_k: int | None = None
    model_name: str = ""


@dataclass(frozen=True)
class ValidTextQuery:
    """A validated text list: the batch computes its features with the featurizer of the model
    that scores it, then treats it as a :class:`ValidQuery`."""

    query_id: str
    query: str
    candidate_ids: list[str]
    texts: list[str]
    top_k: int | None

    def __len__(self) -> int:
        return len(self.candidate_ids)


@dataclass(frozen=True)
class ValidQuery:
    """A validated candidate list, ready to be padded into a batch.

    Attributes:
        features: ``[n, F]`` float32, all finite.
        initial_ranks: ``[n]`` int64, only for models that use initial ranks.
        context: ``[C]`` float32, only for models with a context vector.
    """

    query_id: str
    candidate_ids: list[str]
    features: np.ndarray
    initial_ranks: np.ndarray | None
    context: np.ndarray | None
    top_k: int | None

    def __len__(self) -> int:
        return len(self.candidate_ids)


@dataclass(frozen=True)
class RankedList:
    """Candidates in ranked order.

    Attributes:
        ids: candidate ids by decreasing score (ties keep the request's order).
        scores: ``[k]`` float32 scores in the same order.
        request_indices: ``[k]`` int64 position of each candidate in the request.
        model: the model version that scored them.
        impression_id: the list's id in the impression log ("" when the server keeps none).
        teams: ``[k]`` int8, for a list interleaved with a challenger: the team that placed
            each candidate (0 = ``model``, 1 = ``challenger``); None when not interleaved.
            ``scores`` are then ``model``'s, and the order is the interleaving's, not theirs.
        challenger: the model interleaved with ``model`` (None when not interleaved).
        all_scores: ``[n]`` ``model``'s score of every candidate, in request order, ``top_k``
            or not (score drift, :mod:`ltr.serve.drift`).
    """

    query_id: str
    ids: list[str]
    scores: np.ndarray
    request_indices: np.ndarray
    model: ModelRef
    impression_id: str = ""
    teams: np.ndarray | None = None
    challenger: ModelRef | None = None
    all_scores: np.ndarray | None = None
