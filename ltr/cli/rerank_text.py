"""``ltr rerank-text``: rerank one query's candidate texts with a featurizer and a trained model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank-text",
        help="rerank one query's candidate texts in-process (featurizer + model trained on its "
        "features)",
        description="Compute the text features of each candidate with the featurizer that "
        "ltr text-features saved (OUT/featurizer), score them with a model trained on those "
        "features and print the candidates best first. The candidates are a JSON-lines file "
        "like a collection's docs.jsonl (doc_id, optional title, text), in the first stage's "
        "order; documents the collection never held are welcome.",
        epilog="example: ltr rerank-text --featurizer runs/cranfield_features/featurizer "
        '--model runs/cranfield_setrank/model --query "flow past a cylinder" --docs hits.jsonl',
    )
    p.add_argument("--featurizer", type=Path, required=True, help="OUT/featurizer folder")
    p.add_argument("--model", required=True, help="model directory or MLflow URI")
    p.add_argument("--query", required=True, help="the query's text")
    p.add_argument("--docs", type=Path, required=True, help="candidates, JSON lines")
    p.add_argument("--top-k", type=int, help="print only the best K")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.text.collection import read_texts
    from ltr.text.rerank import TextReranker

    docs = read_texts(args.docs, "doc_id")
    reranker = TextReranker.load(args.featurizer, args.model, backend=args.backend)
    hits = reranker.rerank(args.query, list(docs.values()), list(docs), top_k=args.top_k)
    if args.format == "json":
        print(json.dumps([{"id": h.id, "score": h.score, "position": h.position} for h in hits]))
        return 0
    width = max(len(h.id) for h in hits)
    print(f"{'rank':>4}  {'id':<{width}}  {'score':>10}  given")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit.id:<{width}}  {hit.score:>10.4f}  {hit.position + 1:>5}")
    return 0
