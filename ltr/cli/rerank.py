"""``ltr rerank``: one call to a running reranker, with a list from a LETOR or Parquet file."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank",
        help="send one query's candidates from a data file to a running server",
        description="Read one query's candidates from a LETOR or Parquet file, send them to an "
        "ltr serve process and print them in the order it returns (with the file's labels, when "
        "it has them, for a quick look; a Parquet file of candidates needs no label column). "
        "Candidate ids are the file's doc ids, else row numbers. A "
        "model that uses initial ranks is sent the file's order as the initial ranking, as in "
        "training and ltr evaluate; a model with a context vector gets the query's vector from "
        "--context-columns (Parquet data).",
        epilog="example: ltr rerank --server localhost:50051 --data data/mq2008/S5.txt.xz "
        "--query 18219 --top-k 10",
    )
    p.add_argument("--server", default="localhost:50051", help="host:port (default %(default)s)")
    p.add_argument("--data", type=Path, required=True, help="LETOR or Parquet file")
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes for the data")
    p.add_argument("--query", help="query id to send (default: the file's first query)")
    p.add_argument("--top-k", type=int, help="return only the best K")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        choices=range(5),
        metavar="{0..4}",
        help="retries when the server's queue is full or it is unavailable (default 3)",
    )
    p.add_argument("--ca", type=Path, help="CA certificate (PEM): connect with TLS")
    p.add_argument("--cert", type=Path, help="client certificate (PEM), for mutual TLS")
    p.add_argument("--key", type=Path, help="client key (PEM), for mutual TLS")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="for a served model with a context vector (Parquet data): one list column of C "
        "numbers, or C numeric columns (default: the columns the server reports the model "
        "was trained with, else the list column context)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError
    from ltr.serve.client import RerankerClient, load_served_data, query_of

    with RerankerClient(
        args.server,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        timeout=args.timeout,
        retries=args.retries,
    ) as client:
        # the served model says which inputs beyond features it takes
        spec = client.model_info().spec
        data = load_served_data(
            spec,
            args.data,
            group_file=args.group_file,
            context_columns=args.context_columns,
            labels=False,  # candidates to rank need none; the file's are shown when it has them
        )
        labelled = _labelled(args.data)
        qids = [str(q) for q in data.qids]
        if args.query is None:
            index = 0
        elif args.query in qids:
            index = qids.index(args.query)
        else:
            raise ConfigError(f"query {args.query!r} is not in {args.data}; e.g. {qids[0]!r}")
        item = data[index]
        doc_ids = data.doc_ids[item.rows]
        ids = [
            str(d) if d is not None else f"row{r}" for d, r in zip(doc_ids, item.rows, strict=True)
        ]
        labels = dict(zip(ids, item.labels.tolist(), strict=True)) if labelled else None
        # as in training and `ltr evaluate`: the file's order is the initial ranking
        query = query_of(data, index, uses_initial_rank=spec.uses_initial_rank, ids=ids)
        ranked = client.rerank_query(replace(query, top_k=args.top_k))
    if args.format == "json":
        out = {
            "query_id": ranked.query_id,
            "model": {"name": ranked.model.name, "version": ranked.model.version},
            "impression_id": ranked.impression_id,
            "challenger": None
            if ranked.challenger is None
            else {"name": ranked.challenger.name, "version": ranked.challenger.version},
            "candidates": [
                {"id": i, "score": float(s)} | ({"label": labels[i]} if labels else {})
                for i, s in zip(ranked.ids, ranked.scores.tolist(), strict=True)
            ],
        }
        print(json.dumps(out))
        return 0
    print(
        f"query {ranked.query_id}: {len(ids)} candidates, ranked by {ranked.model.name} "
        f"version {ranked.model.version}"
        + (
            f", interleaved with {ranked.challenger.name} version {ranked.challenger.version} "
            "(scores are the model's)"
            if ranked.challenger is not None
            else ""
        )
        + (f" (impression {ranked.impression_id})" if ranked.impression_id else "")
    )
    print(
        f"{'rank':>4}  {'score':>10}  {'label':>5}  id"
        if labels
        else f"{'rank':>4}  {'score':>10}  id"
    )
    for r, (cid, score) in enumerate(zip(ranked.ids, ranked.scores.tolist(), strict=True), 1):
        label = f"{labels[cid]:>5g}  " if labels else ""
        print(f"{r:>4}  {score:>10.4f}  {label}{cid}")
    return 0


def _labelled(path: Path) -> bool:
    """Whether the data carries labels: a LETOR file always does, a Parquet file when it has a
    ``label`` column."""
    import pyarrow.parquet as pq

    return path.suffix != ".parquet" or "label" in pq.read_schema(path).names
