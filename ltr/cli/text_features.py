"""``ltr text-features``: a text collection's BM25 candidates as feature rows for the reranker."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "text-features",
        help="turn a text collection into ranking data: BM25 candidates, lexical features and "
        "text-encoder similarities or cross-encoder scores, as Parquet",
        description="Retrieve each judged query's BM25 top-k documents and write one row per "
        "candidate (bm25, bm25_log_rank, tfidf_cosine, query_coverage, doc_log_length and one "
        "column per --encoder: sim_NAME, or cross_NAME for a cross-encoder) to OUT/train.parquet, "
        "valid.parquet, test.parquet, split by query exactly as ltr finetune splits them with "
        "the same data section, and the featurizer that made them to OUT/featurizer. Train a "
        "reranker on them with ltr train --data.train OUT/train.parquet ... (the model then "
        "carries the featurizer), then rerank new queries' texts with ltr rerank-text "
        "--model ... or ltr serve --model ...",
        epilog="example: ltr text-features --config configs/text/cranfield.yaml "
        "--encoder ft=runs/finetune-cranfield/model --out runs/cranfield-features",
    )
    p.add_argument("--config", type=Path, help="YAML config; its data section is used")
    p.add_argument("--out", type=Path, required=True, help="folder for the feature files")
    p.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="a text encoder (model directory, runs:/… or models:/…) giving column sim_NAME "
        "(its cosine similarity), or cross_NAME for a cross-encoder (ltr finetune with "
        "architecture: cross; its score of the pair); repeat for several",
    )
    p.add_argument(
        "--context-encoder",
        metavar="NAME",
        help="also write each query's vector from the bi-encoder --encoder NAME as its context "
        "vector (the list column context on every row), for a reranker trained with "
        "--model.context_dim set to the encoder's d_model (SetRank's per-list context input); "
        "the saved featurizer gives new queries theirs",
    )
    p.add_argument(
        "--no-document-cache",
        dest="document_cache",
        action="store_false",
        help="do not analyse and encode the whole collection ahead and keep the results in the "
        "featurizer (by default reranking the collection's documents later skips the tokeniser "
        "and the encoders)",
    )
    p.add_argument(
        "--no-crossfit",
        dest="crossfit",
        action="store_false",
        help="for an encoder fine-tuned with crossfit_folds, give the training rows the "
        "similarities of the encoder trained on all the training queries, as the validation and "
        "test rows (by default each training query's come from the fold encoder that never saw "
        "it)",
    )
    p.add_argument(
        "--allow-query-overlap",
        action="store_true",
        help="write the features of an encoder fine-tuned on some of this run's validation or "
        "test queries (another query split of the same collection) anyway, with a warning; by "
        "default such an encoder is refused, since its column would look better there than on "
        "new queries",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where the encoders run: cpu (default), cuda, cuda:N or auto",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import sys

    from ltr.config import parse_overrides
    from ltr.text.config import load_finetune_config
    from ltr.text.features import build_text_features, parse_encoders

    config = load_finetune_config(args.config, parse_overrides(args.overrides))
    result = build_text_features(
        config.data,
        parse_encoders(args.encoder),
        args.out,
        cache_documents=args.document_cache,
        crossfit=args.crossfit,
        context_encoder=args.context_encoder,
        device=args.device,
        progress=not args.quiet,
        allow_query_overlap=args.allow_query_overlap,
    )
    if result.resumed_documents:
        print(
            f"resumed: {result.resumed_documents:,} documents' vectors read back from the "
            "interrupted run's encoding"
        )
    print(f"features: {', '.join(result.feature_names)}")
    for part, path in result.files.items():
        print(
            f"  {part:<6} {result.rows[part]:>7,} rows  recall of candidates "
            f"{result.recall[part]:.3f}  {path}"
        )
    for name in result.feature_names:
        by_part = "  ".join(f"{part} {v[name]:.3f}" for part, v in result.column_ndcg.items())
        print(f"  NDCG@10 of {name} alone: {by_part}")
    for name, folds in result.crossfit.items():
        print(
            f"  {result.encoder_columns[name]} on the training rows: cross-fitted, each query "
            f"scored by the one of {folds} fold encoders that was not trained on it"
        )
    if result.context_encoder is not None:
        print(
            f"  context: {result.context_dim} values per query, the query's vector from "
            f"{result.context_encoder}; train with --model.context_dim {result.context_dim}"
        )
    for warning in result.overlap_warnings() + result.leak_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    featurizer = result.directory / "featurizer"
    print(
        f"featurizer: {featurizer} (ltr train on these files bundles it into the model; "
        "ltr rerank-text and ltr serve use it from there)"
    )
    return 0
