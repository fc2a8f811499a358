"""The feature step of text reranking as one saved object: texts in, the reranker's rows out.

A :class:`TextFeaturizer` holds what the features need from the collection they were fitted on
(its vocabulary, document frequencies, document count and mean length) and the text encoders.
``ltr text-features`` fits one, computes the training files with it and saves it beside them
(``<out>/featurizer``); :class:`ltr.text.rerank.TextReranker` loads it with a model trained on
those files and reranks the candidates of queries it has never seen, documents it has never seen
included, with the very code that made the training rows.

Each (query, candidate) row gets:

=================== =============================================================================
``bm25``            BM25 of the candidate for the query (Lucene idf, the collection's statistics)
``bm25_log_rank``   ``ln(1 + r)``, ``r`` the candidate's BM25 rank within its list (1 = best,
                    ties in list order)
``tfidf_cosine``    cosine of the query's and the document's TF-IDF vectors (sublinear tf)
``query_coverage``  share of the query's distinct terms that occur in the document
``doc_log_length``  ``ln(1 + n)`` of the document's counted terms (stop words left out)
``sim_<name>``      per text encoder (a bi-encoder): cosine of the query's and the document's
                    vectors
``cross_<name>``    per cross-encoder (:mod:`ltr.text.cross`): its score of the query and the
                    document read together as ``query [SEP] document``
=================== =============================================================================

Terms are scikit-learn ``CountVectorizer`` tokens (lowercased words of two or more characters,
English stop words left out) as in :class:`ltr.text.bm25.BM25`. A term the collection never
holds has no weight in BM25 or TF-IDF, but it counts in a document's length and in the query's
coverage. For a collection document in a first-stage list, ``bm25`` and the rank are the first
stage's own score and position.

With a ``context_encoder`` (one of the bi-encoders) each query also gets a context vector: that
encoder's unit vector of the query's text (:meth:`TextFeaturizer.query_context`), the per-list
input of a SetRank model with ``context_dim`` (PRM's personalisation vector, here the query's
meaning rather than the user's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from tqdm.auto import tqdm

from ltr import __version__
from ltr.artifact import ArtifactError, replace_folder
from ltr.errors import ConfigError
from ltr.lm.artifact import LoadedLM, load_lm, save_lm
from ltr.text.bm25 import bm25_weights, lucene_idf
from ltr.text.cache import DocumentCache, RecentDocuments, row_entries, text_key
from ltr.text.cross import cross_scores
from ltr.text.encoder import similarities, token_vectors, tokenize_texts

LEXICAL_FEATURES = ["bm25", "bm25_log_rank", "tfidf_cosine", "query_coverage", "doc_log_length"]
LOWER_IS_BETTER = frozenset({"bm25_log_rank"})
"""Columns whose smaller values mean a better candidate (a rank): a column's NDCG alone ranks
them ascending."""
FEATURIZER_MANIFEST = "featurizer.json"
FEATURIZER_FORMAT = "ltr-text-featurizer"
FEATURIZER_FORMAT_VERSION = 2  # 2: the document cache is a folder of memory-mapped arrays
DOCUMENT_CACHE = "documents"
STOP_WORDS = "english"
ENCODE_CHUNK = 4096
"""Documents per saved chunk when a collection's encoding can be resumed."""


def encoder_column(name: str, cross: bool) -> str:
    """The feature column of encoder ``name``: ``cross_<name>`` for a cross-encoder, else
    ``sim_<name>``."""
    return f"cross_{name}" if cross else f"sim_{name}"


def feature_names(encoders: Sequence[str], cross: Collection[str] = ()) -> list[str]:
    """The columns a featurizer with these encoder names (``cross``: those that are
    cross-encoders) writes, in order."""
    return LEXICAL_FEATURES + [encoder_column(name, name in cross) for name in encoders]


@dataclass
class LexicalStats:
    """The collection statistics behind the lexical features."""

    terms: list[str]
    """``[V]`` the collection's vocabulary; a term's index is its column."""
    document_frequency: np.ndarray
    """``[V]`` how many documents hold each term."""
    num_docs: int
    avgdl: float
    """Mean counted terms of a document."""
    k1: float = 0.9
    b: float = 0.4

    @classmethod
    def fit(cls, doc_texts: Sequence[str], *, k1: float = 0.9, b: float = 0.4) -> LexicalStats:
        counter = CountVectorizer(stop_words=STOP_WORDS)
        try:
            counts = counter.fit_transform(doc_texts).tocsr()  # (N, V)
        except ValueError:
            raise ConfigError(
                "the collection's documents hold no term outside the English stop words"
            ) from None
        df = np.bincount(counts.indices, minlength=counts.shape[1])  # (V,)
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()  # (N,)
        return cls(
            terms=counter.get_feature_names_out().tolist(),
            document_frequency=df.astype(np.int64),
            num_docs=counts.shape[0],
            avgdl=float(lengths.mean()),
            k1=float(k1),
            b=float(b),
        )

    @cached_property
    def analyzer(self):
        """A text's terms, in order, vocabulary or not (:meth:`analyze` counts them)."""
        return CountVectorizer(stop_words=STOP_WORDS).build_analyzer()

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    def analyze(self, texts: Sequence[str]) -> DocTerms:
        """Each text's vocabulary term counts, counted length and out-of-vocabulary terms (one
        pass of the analyzer per text)."""
        column, analyzer, none = self.vocabulary.get, self.analyzer, frozenset()
        indptr, indices, lengths, unknown = [0], [], [], []
        for text in texts:
            terms = analyzer(text)
            columns = [column(t, -1) for t in terms]
            if -1 in columns:
                indices.extend(c for c in columns if c >= 0)
                unknown.append(frozenset(t for t, c in zip(terms, columns, strict=True) if c < 0))
            else:  # the common case: every term is in the vocabulary
                indices.extend(columns)
                unknown.append(none)
            indptr.append(len(indices))
            lengths.append(len(terms))
        counts = sparse.csr_matrix(
            (np.ones(len(indices)), np.asarray(indices, dtype=np.int32), np.asarray(indptr)),
            shape=(len(indptr) - 1, len(self.terms)),
        )
        counts.sum_duplicates()  # one entry per (text, term), its count
        return DocTerms(counts, np.asarray(lengths, dtype=np.float64), unknown)

    @cached_property
    def tfidf_idf(self) -> np.ndarray:
        """``[V]`` scikit-learn's smoothed ``ln((1 + N) / (1 + df)) + 1``."""
        return np.log((1 + self.num_docs) / (1 + self.document_frequency)) + 1

    @cached_property
    def bm25_idf(self) -> np.ndarray:
        """``[V]`` Lucene's BM25 idf of each term."""
        return lucene_idf(self.document_frequency, self.num_docs)

    def _term_weights(self, counts: sparse.csr_matrix, lengths: np.ndarray | None):
        """Per stored entry of ``counts``: its TF-IDF weight, ``(1 + ln tf) * idf`` scaled so
        that each row has unit length, and (given the rows' ``lengths``) its BM25 weight."""
        tf, columns = counts.data, counts.indices
        row = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))  # entry -> row
        tfidf = (1 + np.log(tf)) * self.tfidf_idf[columns]
        norms = np.sqrt(np.bincount(row, weights=tfidf * tfidf, minlength=counts.shape[0]))
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        tfidf = tfidf * scale[row]
        if lengths is None:
            return tfidf, None
        bm25 = bm25_weights(counts, lengths, self.avgdl, self.bm25_idf, self.k1, self.b)
        return tfidf, bm25.data  # the same entries, in the same order

    def features(
        self, query_texts: Sequence[str], doc_texts: Sequence[str], doc_index: np.ndarray
    ) -> np.ndarray:
        """``[Q, K, 5]`` float64 lexical features; row ``q`` pairs query ``q`` with the
        documents ``doc_texts[doc_index[q, k]]`` (see the module docstring)."""
        used = np.unique(doc_index)  # only the documents some list holds are analysed
        docs = self.analyze([doc_texts[i] for i in used])
        return self.score(query_texts, docs, np.searchsorted(used, doc_index))

    def score(
        self, query_texts: Sequence[str], docs: DocTerms, position: np.ndarray, chunk: int = 64
    ) -> np.ndarray:
        """``[Q, K, 5]`` float64 lexical features of query ``q`` with document
        ``position[q, k]`` of ``docs`` (analysed documents).

        Each (query, document) pair is scored over the document's stored terms: a term the
        query holds adds its share to BM25, TF-IDF cosine and coverage. ``chunk`` queries at a
        time, so that a whole collection's pairs never sit in memory at once."""
        queries = self.analyze(query_texts)
        q_tfidf, _ = self._term_weights(queries.counts, None)
        d_tfidf, d_bm25 = self._term_weights(docs.counts, docs.lengths)
        num_queries, k = position.shape
        bm25 = np.zeros((num_queries, k))
        cosine = np.zeros((num_queries, k))
        shared = np.zeros((num_queries, k))
        d_indptr, d_columns = docs.counts.indptr, docs.counts.indices
        q_indptr, q_counts = queries.counts.indptr, queries.counts.data
        # each stored query entry as one sorted key: query * V + term (CSR rows hold sorted terms)
        width = np.int64(len(self.terms))
        q_keys = np.repeat(np.arange(num_queries, dtype=np.int64), np.diff(q_indptr)) * width
        q_keys += queries.counts.indices
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            pairs = position[start:stop].ravel()  # (P,) documents, list by list
            entry, offsets = row_entries(d_indptr, pairs)
            pair = np.repeat(np.arange(len(pairs)), np.diff(offsets))  # (E,) each entry's pair
            # the query entry of the same term as each document entry, where the query has it
            keys = (start + pair // k) * width + d_columns[entry]
            at = np.searchsorted(q_keys, keys)
            hit = at < len(q_keys)
            hit[hit] = q_keys[at[hit]] == keys[hit]
            pair, entry, at = pair[hit], entry[hit], at[hit]
            rows = slice(start, stop)
            size = len(pairs)
            bm25[rows] = np.bincount(pair, q_counts[at] * d_bm25[entry], size).reshape(-1, k)
            cosine[rows] = np.bincount(pair, q_tfidf[at] * d_tfidf[entry], size).reshape(-1, k)
            shared[rows] = np.bincount(pair, minlength=size).reshape(-1, k)
        for q, unknown in enumerate(queries.unknown):  # terms outside the vocabulary count too
            if unknown:
                shared[q] += [len(unknown & docs.unknown[d]) for d in position[q]]
        distinct = np.diff(q_indptr) + np.array([len(u) for u in queries.unknown])  # (Q,)
        coverage = np.divide(
            shared, distinct[:, None], out=np.zeros_like(shared), where=distinct[:, None] > 0
        )
        # rank within each list by BM25, ties in list order
        order = np.argsort(-bm25, axis=1, kind="stable")  # (Q, K)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, k + 1)[None], axis=1)
        return np.stack(
            [bm25, np.log1p(ranks), cosine, coverage, np.log1p(docs.lengths[position])], axis=-1
        )

    def to_json(self) -> dict:
        return {
            "terms": self.terms,
            "document_frequency": self.document_frequency.tolist(),
            "num_docs": self.num_docs,
            "avgdl": self.avgdl,
            "k1": self.k1,
            "b": self.b,
            "stop_words": STOP_WORDS,
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> LexicalStats:
        try:
            terms = [str(t) for t in data["terms"]]
            df = np.asarray(data["document_frequency"], dtype=np.int64)
            stats = cls(terms, df, int(data["num_docs"]), float(data["avgdl"]),
                        float(data["k1"]), float(data["b"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where}: the lexical statistics are incomplete ({exc})") from None
        if len(df) != len(terms) or len(set(terms)) != len(terms):
            raise ArtifactError(f"{where}: {len(terms)} terms but {len(df)} frequencies")
        return stats


def _encode(lm: LoadedLM, texts: Sequence[str], progress: str | None = None) -> torch.Tensor:
    """``[N, d]`` the encoder's unit vectors of ``texts`` (first ``block_size`` tokens)."""
    tokens = tokenize_texts(lm.tokenizer, texts, lm.model.config.block_size)
    return token_vectors(lm.model, tokens, lm.tokenizer.pad_id, progress=progress)


def _cosines(queries: torch.Tensor, docs: torch.Tensor, position: np.ndarray) -> np.ndarray:
    """``[Q, K]``: unit vector ``queries[q]`` dot ``docs[position[q, k]]`` (a ``sim_`` column)."""
    return torch.einsum("qd,qkd->qk", queries, docs[torch.from_numpy(position)]).numpy()


def _pair_scores(
    lm: LoadedLM,
    query_texts: Sequence[str],
    doc_texts: Sequence[str],
    position: np.ndarray,
    progress: str | None = None,
) -> np.ndarray:
    """``[Q, K]`` a cross-encoder's score of query ``q`` with ``doc_texts[position[q, k]]``."""
    limit = lm.model.config.block_size
    return cross_scores(
        lm.model,
        lm.head,
        tokenize_texts(lm.tokenizer, query_texts, limit),
        tokenize_texts(lm.tokenizer, doc_texts, limit),
        position,
        sep_id=lm.tokenizer.sep_id,
        pad_id=lm.tokenizer.pad_id,
        progress=progress,
    )


def encoder_similarities(
    lm: LoadedLM, query_texts: Sequence[str], doc_texts: Sequence[str], doc_index: np.ndarray
) -> np.ndarray:
    """``[Q, K]`` the column an encoder gives query ``q`` and document
    ``doc_texts[doc_index[q, k]]`` (``sim_``: a bi-encoder's cosine; ``cross_``: a
    cross-encoder's score), computed as :meth:`TextFeaturizer.features` does (every listed
    document encoded once; no cache)."""
    doc_index = np.asarray(doc_index, dtype=np.int64)
    used = np.unique(doc_index)  # only the listed documents are tokenised
    if lm.is_cross:
        return _pair_scores(
            lm, query_texts, [doc_texts[i] for i in used], np.searchsorted(used, doc_index)
        )
    limit = lm.model.config.block_size
    return similarities(
        lm.model,
        tokenize_texts(lm.tokenizer, query_texts, limit),
        tokenize_texts(lm.tokenizer, [doc_texts[i] for i in used], limit),
        np.searchsorted(used, doc_index),
        lm.tokenizer.pad_id,
    )


def _fingerprint(lm: LoadedLM, texts: Sequence[str]) -> str:
    """A digest of the encoder (config and weights) and of the texts, in order."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(dataclasses.asdict(lm.model.config), sort_keys=True).encode())
    for key, value in sorted(lm.model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    for text in texts:
        h.update(text_key(text))
    return h.hexdigest()


def _encode_in_chunks(
    lm: LoadedLM, texts: Sequence[str], folder: Path, chunk: int, progress: str | None
) -> tuple[np.ndarray, int]:
    """``([N, d] float32 vectors of texts, how many were read back)``: ``chunk`` texts at a
    time, each chunk saved to ``folder`` when done and read from there when a file of the same
    encoder and texts holds it already."""
    if chunk < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk}")
    state = {"fingerprint": _fingerprint(lm, texts), "chunk": chunk, "documents": len(texts)}
    state_file = folder / "state.json"
    try:
        stale = json.loads(state_file.read_text()) != state
    except (OSError, json.JSONDecodeError):
        stale = True
    if stale:  # another encoder, other texts, or nothing yet: start afresh
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        state_file.write_text(json.dumps(state))
    d = lm.model.config.d_model
    out = np.empty((len(texts), d), dtype=np.float32)
    read_back = 0
    with tqdm(total=len(texts), desc=progress, unit="doc", disable=progress is None) as bar:
        for number, start in enumerate(range(0, len(texts), chunk)):
            stop = min(start + chunk, len(texts))
            path = folder / f"{number:06d}.npy"
            part = None
            if path.exists():
                try:
                    part = np.load(path, allow_pickle=False)
                except (OSError, ValueError):
                    part = None
                if part is not None and (
                    part.shape != (stop - start, d) or part.dtype != out.dtype
                ):
                    part = None
                read_back += 0 if part is None else len(part)
            if part is None:
                part = _encode(lm, texts[start:stop]).numpy()
                tmp = folder / f".{path.name}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, part)
                tmp.replace(path)
            out[start:stop] = part
            bar.update(stop - start)
    return out, read_back


@dataclass
class DocTerms:
    """Analysed texts: what the lexical features need of them."""

    counts: sparse.csr_matrix
    """``[N, V]`` vocabulary term counts."""
    lengths: np.ndarray
    """``[N]`` counted terms (vocabulary or not; stop words left out)."""
    unknown: list[frozenset[str]]
    """Each text's terms outside the vocabulary (they count for the query's coverage)."""

    @staticmethod
    def scatter(parts: Sequence[tuple[np.ndarray, DocTerms]]) -> DocTerms:
        """One :class:`DocTerms` whose row ``index[i]`` is row ``i`` of each ``(index, part)``
        (the indices of all parts together are ``0..N-1``)."""
        inverse = np.argsort(np.concatenate([index for index, _ in parts]))
        unknown = [u for _, part in parts for u in part.unknown]
        return DocTerms(
            sparse.csr_matrix(sparse.vstack([part.counts for _, part in parts]))[inverse],
            np.concatenate([part.lengths for _, part in parts])[inverse],
            [unknown[i] for i in inverse],
        )


QUERY_MEMORY = 1024
"""Query vectors of the context encoder a featurizer keeps (the latest met)."""


class QueryVectors:
    """The vectors of the latest ``capacity`` query texts met, the least recently met dropped
    first; safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)

    def get(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Each text's vector, None where it is not kept."""
        with self._lock:
            found = [self._vectors.get(text) for text in texts]
            for text, vector in zip(texts, found, strict=True):
                if vector is not None:
                    self._vectors.move_to_end(text)
            return found


@dataclass
class TextFeaturizer:
    """Lexical statistics and text encoders: turns texts into the reranker's feature rows."""

    lexical: LexicalStats
    encoders: dict[str, LoadedLM] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """Where each encoder was loaded from when the featurizer was fitted (for the record)."""
    cache: DocumentCache | None = None
    """Documents analysed and encoded ahead (:meth:`cache_documents`), found by their text."""
    context_encoder: str | None = None
    """The bi-encoder whose unit vector of a query's text is that query's context vector
    (:meth:`query_context`; SetRank's ``context_dim``, PRM's per-list vector); None = the
    featurizer gives no context."""
    recent: RecentDocuments | None = field(default=None, repr=False, compare=False)
    """Documents the cache lacks, kept in memory as they are computed (:meth:`keep_recent`)."""
    documents_seen: dict[str, int] = field(
        default_factory=lambda: {"cache": 0, "recent": 0, "computed": 0},
        repr=False,
        compare=False,
    )
    """Running counts of the documents :meth:`documents` took from the cache, from the recent
    documents, or computed."""
    latest_queries: QueryVectors = field(
        default_factory=lambda: QueryVectors(QUERY_MEMORY), repr=False, compare=False
    )
    """The context encoder's vectors of the queries :meth:`features` met lately, so that
    :meth:`query_context` does not encode a query that has just had its rows computed."""

    @classmethod
    def fit(
        cls,
        doc_texts: Sequence[str],
        encoders: Mapping[str, str] | None = None,
        *,
        k1: float = 0.9,
        b: float = 0.4,
        context_encoder: str | None = None,
    ) -> TextFeaturizer:
        """Collection statistics from ``doc_texts``; ``encoders``: name -> LM directory or URI;
        ``context_encoder``: the name of the one among them whose query vectors are the
        queries' context vectors (None = no context)."""
        sources = dict(encoders or {})
        if context_encoder is not None and context_encoder not in sources:
            raise ConfigError(
                f"the context encoder {context_encoder!r} is not one of the encoders given "
                f"({', '.join(sources) or 'none'}); add it with --encoder "
                f"{context_encoder}=MODEL"
            )
        loaded = {name: load_lm(source) for name, source in sources.items()}
        featurizer = cls(LexicalStats.fit(doc_texts, k1=k1, b=b), loaded, sources)
        featurizer.context_encoder = _context_encoder(context_encoder, loaded, "")
        return featurizer

    @property
    def feature_names(self) -> list[str]:
        cross = {name for name, lm in self.encoders.items() if lm.is_cross}
        return feature_names(list(self.encoders), cross)

    @property
    def bi_encoders(self) -> dict[str, LoadedLM]:
        """The encoders that give a document a vector of its own (those the document cache
        and the recent documents hold vectors of); the others are cross-encoders."""
        return {name: lm for name, lm in self.encoders.items() if not lm.is_cross}

    @property
    def context_dim(self) -> int:
        """C, the size of the context vectors :meth:`query_context` gives (0 = none)."""
        if self.context_encoder is None:
            return 0
        return self.encoders[self.context_encoder].model.config.d_model

    def query_context(
        self, query_texts: Sequence[str], *, encoder: LoadedLM | None = None
    ) -> np.ndarray:
        """``[Q, C]`` float32: each query's context vector, the :attr:`context_encoder`'s unit
        vector of its text (``encoder``: another LM to compute it with, a cross-fitted fold
        encoder of the same architecture).

        Raises:
            ConfigError: the featurizer has no context encoder.
        """
        if self.context_encoder is None:
            raise ConfigError(
                "this featurizer gives no context vector: it was made without a context "
                "encoder (ltr text-features --context-encoder NAME)"
            )
        if encoder is not None:
            return _encode(encoder, query_texts).numpy()
        out = np.empty((len(query_texts), self.context_dim), dtype=np.float32)
        known = self.latest_queries.get(query_texts)
        missing = [i for i, vector in enumerate(known) if vector is None]
        for i, vector in enumerate(known):
            if vector is not None:
                out[i] = vector
        if missing:
            lm = self.encoders[self.context_encoder]
            out[missing] = _encode(lm, [query_texts[i] for i in missing]).numpy()
        return out

    def features(
        self,
        query_texts: Sequence[str],
        doc_texts: Sequence[str],
        doc_index: np.ndarray,
        *,
        progress: str | None = None,
    ) -> np.ndarray:
        """``[Q, K, F]`` float64 rows of :attr:`feature_names` for each query's candidates.

        Args:
            query_texts: ``[Q]``.
            doc_texts: the documents the lists draw on.
            doc_index: ``[Q, K]`` int: list ``q`` holds ``doc_texts[doc_index[q, k]]``, in
                first-stage order (which breaks BM25 ties).
            progress: a label for a progress bar over the cross-encoders' pairs (the long part
                of many lists); None shows none.
        """
        doc_index = np.asarray(doc_index, dtype=np.int64)
        if doc_index.ndim != 2 or doc_index.shape[0] != len(query_texts):
            raise ConfigError(
                f"doc_index must be [queries, candidates] with {len(query_texts)} rows, "
                f"got shape {doc_index.shape}"
            )
        if doc_index.size and (doc_index.min() < 0 or doc_index.max() >= len(doc_texts)):
            raise ConfigError(f"doc_index points outside the {len(doc_texts)} documents")
        used = np.unique(doc_index)  # only the documents some list holds are featurized
        terms, vectors = self.documents([doc_texts[i] for i in used])
        position = np.searchsorted(used, doc_index)  # (Q, K) rows of `used`
        columns = [self.lexical.score(query_texts, terms, position)]
        for name, lm in self.encoders.items():
            if lm.is_cross:  # nothing to cache: every pair is read afresh
                label = None if progress is None else f"{progress}: pairs ({name})"
                column = _pair_scores(
                    lm, query_texts, [doc_texts[i] for i in used], position, label
                )
            else:
                queries = _encode(lm, query_texts)  # (Q, d)
                if name == self.context_encoder:
                    self.latest_queries.put(query_texts, queries.numpy())
                column = _cosines(queries, vectors[name], position)
            columns.append(column[..., None])
        return np.concatenate(columns, axis=-1)

    def documents(self, texts: Sequence[str]) -> tuple[DocTerms, dict[str, torch.Tensor]]:
        """``texts`` analysed, and each bi-encoder's ``[N, d]`` vectors of them: from the
        :attr:`cache` where a text is cached, else from the :attr:`recent` documents, the others
        computed now (and then kept among the recent ones)."""
        remembers = self.cache is not None or self.recent is not None
        all_keys = [text_key(t) for t in texts] if remembers else []  # each hashed once a call
        rows = self.cache.find(all_keys) if self.cache is not None else np.full(len(texts), -1)
        hit, miss = np.flatnonzero(rows >= 0), np.flatnonzero(rows < 0)
        kept, kept_index = [], np.zeros(0, dtype=np.int64)
        keys: list[bytes] = []
        if self.recent is not None and len(miss):
            keys = [all_keys[i] for i in miss]
            entries = self.recent.get(keys)
            found = np.array([e is not None for e in entries], dtype=bool)
            kept = [e for e in entries if e is not None]
            kept_index = miss[found]
            keys = [k for k, f in zip(keys, found, strict=True) if not f]
            miss = miss[~found]
        self.documents_seen["cache"] += len(hit)
        self.documents_seen["recent"] += len(kept)
        self.documents_seen["computed"] += len(miss)
        fresh_texts = [texts[i] for i in miss]
        fresh = self.lexical.analyze(fresh_texts)
        parts = [(miss, fresh)]
        vectors, fresh_vectors = {}, {}
        for name, lm in self.bi_encoders.items():
            out = torch.empty((len(texts), lm.model.config.d_model))
            if len(miss):
                fresh_vectors[name] = _encode(lm, fresh_texts)
                out[torch.from_numpy(miss)] = fresh_vectors[name]
            vectors[name] = out
        if self.recent is not None and len(miss):
            self.recent.put(
                keys,
                fresh.counts,
                fresh.lengths,
                fresh.unknown,
                {name: v.numpy() for name, v in fresh_vectors.items()},
            )
        if len(hit):
            counts, lengths, cached = self.cache.rows(rows[hit])
            parts.append((hit, DocTerms(counts, lengths, [frozenset()] * len(hit))))
            for name, out in vectors.items():
                out[torch.from_numpy(hit)] = torch.from_numpy(cached[name])
        if kept:
            sizes = [len(e.indices) for e in kept]
            counts = sparse.csr_matrix(
                (
                    np.concatenate([e.counts for e in kept]),
                    np.concatenate([e.indices for e in kept]),
                    np.concatenate([[0], np.cumsum(sizes)]),
                ),
                shape=(len(kept), len(self.lexical.terms)),
            )
            lengths = np.array([e.length for e in kept], dtype=np.float64)
            parts.append((kept_index, DocTerms(counts, lengths, [e.unknown for e in kept])))
            for name, out in vectors.items():
                out[torch.from_numpy(kept_index)] = torch.from_numpy(
                    np.stack([e.vectors[name] for e in kept])
                )
        terms = parts[0][1] if len(parts) == 1 else DocTerms.scatter(parts)  # nothing cached
        return terms, vectors

    def keep_recent(self, capacity: int) -> TextFeaturizer:
        """Keep up to ``capacity`` of the documents computed here (those the :attr:`cache`
        lacks) analysed and encoded in memory, the least recently used dropped first, so that
        a document met again is not tokenised or encoded again; 0 keeps none."""
        if capacity < 0:
            raise ConfigError(
                f"the number of recent documents to keep must be >= 0, got {capacity}"
            )
        self.recent = RecentDocuments(capacity) if capacity else None
        return self

    def cache_documents(
        self,
        doc_texts: Sequence[str],
        *,
        progress: bool = False,
        partial_dir: str | Path | None = None,
        chunk_size: int | None = None,
    ) -> int:
        """Analyse and encode ``doc_texts`` (a collection) once and keep the results, so that
        these documents are not tokenised or encoded again here or wherever this featurizer is
        loaded. A text holding terms outside the vocabulary is left out (computed when met).

        With ``partial_dir`` the documents are encoded ``chunk_size`` at a time and each chunk's
        vectors saved there as it is done, so that a run that stopped (a crash, a killed job)
        goes on from its last chunk when called again with the same folder (``chunk_size``
        default: :data:`ENCODE_CHUNK`); chunks made by
        another encoder or for other documents are not used. Returns how many documents'
        vectors were read back from there (summed over the encoders).
        """
        unique = list(dict.fromkeys(doc_texts))
        terms = self.lexical.analyze(unique)
        keep = np.array([i for i, u in enumerate(terms.unknown) if not u], dtype=np.int64)
        texts = [unique[i] for i in keep]
        vectors, resumed = {}, 0
        for name, lm in self.bi_encoders.items():
            label = f"encoding documents ({name})" if progress else None
            if partial_dir is None:
                vectors[name] = _encode(lm, texts, progress=label).numpy()
            else:
                folder = Path(partial_dir) / name
                chunk = chunk_size or ENCODE_CHUNK
                vectors[name], done = _encode_in_chunks(lm, texts, folder, chunk, label)
                resumed += done
        self.cache = DocumentCache.build(texts, terms.counts[keep], terms.lengths[keep], vectors)
        return resumed

    def to(self, device: str) -> TextFeaturizer:
        """Run the encoders on ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``auto``)."""
        from ltr.predictor import resolve_device

        target = resolve_device(device)
        for lm in self.encoders.values():
            lm.to(target)
        return self

    def list_features(
        self, query_texts: Sequence[str], lists: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """``[K_q, F]`` float64 rows for each query's own candidate texts (first-stage order).

        Lists of equal length share one :meth:`features` call (one encoder pass over all their
        texts); a list's rows do not depend on the other lists.
        """
        if len(query_texts) != len(lists):
            raise ConfigError(f"{len(lists)} candidate lists for {len(query_texts)} queries")
        out: list[np.ndarray] = [np.empty(0)] * len(lists)
        by_length: dict[int, list[int]] = {}
        for q, texts in enumerate(lists):
            by_length.setdefault(len(texts), []).append(q)
        for k, group in by_length.items():
            pool = [text for q in group for text in lists[q]]
            doc_index = np.arange(len(pool), dtype=np.int64).reshape(len(group), k)  # (G, K)
            rows = self.features([query_texts[q] for q in group], pool, doc_index)  # (G, K, F)
            for g, q in enumerate(group):
                out[q] = rows[g]
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``featurizer.json`` and ``encoders/<name>/`` (each encoder's LM artifact) into
        ``directory``, replaced whole: a reader sees the old featurizer or the new one."""
        directory = Path(directory)
        tmp = directory.with_name(f".{directory.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, lm in self.encoders.items():
            # the cross-fitted fold encoders made training rows; they stay with the source
            training = {k: v for k, v in lm.training.items() if k != "crossfit"}
            save_lm(lm.model, lm.tokenizer, tmp / "encoders" / name, training, head=lm.head)
        if self.cache is not None:
            self.cache.save(tmp / DOCUMENT_CACHE)
        manifest = {
            "format": FEATURIZER_FORMAT,
            "format_version": FEATURIZER_FORMAT_VERSION,
            "feature_names": self.feature_names,
            "encoders": list(self.encoders),
            "encoder_sources": self.sources,
            "context_encoder": self.context_encoder,
            "context_dim": self.context_dim,
            "lexical": self.lexical.to_json(),
            "document_cache": DOCUMENT_CACHE if self.cache is not None else None,
            "ltr_version": __version__,
        }
        (tmp / FEATURIZER_MANIFEST).write_text(json.dumps(manifest))
        return replace_folder(tmp, directory)

    @classmethod
    def load(cls, directory: str | Path) -> TextFeaturizer:
        """Load what :meth:`save` wrote (``ltr text-features`` writes ``<out>/featurizer``)."""
        directory = Path(directory)
        path = directory / FEATURIZER_MANIFEST
        if not path.exists():
            raise ArtifactError(
                f"{directory} holds no {FEATURIZER_MANIFEST}; pass the featurizer folder that "
                "`ltr text-features` wrote (<out>/featurizer)"
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
        if data.get("format") != FEATURIZER_FORMAT:
            raise ArtifactError(f"{path} is not an ltr text featurizer")
        if int(data.get("format_version", 0)) > FEATURIZER_FORMAT_VERSION:
            raise ArtifactError(f"{directory} was written by a newer ltr; upgrade ltr to load it")
        lexical = LexicalStats.from_json(data.get("lexical", {}), str(path))
        names = [str(n) for n in data.get("encoders", [])]
        encoders = {name: load_lm(directory / "encoders" / name) for name in names}
        cache = None
        if data.get("document_cache"):
            dims = {
                name: lm.model.config.d_model for name, lm in encoders.items() if not lm.is_cross
            }
            cache = DocumentCache.load(directory / data["document_cache"], len(lexical.terms), dims)
        sources = dict(data.get("encoder_sources", {}))
        context = data.get("context_encoder")
        featurizer = cls(lexical, encoders, sources, cache)
        featurizer.context_encoder = _context_encoder(context, encoders, f"{path}: ")
        if featurizer.feature_names != data.get("feature_names"):
            raise ArtifactError(f"{path}: feature_names do not match its encoders")
        if featurizer.context_dim != int(data.get("context_dim") or 0):
            raise ArtifactError(f"{path}: context_dim does not match its context encoder")
        return featurizer


def _context_encoder(name: str | None, encoders: Mapping[str, LoadedLM], where: str) -> str | None:
    """``name`` when it names a bi-encoder of ``encoders`` (or is None); else a
    :class:`ConfigError` (``where`` empty) or :class:`ArtifactError` (a saved featurizer,
    ``where`` naming it) that says why."""
    error = ArtifactError if where else ConfigError
    if name is None:
        return None
    if name not in encoders:
        raise error(f"{where}the context encoder {name!r} is not one of its encoders")
    if encoders[name].is_cross:
        raise error(
            f"{where}the context encoder {name!r} is a cross-encoder: it scores a (query, "
            "document) pair and gives a query no vector of its own; name a bi-encoder"
        )
    return name


def featurizer_beside(
    files: Sequence[str | Path], feature_names: Sequence[str], context_dim: int = 0
) -> Path | None:
    """The featurizer ``ltr text-features`` saved beside the data ``files`` (``<dir>/featurizer``)
    when all of them lie in that one folder, it writes exactly ``feature_names`` and, for
    ``context_dim`` > 0 (a model with a context vector), gives query vectors of that size; else
    None.

    ``ltr train`` bundles it into the model artifact, so that the model is served and used with
    the very featurizer its training rows came from.
    """
    folders = {Path(f).resolve().parent for f in files}
    if len(folders) != 1:
        return None
    candidate = folders.pop() / "featurizer"
    try:
        data = json.loads((candidate / FEATURIZER_MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != FEATURIZER_FORMAT or data.get("feature_names") != list(feature_names):
        return None
    if context_dim and int(data.get("context_dim") or 0) != context_dim:
        return None
    return candidate


def bundle_featurizer(source: str | Path, artifact_dir: str | Path) -> Path:
    """Copy the featurizer folder ``source`` into ``artifact_dir/featurizer`` (replaced whole)."""
    target = Path(artifact_dir) / "featurizer"
    tmp = target.with_name(".featurizer.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    return replace_folder(tmp, target)
