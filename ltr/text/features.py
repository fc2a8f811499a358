"""Text candidates to the reranker's feature files (``ltr text-features``).

The features are :class:`ltr.text.featurizer.TextFeaturizer`'s (lexical columns and one
column per text encoder: a bi-encoder's similarity or a cross-encoder's score, listed there).
Rows are written as ``ltr`` Parquet (one file per query split: ``train``, ``valid``, ``test``),
so ``ltr train`` / ``ltr evaluate`` / ``ltr serve`` take them like any ranking data, and the
featurizer is saved beside them (``featurizer/``) for reranking new queries' texts with the
model trained on them (:mod:`ltr.text.rerank`). With a context encoder every row also carries
its query's vector from that encoder (the list column ``context``), for a model with
``context_dim`` (SetRank's per-list context input).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ltr.data.parquet import ParquetListWriter
from ltr.data.svmlight import RowChunk
from ltr.errors import ConfigError
from ltr.lm.artifact import LM_MANIFEST, LoadedLM, load_lm
from ltr.text.candidates import CandidateLists, TextTask
from ltr.text.collection import TextCollection, split_queries
from ltr.text.config import TextDataConfig
from ltr.text.encoder import mean_ndcg
from ltr.text.featurizer import (
    LEXICAL_FEATURES,
    LOWER_IS_BETTER,
    TextFeaturizer,
    encoder_column,
    encoder_similarities,
)

__all__ = ["LEXICAL_FEATURES", "FeatureFiles", "build_text_features", "parse_encoders"]

FEATURIZER_DIR = "featurizer"
PARTIAL_DIR = ".document-cache-partial"
"""Where the collection's encoding is saved chunk by chunk until the featurizer is written, so
that running the same command again after a crash goes on from the last chunk."""
LEAK_GAP = 0.2
"""NDCG@10 by which an encoder column may rank the training lists better than the validation
lists before ``ltr text-features`` warns of leakage."""


def write_feature_file(
    path: str | Path,
    collection: TextCollection,
    lists: CandidateLists,
    features: np.ndarray,
    names: list[str],
    context: np.ndarray | None = None,
) -> int:
    """Write one row per candidate (queries in ``lists`` order, candidates in BM25 order) as
    ``ltr`` Parquet, with each query's ``context`` vector (``[Q, C]``) on its rows when given;
    return the number of rows."""
    q, k, f = features.shape
    chunk = RowChunk(
        qids=np.repeat(np.asarray(lists.query_ids, dtype=object), k),
        doc_ids=np.asarray([collection.doc_ids[i] for i in lists.doc_index.ravel()], dtype=object),
        labels=lists.labels.reshape(-1).astype(np.float32),
        features=features.reshape(q * k, f).astype(np.float32),
    )
    dim = 0 if context is None else context.shape[1]
    per_row = None if context is None else np.repeat(context, k, axis=0)  # (Q*K, C)
    with ParquetListWriter(path, f, feature_names=names, context_dim=dim) as writer:
        writer.write(chunk, per_row)
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
    column_ndcg: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per split and column: mean NDCG@10 of the candidate lists ranked by that column alone."""
    crossfit: dict[str, int] = field(default_factory=dict)
    """Encoder name -> number of cross-fitted encoders that gave its training rows."""
    encoder_columns: dict[str, str] = field(default_factory=dict)
    """Encoder name -> its column (``sim_<name>``, or ``cross_<name>`` for a cross-encoder)."""
    context_encoder: str | None = None
    """The encoder whose query vectors fill the ``context`` column (None = no such column)."""
    context_dim: int = 0
    """C, the values per query in the ``context`` column (a model's ``context_dim``)."""
    resumed_documents: int = 0
    """Documents whose vectors an interrupted earlier run had encoded and this one read back."""
    overlap: dict[str, dict[str, int]] = field(default_factory=dict)
    """Encoder name -> {split: its fine-tuning queries among this run's queries of that split}
    for encoders let through with ``allow_query_overlap`` (empty otherwise: such encoders are
    refused)."""

    def overlap_warnings(self) -> list[str]:
        """One sentence per encoder fine-tuned on some of this run's validation or test queries."""
        return [
            f"{self.encoder_columns[name]}: encoder {name} was fine-tuned on "
            f"{_overlap_counts(counts)}; their metrics overstate it on new queries"
            for name, counts in self.overlap.items()
        ]

    def leak_warnings(self, gap: float = LEAK_GAP) -> list[str]:
        """One sentence per encoder column that ranks the training lists far better than the
        validation lists (by more than ``gap`` NDCG@10): the sign of an encoder fine-tuned on
        these training queries, whose column a ranker trained on them will over-trust."""
        train, valid = self.column_ndcg.get("train", {}), self.column_ndcg.get("valid", {})
        out = []
        for name in self.feature_names:
            if not (name.startswith(("sim_", "cross_")) and name in train and name in valid):
                continue
            if train[name] - valid[name] > gap:
                out.append(
                    f"{name} ranks the training lists far better than the validation lists "
                    f"(NDCG@10 {train[name]:.3f} against {valid[name]:.3f}): its encoder has "
                    "probably been fine-tuned on these training queries, and a ranker trained "
                    "on train.parquet will trust it more than it deserves on new queries; "
                    "fine-tune it with crossfit_folds (e.g. --crossfit_folds 5) and its "
                    "training rows come from encoders that did not see them (docs/TEXT.md, "
                    "'Fine-tuned encoders and leakage')"
                )
        return out


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


def finetuning_queries(
    lm: LoadedLM, config: TextDataConfig, collection: TextCollection
) -> list[str] | None:
    """The queries of ``collection`` that ``ltr finetune`` trained ``lm`` on, or None when it
    was not fine-tuned on this collection (a pretrained encoder, or another collection).

    The collection is the same when its folder has the same name and the collection's own
    split (``data.split``) is the same. The queries are those its manifest lists
    (``training.train_queries``); for an encoder fine-tuned before they were listed, the
    training part of this collection's queries split by its recorded ``split`` (fractions and
    seed), and only when this run reads no split of the collection's own (``data.split``
    unset: the encoder's was not recorded either).
    """
    facts = lm.training
    recorded = facts.get("split")
    if not isinstance(recorded, dict) or "collection" not in facts:
        return None
    if Path(str(facts["collection"])).name != Path(config.collection).name:
        return None
    if "train_queries" in facts:
        if facts.get("data_split") != config.split:
            return None
        return [str(q) for q in facts["train_queries"]]
    if config.split is not None:
        return None
    fractions = recorded.get("fractions", config.query_fractions)
    seed = int(recorded.get("seed", config.split_seed))
    return split_queries(collection.query_ids, tuple(fractions), seed=seed)[0]


def _overlap_counts(counts: Mapping[str, int]) -> str:
    return " and ".join(f"{n} of this run's {part} queries" for part, n in counts.items() if n)


def check_overlap(lm: LoadedLM, config: TextDataConfig, task: TextTask) -> dict[str, int]:
    """How many of this run's validation and test queries encoder ``lm`` was fine-tuned on
    (``{"valid": n, "test": m}``, both 0 when none or when it was not fine-tuned here)."""
    seen = finetuning_queries(lm, config, task.collection)
    if seen is None:
        return {"valid": 0, "test": 0}
    seen_set = set(seen)
    return {
        "valid": sum(q in seen_set for q in task.split.valid),
        "test": sum(q in seen_set for q in task.split.test),
    }


def overlap_error(name: str, lm: LoadedLM, counts: Mapping[str, int]) -> ConfigError:
    recorded = lm.training.get("split", {})
    return ConfigError(
        f"encoder {name} was fine-tuned on {_overlap_counts(counts)} (it was fine-tuned with "
        f"query_fractions {recorded.get('fractions')} and split_seed {recorded.get('seed')}), "
        "so its features there would overstate it; use the data section it was fine-tuned "
        "with (e.g. --data.split_seed "
        f"{recorded.get('seed')}), fine-tune it again with this one, or pass "
        "--allow-query-overlap to write them anyway"
    )


@dataclass
class CrossFit:
    """A fine-tuned encoder's cross-fitted fold encoders (``ltr finetune`` with
    ``crossfit_folds``): ``encoders[k]`` was trained without the queries ``held_out[k]``."""

    held_out: list[list[str]]
    encoders: list[LoadedLM]

    @classmethod
    def of(cls, name: str, lm: LoadedLM) -> CrossFit | None:
        """The folds saved with encoder ``name`` (None when it has none).

        Raises:
            ConfigError: its manifest lists fold encoders that are not there.
        """
        facts = lm.training.get("crossfit")
        if not facts:
            return None
        held_out = [list(map(str, part)) for part in facts.get("held_out", [])]
        encoders = []
        for k in range(len(held_out)):
            path = (lm.path or Path(".")) / facts.get("directory", "crossfit") / f"fold{k}"
            if not (path / LM_MANIFEST).exists():
                raise ConfigError(
                    f"encoder {name} lists {len(held_out)} cross-fitted encoders but {path} "
                    "holds none; pass the model directory ltr finetune wrote, whole, or "
                    "--no-crossfit"
                )
            encoders.append(load_lm(path))
        return cls(held_out, encoders)

    def check(self, name: str, train_queries: list[str]) -> None:
        """The folds must hold out exactly these training queries, each once.

        Raises:
            ConfigError: they were made for another query split.
        """
        held = [q for part in self.held_out for q in part]
        if len(held) == len(set(held)) and set(held) == set(train_queries):
            return
        missing = sorted(set(train_queries) - set(held))
        extra = sorted(set(held) - set(train_queries))
        raise ConfigError(
            f"encoder {name} was cross-fitted on another query split: its folds hold out "
            f"{len(held)} queries, this split has {len(train_queries)} training queries "
            f"({len(missing)} of them in no fold, {len(extra)} held-out queries not among them); "
            "fine-tune it with the same data section (collection, split, query_fractions, "
            "split_seed), or pass --no-crossfit to give the training rows the similarities of "
            "the encoder trained on all its training queries"
        )

    def folds_of(self, lists: CandidateLists) -> Iterator[tuple[np.ndarray, LoadedLM]]:
        """``(rows of lists, the fold encoder that did not see their queries)`` per fold that
        holds some query of ``lists`` (training queries only)."""
        row_of = {q: i for i, q in enumerate(lists.query_ids)}
        for part, lm in zip(self.held_out, self.encoders, strict=True):
            rows = np.array([row_of[q] for q in part if q in row_of], dtype=np.int64)
            if len(rows):
                yield rows, lm

    def similarities(self, lists: CandidateLists, doc_texts: list[str], out: np.ndarray) -> None:
        """Write into ``out[q, k]`` each query's similarities from the encoder that did not
        see it (``lists`` holds training queries only)."""
        for rows, lm in self.folds_of(lists):
            queries = [lists.query_texts[r] for r in rows]
            out[rows] = encoder_similarities(lm, queries, doc_texts, lists.doc_index[rows])

    def query_context(
        self, lists: CandidateLists, featurizer: TextFeaturizer, out: np.ndarray
    ) -> None:
        """Write into ``out[q]`` each query's context vector from the encoder that did not
        see it (``lists`` holds training queries only)."""
        for rows, lm in self.folds_of(lists):
            queries = [lists.query_texts[r] for r in rows]
            out[rows] = featurizer.query_context(queries, encoder=lm)

    def to(self, device: str) -> CrossFit:
        from ltr.predictor import resolve_device

        for lm in self.encoders:
            lm.to(resolve_device(device))
        return self


def build_text_features(
    config: TextDataConfig,
    encoders: Mapping[str, str],
    output_dir: str | Path,
    *,
    cache_documents: bool = True,
    crossfit: bool = True,
    context_encoder: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    allow_query_overlap: bool = False,
) -> FeatureFiles:
    """Retrieve every split's candidates, compute their features and write
    ``<output_dir>/{train,valid,test}.parquet`` and ``features.json``.

    The query split and the candidates follow ``config`` exactly as ``ltr finetune`` does, so an
    encoder fine-tuned with the same data section never saw the queries of ``valid`` / ``test``.
    An encoder (or cross-encoder) fine-tuned on this collection with another split is refused
    when its fine-tuning queries (:func:`finetuning_queries`) include any validation or test
    query of this one.

    Args:
        cache_documents: analyse and encode the whole collection once and save the results
            with the featurizer (:mod:`ltr.text.cache`), so that reranking its documents later
            skips the tokeniser and the encoders; without it only the listed documents are
            featurized, and nothing is kept. The encoding is saved chunk by chunk in
            ``<output_dir>/.document-cache-partial`` until the featurizer is written: the same
            call after a crash reads back the chunks done (same encoders, same documents).
        crossfit: where an encoder was fine-tuned with ``crossfit_folds``, give each training
            query its similarities from the fold encoder that did not see it (validation and
            test rows, and the saved featurizer, use the encoder trained on all of them).
        context_encoder: the name of a bi-encoder of ``encoders`` whose unit vector of each
            query's text is written as that query's context vector (the list column
            ``context``, on every row of the query: what a model with ``context_dim`` reads),
            and given by the saved featurizer for new queries. Cross-fitted like its column.
        device: where the encoders run (``cpu``, ``cuda``, ``cuda:N``, ``auto``).
        progress: show progress bars while the collection is encoded and while
            cross-encoders score each split's (query, candidate) pairs.
        allow_query_overlap: write the features of an encoder fine-tuned on some of the
            validation or test queries anyway (``FeatureFiles.overlap`` counts them).

    Raises:
        ConfigError: an encoder was fine-tuned on validation or test queries of this split
            (without ``allow_query_overlap``), or cross-fitted on another training split.
    """
    if not config.collection:
        raise ConfigError("no collection given: set --collection (a text collection folder)")
    task = TextTask.load(config)
    docs = task.collection.doc_texts
    featurizer = TextFeaturizer.fit(
        docs, encoders, k1=config.bm25_k1, b=config.bm25_b, context_encoder=context_encoder
    )
    featurizer.to(device)
    overlap: dict[str, dict[str, int]] = {}  # checked before the long work below
    for name, lm in featurizer.encoders.items():
        counts = check_overlap(lm, config, task)
        if any(counts.values()):
            if not allow_query_overlap:
                raise overlap_error(name, lm, counts)
            overlap[name] = counts
    folds: dict[str, CrossFit] = {}
    for name, lm in featurizer.encoders.items() if crossfit else ():
        fit = CrossFit.of(name, lm)
        if fit is not None:
            fit.check(name, task.split.train)
            folds[name] = fit.to(device)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / PARTIAL_DIR
    resumed = 0
    if cache_documents:
        resumed = featurizer.cache_documents(docs, progress=progress, partial_dir=partial)
    names = featurizer.feature_names
    out = FeatureFiles(out_dir, feature_names=names, resumed_documents=resumed, overlap=overlap)
    out.crossfit = {name: len(fit.encoders) for name, fit in folds.items()}
    out.encoder_columns = {
        name: encoder_column(name, lm.is_cross) for name, lm in featurizer.encoders.items()
    }
    out.context_encoder, out.context_dim = featurizer.context_encoder, featurizer.context_dim
    for part, lists in task.lists.items():
        label = part if progress else None
        features = featurizer.features(lists.query_texts, docs, lists.doc_index, progress=label)
        context = None
        if featurizer.context_encoder is not None:
            context = featurizer.query_context(lists.query_texts)  # (Q, C)
        if part == "train":
            for name, fit in folds.items():
                column = names.index(out.encoder_columns[name])
                fit.similarities(lists, docs, features[..., column])
                if name == featurizer.context_encoder:
                    fit.query_context(lists, featurizer, context)
        path = out.directory / f"{part}.parquet"
        out.rows[part] = write_feature_file(path, task.collection, lists, features, names, context)
        out.files[part] = path
        out.recall[part] = lists.recall()
        labels = lists.labels
        out.column_ndcg[part] = {  # each column its own way round: a rank, smallest first
            name: mean_ndcg((-1.0 if name in LOWER_IS_BETTER else 1.0) * features[..., j], labels)
            for j, name in enumerate(names)
        }
    featurizer.save(out.directory / FEATURIZER_DIR)
    shutil.rmtree(partial, ignore_errors=True)  # the cache is saved: nothing left to resume
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
            "document_cache": cache_documents,
            "crossfit": out.crossfit,
            "finetuning_query_overlap": out.overlap,
            "feature_names": names,
            "context_encoder": out.context_encoder,
            "context_dim": out.context_dim,
            "featurizer": FEATURIZER_DIR,
            "rows": out.rows,
            "queries": {part: len(ids) for part, ids in task.split.parts().items()},
            "recall": out.recall,
            "column_ndcg@10": out.column_ndcg,
        },
    )
    return out
