"""Okapi BM25: the first-stage retriever whose candidates the reranker reorders.

For a query with term counts ``qtf(t)`` and a document ``d`` with term counts ``tf(t, d)`` and
length ``|d|`` (its counted tokens, stop words excluded)::

    score(q, d) = sum_t  qtf(t) * idf(t) * tf(t, d) * (k1 + 1)
                                 / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (Lucene's, never negative)

with ``N`` documents, ``df(t)`` of them containing ``t`` and ``avgdl`` the mean ``|d|``. Terms
are scikit-learn ``CountVectorizer`` tokens (lowercased words of two or more characters); query
terms outside the documents' vocabulary are ignored. The per-(document, term) weights are
computed once, so scoring a batch of queries is one sparse matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from ltr.errors import ConfigError


def _check_texts(texts: Sequence[str], what: str) -> None:
    if isinstance(texts, str):
        raise ConfigError(
            f"{what} must be a sequence of strings, not one string; wrap it in a list"
        )


def lucene_idf(df: np.ndarray, num_docs: int) -> np.ndarray:
    """``ln(1 + (N - df + 0.5) / (df + 0.5))`` of each term (never negative)."""
    return np.log1p((num_docs - df + 0.5) / (df + 0.5))


def bm25_weights(
    tf: sparse.csr_matrix, lengths: np.ndarray, avgdl: float, idf: np.ndarray, k1: float, b: float
) -> sparse.csr_matrix:
    """``[N, V]`` BM25 weight of each term in each document (a query's score is the sum over its
    terms of ``qtf(t)`` times these).

    Args:
        tf: ``[N, V]`` term counts of the documents.
        lengths: ``[N]`` each document's length ``|d|``.
        avgdl: the collection's mean length.
        idf: ``[V]`` each term's idf.
    """
    relative = lengths / avgdl if avgdl > 0 else np.ones(tf.shape[0])  # [N] |d| / avgdl
    rows = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))  # row of each stored entry
    norm = k1 * (1 - b + b * relative[rows])
    weights = tf.astype(np.float64)
    weights.data = idf[tf.indices] * weights.data * (k1 + 1) / (weights.data + norm)
    return weights


class BM25:
    """Okapi BM25 over a fixed document collection (Lucene's idf).

    Args:
        texts: ``[N]`` document texts.
        k1: term-frequency saturation (0 = a matched term scores its idf, whatever its count).
        b: length normalisation, from 0 (none) to 1 (full).
        stop_words: ``"english"`` (scikit-learn's list) or ``None``.
        min_df: terms in fewer documents are left out of the vocabulary.

    Example::

        bm25 = BM25(["the cat sat", "a dog barked"])
        indices, scores = bm25.top_k(["cat"], k=10)  # [[0, 1]], [[0.69, 0.0]] (ln 2 and 0)
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        k1: float = 0.9,
        b: float = 0.4,
        stop_words: str | None = "english",
        min_df: int = 1,
    ) -> None:
        _check_texts(texts, "texts")
        if len(texts) == 0:
            raise ConfigError("BM25 needs at least one document; texts is empty")
        if not k1 >= 0:
            raise ConfigError(f"k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ConfigError(f"b must be between 0 and 1, got {b}")
        if min_df < 1:
            raise ConfigError(f"min_df must be at least 1 document, got {min_df}")
        self.k1, self.b = float(k1), float(b)
        self._vectorizer = CountVectorizer(lowercase=True, stop_words=stop_words, min_df=min_df)
        try:
            tf = sparse.csr_matrix(self._vectorizer.fit_transform(texts), dtype=np.float64)
        except ValueError:
            raise ConfigError(
                f"BM25 vocabulary is empty: no term outside the stop words occurs in at least "
                f"min_df={min_df} documents; pass stop_words=None or a lower min_df"
            ) from None
        tf.sum_duplicates()
        lengths = np.asarray(tf.sum(axis=1)).ravel()  # [N]
        df = np.bincount(tf.indices, minlength=tf.shape[1])  # [V]
        idf = lucene_idf(df, tf.shape[0])
        weights = bm25_weights(tf, lengths, lengths.mean(), idf, self.k1, self.b)
        self._weights_t = weights.T.tocsr()  # [V, N] BM25 weight of term t in document d

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct terms kept from the documents."""
        return self._weights_t.shape[0]

    @property
    def num_docs(self) -> int:
        """Number of documents ``N``."""
        return self._weights_t.shape[1]

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """``[Q, N]`` float64 BM25 score of every document for each query (0 = no term matched)."""
        _check_texts(queries, "queries")
        if len(queries) == 0:
            return np.zeros((0, self.num_docs))
        counts = sparse.csr_matrix(self._vectorizer.transform(queries), dtype=np.float64)  # [Q, V]
        return (counts @ self._weights_t).toarray()  # [Q, N]

    def top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents of each query.

        Returns:
            ``(indices, scores)``, both ``[Q, min(k, N)]`` (int64 and float64), by descending
            score; equal scores in increasing document index.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        scores = self.scores(queries)  # [Q, N]
        n = scores.shape[1]
        k = min(k, n)
        indices = np.empty((scores.shape[0], k), dtype=np.int64)
        for i, row in enumerate(scores):
            if k < n:  # every document scoring at least the k-th best score, in index order
                kth = row[np.argpartition(-row, k - 1)[k - 1]]
                candidates = np.flatnonzero(row >= kth)
            else:
                candidates = np.arange(n)
            indices[i] = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
        return indices, np.take_along_axis(scores, indices, axis=1)
