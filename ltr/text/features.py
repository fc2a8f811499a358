"""Text candidates to the reranker's feature rows: lexical features and text-encoder similarities.

Each (query, candidate) row gets:

=================== =============================================================================
``bm25``            the first stage's BM25 score
``bm25_log_rank``   ``ln(1 + r)`` of the candidate's BM25 rank ``r`` (1 = best)
``tfidf_cosine``    cosine of the query's and the document's TF-IDF vectors (sublinear tf)
``query_coverage``  share of the query's distinct terms that occur in the document
``doc_log_length``  ``ln(1 + n)`` of the document's counted terms (stop words left out)
``sim_<name>``      per text encoder: cosine of the query's and the document's vectors
=================== =============================================================================

Rows are written as ``ltr`` Parquet (one file per query split: ``train``, ``valid``, ``test``),
so ``ltr train`` / ``ltr evaluate`` / ``ltr serve`` take them like any ranking data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from ltr.data.parquet import ParquetListWriter
from ltr.data.svmlight import RowChunk
from ltr.errors import ConfigError
from ltr.lm.artifact import LoadedLM, load_lm
from ltr.text.candidates import CandidateLists, TextTask
from ltr.text.collection import TextCollection
from ltr.text.config import TextDataConfig
from ltr.text.encoder import TokenizedTexts, encoder_scores

LEXICAL_FEATURES = ["bm25", "bm25_log_rank", "tfidf_cosine", "query_coverage", "doc_log_length"]


@dataclass
class LexicalModels:
    """The collection-wide term statistics behind the lexical features (fitted on the documents;
    each text is tokenised once, the TF-IDF weights come from the same counts)."""

    counts: CountVectorizer
    tfidf: TfidfTransformer
    doc_tfidf: sparse.csr_matrix
    """``[N, V]`` sublinear TF-IDF rows of unit length (as ``TfidfVectorizer``)."""
    doc_binary: sparse.csr_matrix
    """``[N, V]`` 1 where a document holds a term."""
    doc_lengths: np.ndarray
    """``[N]`` counted terms of each document."""

    @classmethod
    def fit(cls, collection: TextCollection) -> LexicalModels:
        counts = CountVectorizer(stop_words="english")
        doc_counts = counts.fit_transform(collection.doc_texts).tocsr()  # (N, V)
        tfidf = TfidfTransformer(sublinear_tf=True)
        doc_tfidf = tfidf.fit_transform(doc_counts).tocsr()  # (N, V)
        doc_binary = doc_counts.copy()
        doc_binary.data[:] = 1.0
        lengths = np.asarray(doc_counts.sum(axis=1), dtype=np.float64).ravel()
        return cls(counts, tfidf, doc_tfidf, doc_binary, lengths)


def _row_dot(queries, docs, doc_index: np.ndarray) -> np.ndarray:
    """``[Q, K]``: dot product of query row ``q`` with document row ``doc_index[q, k]``."""
    out = np.zeros(doc_index.shape, dtype=np.float64)
    for q in range(doc_index.shape[0]):
        out[q] = (docs[doc_index[q]] @ queries[q].T).toarray().ravel()
    return out


def lexical_features(lexical: LexicalModels, lists: CandidateLists) -> np.ndarray:
    """``[Q, K, 5]`` float64 lexical features of every candidate (see the module docstring)."""
    q, k = lists.doc_index.shape
    query_counts = lexical.counts.transform(lists.query_texts).tocsr()  # (Q, V)
    query_tfidf = lexical.tfidf.transform(query_counts).tocsr()  # (Q, V)
    query_terms = query_counts.copy()
    query_terms.data[:] = 1.0
    analyzer = lexical.counts.build_analyzer()  # terms found in no document count too
    distinct = np.array([len(set(analyzer(text))) for text in lists.query_texts], dtype=np.float64)
    covered = _row_dot(query_terms, lexical.doc_binary, lists.doc_index)  # (Q, K)
    coverage = np.divide(
        covered, distinct[:, None], out=np.zeros_like(covered), where=distinct[:, None] > 0
    )
    ranks = np.broadcast_to(np.arange(1, k + 1, dtype=np.float64), (q, k))
    return np.stack(
        [
            lists.bm25,
            np.log1p(ranks),
            _row_dot(query_tfidf, lexical.doc_tfidf, lists.doc_index),
            coverage,
            np.log1p(lexical.doc_lengths[lists.doc_index]),
        ],
        axis=-1,
    )


def tokenize_for(loaded: LoadedLM, collection: TextCollection) -> TokenizedTexts:
    """The collection's texts in an encoder's tokens, cut to its ``block_size``."""
    block = loaded.model.config.block_size
    return TokenizedTexts.build(
        loaded.tokenizer, collection, max_doc_tokens=block, max_query_tokens=block
    )


def encoder_features(
    encoders: Mapping[str, tuple[LoadedLM, TokenizedTexts]], lists: CandidateLists
) -> np.ndarray:
    """``[Q, K, E]``: each encoder's cosine similarity of a query with each candidate
    (``encoders``: name -> the model and the collection in its tokens)."""
    columns = [encoder_scores(loaded.model, texts, lists) for loaded, texts in encoders.values()]
    q, k = lists.doc_index.shape
    return np.stack(columns, axis=-1) if columns else np.zeros((q, k, 0))


def feature_names(encoders: Mapping[str, object]) -> list[str]:
    return LEXICAL_FEATURES + [f"sim_{name}" for name in encoders]


def write_feature_file(
    path: str | Path,
    collection: TextCollection,
    lists: CandidateLists,
    features: np.ndarray,
    names: list[str],
) -> int:
    """Write one row per candidate (queries in ``lists`` order, candidates in BM25 order) as
    ``ltr`` Parquet; return the number of rows."""
    q, k, f = features.shape
    chunk = RowChunk(
        qids=np.repeat(np.asarray(lists.query_ids, dtype=object), k),
        doc_ids=np.asarray([collection.doc_ids[i] for i in lists.doc_index.ravel()], dtype=object),
        labels=lists.labels.reshape(-1).astype(np.float32),
        features=features.reshape(q * k, f).astype(np.float32),
    )
    with ParquetListWriter(path, f, feature_names=names) as writer:
        writer.write(chunk)
    return len(chunk)


def write_manifest(directory: Path, facts: dict) -> None:
    """``features.json``: what the feature files hold and how they were made."""
    tmp = directory / ".features.json.tmp"
    tmp.write_text(json.dumps(facts, indent=2, sort_keys=True))
    tmp.replace(directory / "features.json")


@dataclass
class FeatureFiles:
    """What :func:`build_text_features` wrote."""

    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    recall: dict[str, float] = field(default_factory=dict)
    """Per split: mean share of a query's relevant documents among its candidates."""


def parse_encoders(specs: list[str]) -> dict[str, str]:
    """``NAME=SOURCE`` strings to ``{name: source}`` (names: letters, digits, ``_``)."""
    encoders: dict[str, str] = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        if not sep or not name or not source:
            raise ConfigError(
                f"--encoder takes NAME=MODEL (e.g. ft=runs/finetune/model), got {spec!r}"
            )
        if not name.replace("_", "").isalnum():
            raise ConfigError(f"encoder name {name!r} may hold letters, digits and _ only")
        if name in encoders:
            raise ConfigError(f"encoder name {name!r} given twice")
        encoders[name] = source
    return encoders


def build_text_features(
    config: TextDataConfig, encoders: Mapping[str, str], output_dir: str | Path
) -> FeatureFiles:
    """Retrieve every split's candidates, compute their features and write
    ``<output_dir>/{train,valid,test}.parquet`` and ``features.json``.

    The query split and the candidates follow ``config`` exactly as ``ltr finetune`` does, so an
    encoder fine-tuned with the same data section never saw the queries of ``valid`` / ``test``.
    """
    if not config.collection:
        raise ConfigError("no collection given: set --collection (a text collection folder)")
    loaded = {name: load_lm(source) for name, source in encoders.items()}
    task = TextTask.load(config)
    lexical = LexicalModels.fit(task.collection)
    names = feature_names(loaded)
    out = FeatureFiles(Path(output_dir), feature_names=names)
    out.directory.mkdir(parents=True, exist_ok=True)
    tokenized = {name: (lm, tokenize_for(lm, task.collection)) for name, lm in loaded.items()}
    for part, lists in task.lists.items():
        features = np.concatenate(
            [lexical_features(lexical, lists), encoder_features(tokenized, lists)], axis=-1
        )
        path = out.directory / f"{part}.parquet"
        out.rows[part] = write_feature_file(path, task.collection, lists, features, names)
        out.files[part] = path
        out.recall[part] = lists.recall()
    write_manifest(
        out.directory,
        {
            "collection": config.collection,
            "split": config.split,
            "query_fractions": config.query_fractions,
            "split_seed": config.split_seed,
            "candidates": config.candidates,
            "bm25": {"k1": config.bm25_k1, "b": config.bm25_b},
            "encoders": dict(encoders),
            "feature_names": names,
            "rows": out.rows,
            "queries": {part: len(ids) for part, ids in task.split.parts().items()},
            "recall": out.recall,
        },
    )
    return out
