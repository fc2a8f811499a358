"""``ltr rerank-text``: rerank one query's candidate texts, in-process or on a running server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank-text",
        help="rerank one query's candidate texts (in-process, or with RerankText on a server)",
        description="Compute the text features of each candidate with the featurizer that "
        "ltr text-features saved, score them with a model trained on those features and print "
        "the candidates best first. In-process (--model): the featurizer is the one the model "
        "carries (ltr train bundles it when its files came from ltr text-features) unless "
        "--featurizer names another. On a server (--server): one RerankText call, the server "
        "featurizes with its model's featurizer. The candidates are a JSON-lines file like a "
        "collection's docs.jsonl (doc_id, optional title, text), in the first stage's order; "
        "documents the collection never held are welcome. Each row: rank (1 = best), id, "
        "score, and given, the candidate's 1-based place in --docs (--format json: the same "
        "four fields).",
        epilog="examples: ltr rerank-text --model runs/setrank-text/model "
        '--query "flow past a cylinder" --docs hits.jsonl; ltr rerank-text --server '
        'localhost:50051 --query "flow past a cylinder" --docs hits.jsonl --top-k 10',
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="model directory or MLflow URI: rerank in-process")
    where.add_argument("--server", metavar="HOST:PORT", help="a running `ltr serve`")
    p.add_argument(
        "--featurizer",
        type=Path,
        help="with --model: featurizer folder (default: the one the model carries)",
    )
    p.add_argument("--query", required=True, help="the query's text")
    p.add_argument("--docs", type=Path, required=True, help="candidates, JSON lines")
    p.add_argument("--top-k", type=int, help="print only the best K")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    p.add_argument(
        "--device",
        default="cpu",
        help="with --model: where the model (torch backend) and the text encoders run: cpu "
        "(default), cuda, cuda:N or auto",
    )
    p.add_argument("--ca", type=Path, help="with --server: CA certificate (PEM), connect with TLS")
    p.add_argument("--cert", type=Path, help="with --server: client certificate, for mutual TLS")
    p.add_argument("--key", type=Path, help="with --server: client key, for mutual TLS")
    p.add_argument("--timeout", type=float, default=10.0, help="with --server: deadline, seconds")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError
    from ltr.text.collection import read_texts

    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    if not args.docs.is_file():
        what = "is a folder" if args.docs.is_dir() else "does not exist"
        raise ConfigError(
            f"--docs {args.docs} {what}; give the candidates as a JSON-lines file (doc_id, "
            "optional title, text)"
        )
    docs = read_texts(args.docs, "doc_id")
    ids, texts = list(docs), list(docs.values())
    if args.server:
        if args.featurizer is not None:
            raise ConfigError("--featurizer is for --model; a server uses its model's own")
        hits, model = _on_server(args, ids, texts)
    else:
        tls = [f"--{n}" for n in ("ca", "cert", "key") if getattr(args, n) is not None]
        if tls:
            raise ConfigError(f"{' and '.join(tls)}: only for --server; leave them out here")
        from ltr.text.rerank import TextReranker

        reranker = TextReranker.load(
            args.model, args.featurizer, backend=args.backend, device=args.device
        )
        hits = reranker.rerank(args.query, texts, ids, top_k=args.top_k)
        loaded = reranker.predictor.loaded
        model = {"name": loaded.served_name, "version": loaded.served_version}
    if args.format == "json":  # the same shape in-process and from a server
        candidates = [  # the table's columns: both ranks 1-based
            {"rank": rank, "id": h.id, "score": h.score, "given": h.position + 1}
            for rank, h in enumerate(hits, 1)
        ]
        print(json.dumps({"model": model, "candidates": candidates}))
        return 0
    if args.server:
        print(f"ranked by {model['name']} version {model['version']} at {args.server}")
    width = max(len(h.id) for h in hits)
    print(f"{'rank':>4}  {'id':<{width}}  {'score':>10}  given")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit.id:<{width}}  {hit.score:>10.4f}  {hit.position + 1:>5}")
    return 0


def _on_server(args: argparse.Namespace, ids: list[str], texts: list[str]):
    from ltr.serve.client import RerankerClient
    from ltr.text.rerank import RankedText

    with RerankerClient(
        args.server, ca=args.ca, cert=args.cert, key=args.key, timeout=args.timeout
    ) as client:
        ranked = client.rerank_text(args.query, texts, ids, top_k=args.top_k)
    hits = [
        RankedText(cid, float(score), int(index))
        for cid, score, index in zip(
            ranked.ids, ranked.scores.tolist(), ranked.request_indices.tolist(), strict=True
        )
    ]
    return hits, {"name": ranked.model.name, "version": ranked.model.version}
