"""The first stage of text reranking: each query's BM25 top-k candidates with their labels.

Both ``ltr finetune`` (training and validating a text encoder on these lists) and
``ltr text-features`` (turning them into the reranker's feature rows) start here, so the two see
the same candidates for the same query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ltr.errors import ConfigError
from ltr.text.bm25 import BM25
from ltr.text.collection import TextCollection, load_collection, split_queries
from ltr.text.config import TextDataConfig
from ltr.train.datamodule import resolve_data_path


@dataclass
class CandidateLists:
    """BM25's top ``K`` documents of some queries, best first.

    ``doc_index`` points into the collection's ``doc_ids`` / ``doc_texts``. Every query has the
    same ``K`` (``min(k, number of documents)``); NDCG on these lists is the reranking
    convention (as LETOR's): relevant documents the first stage missed are not counted.
    """

    query_ids: list[str]
    query_texts: list[str]
    doc_index: np.ndarray
    """``[Q, K]`` int64."""
    bm25: np.ndarray
    """``[Q, K]`` float64, descending along each row."""
    labels: np.ndarray
    """``[Q, K]`` float32 graded relevance (0 = not judged relevant)."""

    def __len__(self) -> int:
        return len(self.query_ids)

    def take(self, rows: Sequence[int] | np.ndarray) -> CandidateLists:
        """The lists of queries ``rows`` (indices into this one), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return CandidateLists(
            [self.query_ids[i] for i in rows],
            [self.query_texts[i] for i in rows],
            self.doc_index[rows],
            self.bm25[rows],
            self.labels[rows],
            self.relevant[rows],
        )

    def with_positive(self) -> np.ndarray:
        """Indices of the queries with at least one relevant candidate."""
        return np.flatnonzero((self.labels > 0).any(axis=1))

    relevant: np.ndarray
    """``[Q]`` int64: each query's relevant documents in the whole collection."""

    def recall(self) -> float:
        """Mean share of each query's relevant documents that made its candidate list (a query
        with none counts as 1)."""
        if not len(self):
            return float("nan")
        found = (self.labels > 0).sum(axis=1)
        return float(
            np.mean(np.where(self.relevant > 0, found / np.maximum(self.relevant, 1), 1.0))
        )


def retrieve(
    collection: TextCollection, index: BM25, query_ids: Sequence[str], k: int
) -> CandidateLists:
    """BM25's top ``k`` documents for each of ``query_ids`` (ids of ``collection``)."""
    if k < 1:
        raise ConfigError(f"the number of candidates must be at least 1, got {k}")
    text_of = dict(zip(collection.query_ids, collection.query_texts, strict=True))
    missing = [q for q in query_ids if q not in text_of or q not in collection.qrels]
    if missing:
        raise ConfigError(
            f"{len(missing)} query id(s) are not judged queries of {collection.name}, "
            f"e.g. {missing[0]!r}"
        )
    texts = [text_of[q] for q in query_ids]
    doc_index, scores = index.top_k(texts, k)
    labels = np.zeros(doc_index.shape, dtype=np.float32)
    relevant = np.zeros(len(query_ids), dtype=np.int64)
    for row, q in enumerate(query_ids):
        labels[row] = collection.labels(q, [collection.doc_ids[i] for i in doc_index[row]])
        relevant[row] = sum(1 for rel in collection.qrels[q].values() if rel > 0)
    return CandidateLists(list(query_ids), texts, doc_index, scores, labels, relevant)


@dataclass
class QuerySplit:
    """Which queries train, validate and test: a seeded split of a collection's judged queries."""

    train: list[str]
    valid: list[str]
    test: list[str]

    @classmethod
    def of(cls, collection: TextCollection, fractions: Sequence[float], seed: int) -> QuerySplit:
        train, valid, test = split_queries(collection.query_ids, tuple(fractions), seed=seed)
        return cls(train, valid, test)

    def parts(self) -> dict[str, list[str]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


@dataclass
class TextTask:
    """A collection with its query split and BM25 candidate lists."""

    collection: TextCollection
    split: QuerySplit
    index: BM25
    lists: dict[str, CandidateLists]

    @classmethod
    def load(cls, config: TextDataConfig) -> TextTask:
        collection = load_collection(resolve_data_path(config.collection), split=config.split)
        split = QuerySplit.of(collection, config.query_fractions, config.split_seed)
        index = BM25(collection.doc_texts, k1=config.bm25_k1, b=config.bm25_b)
        lists = {
            part: retrieve(collection, index, ids, config.candidates)
            for part, ids in split.parts().items()
            if ids
        }
        return cls(collection, split, index, lists)
