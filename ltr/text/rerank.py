"""Rerank a query's candidate texts in-process: featurizer + trained model, one call.

``ltr text-features`` saves the featurizer that made the training files (``<out>/featurizer``);
``ltr train`` on those files gives a model whose manifest names the same feature columns, and
copies that featurizer into the model artifact. :class:`TextReranker` loads both, checks that
they belong together, and for a query and its candidates' texts (in first-stage order) computes
the feature rows with the featurizer and scores them with the model on either backend::

    reranker = TextReranker.load("models:/ltr-text@candidate")  # the featurizer it carries
    for hit in reranker.rerank("flow past a cylinder", texts, ids=doc_ids, top_k=10):
        print(hit.id, hit.score)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltr.artifact import BUNDLED_FEATURIZER, LoadedModel, Manifest
from ltr.data.list_inputs import CONTEXT
from ltr.errors import ConfigError, InputError
from ltr.inference import frame_context_columns
from ltr.predictor import Predictor, load_predictor
from ltr.text.featurizer import TextFeaturizer


def check_pairing(featurizer: TextFeaturizer, manifest: Manifest) -> None:
    """Refuse a model that was not trained on ``featurizer``'s columns, or whose per-query
    context vector is not the one the featurizer gives (its context encoder's query vector,
    which ``ltr text-features --context-encoder`` writes as the list column ``context``)."""
    if manifest.feature_names != featurizer.feature_names:
        raise ConfigError(
            "the model and the featurizer do not belong together: the model was trained on "
            f"{manifest.feature_names} but the featurizer writes {featurizer.feature_names}"
        )
    if not manifest.context_dim:
        return
    if featurizer.context_encoder is None:
        raise ConfigError(
            f"the model takes a per-query context vector of {manifest.context_dim} values, and "
            "the featurizer gives none; make the features with ltr text-features "
            "--context-encoder NAME and train on them"
        )
    columns = frame_context_columns(manifest)
    if columns != [CONTEXT] or featurizer.context_dim != manifest.context_dim:
        raise ConfigError(
            f"the model was trained on a context vector of {manifest.context_dim} values from "
            f"the column(s) {', '.join(columns)}, but the featurizer gives the "
            f"{featurizer.context_dim} values of encoder {featurizer.context_encoder!r}, "
            f"written as the column {CONTEXT!r} by ltr text-features"
        )


def featurizer_for(loaded: LoadedModel, source: str | Path | None) -> TextFeaturizer | None:
    """The featurizer to use with ``loaded``: the folder ``source`` when given, else the one the
    artifact carries (``<artifact>/featurizer``), else None; refused by :func:`check_pairing`
    unless the model was trained on its columns."""
    if source is None:
        source = loaded.path / BUNDLED_FEATURIZER
        if not source.is_dir():
            return None
    featurizer = TextFeaturizer.load(source)
    check_pairing(featurizer, loaded.manifest)
    return featurizer


@dataclass(frozen=True)
class RankedText:
    """One candidate in reranked order."""

    id: str
    score: float
    position: int
    """Where the candidate stood in the list given (0 = first)."""


class TextReranker:
    """A :class:`TextFeaturizer` and a ranking model trained on its features."""

    def __init__(self, featurizer: TextFeaturizer, predictor: Predictor) -> None:
        check_pairing(featurizer, predictor.loaded.manifest)
        self.featurizer = featurizer
        self.predictor = predictor

    @classmethod
    def load(
        cls,
        model: str | Path,
        featurizer: str | Path | None = None,
        *,
        backend: str = "auto",
        device: str = "cpu",
    ) -> TextReranker:
        """Load a model (directory or MLflow URI) on ``backend`` with ``featurizer`` (a folder),
        by default the one the model carries (``ltr train`` bundles it when the training files
        came from ``ltr text-features``). ``device``: where the featurizer's encoders run, and
        the model too on the torch backend (a GPU device means torch for ``auto``)."""
        predictor = load_predictor(str(model), backend, device=device)
        text = featurizer_for(predictor.loaded, featurizer)
        if text is None:
            raise ConfigError(
                f"model {model} carries no text featurizer (it was not trained on ltr "
                "text-features files, or by an older ltr); pass the featurizer folder "
                "(<features>/featurizer) explicitly"
            )
        return cls(text.to(device), predictor)

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """``[K]`` the model's score of each candidate text for ``query`` (first-stage order)."""
        if isinstance(texts, str):
            raise ConfigError("texts must be a sequence of candidate texts, not one string")
        if len(texts) == 0:
            raise ConfigError("there are no candidates to rerank")
        if not query.strip():  # as the server refuses it (ltr.serve.validation)
            raise InputError("the query text is empty; give the query's words")
        k = len(texts)
        features = self.featurizer.list_features([query], [list(texts)])[0][None]  # (1, K, F)
        mask = np.ones((1, k), dtype=bool)
        manifest = self.predictor.loaded.manifest
        initial_rank = context = None
        if manifest.uses_initial_rank:
            initial_rank = np.arange(1, k + 1, dtype=np.int64)[None]  # (1, K) 1-based, as given
        if manifest.context_dim:
            context = self.featurizer.query_context([query])  # (1, C)
        return self.predictor.predict(features.astype(np.float32), mask, initial_rank, context)[0]

    def rerank(
        self,
        query: str,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        top_k: int | None = None,
    ) -> list[RankedText]:
        """The candidates best first (equal scores keep their given order).

        Args:
            query: the query's text.
            texts: the candidates' texts, in the first stage's order (it breaks BM25 ties and is
                the initial ranking of a model that takes one).
            ids: the candidates' ids (default: ``"0"``, ``"1"``, ... by position); unique.
            top_k: return only the best ``top_k``.
        """
        if ids is None:
            ids = [str(i) for i in range(len(texts))]
        ids = [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ConfigError(f"{len(ids)} ids for {len(texts)} candidate texts")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            twice = next(i for i in ids if i in seen or seen.add(i))
            raise ConfigError(f"candidate id {twice!r} is given twice")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        scores = self.scores(query, texts)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [RankedText(ids[i], float(scores[i]), int(i)) for i in order]
