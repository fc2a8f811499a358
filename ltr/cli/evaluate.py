"""``ltr evaluate``: offline ranking metrics for a model or for external scores."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

CONVENTION_HEADERS = {"empty=1": "empty=1", "empty=0": "empty=0", "dropped": "dropped"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="NDCG/MAP/MRR/ERR of a model or of external scores on a data file",
        description="Evaluate a model (local artifact or MLflow URI such as models:/name@alias), "
        "a live `ltr serve` endpoint (--server: every list sent whole, scored by the model it "
        "serves), or a file of external scores (one per line, aligned with the data rows) on "
        "LETOR or Parquet data. Metrics are shown under all three conventions for lists with no "
        "relevant item: counted as 1 (LightGBM, allRank), as 0 (TF-Ranking, Rax), or dropped.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="artifact dir, runs:/<id>/model or models:/<name>@<alias>")
    source.add_argument("--scores", type=Path, help="text file: one score per data row")
    source.add_argument(
        "--server", metavar="HOST:PORT", help="a running `ltr serve`: evaluate what it serves"
    )
    p.add_argument("--data", type=Path, required=True, nargs="+", help="LETOR or Parquet file(s)")
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes for the data")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--metrics", nargs="+", help="metric names (default: ndcg@1/3/5/10 map mrr err@10)"
    )
    p.add_argument(
        "--ties",
        choices=["pessimistic", "position"],
        default="pessimistic",
        help="order of equal scores (default: lower labels first)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="lists per forward pass (with --server: at most 32 lists per RerankBatch call)",
    )
    p.add_argument(
        "--err-max-grade",
        type=float,
        metavar="G",
        help="top relevance grade for ERR (default: the one recorded in training, else the "
        "data's largest label, at least 2)",
    )
    p.add_argument("--ca", type=Path, help="with --server: CA certificate (PEM), connect with TLS")
    p.add_argument("--cert", type=Path, help="with --server: client certificate, for mutual TLS")
    p.add_argument("--key", type=Path, help="with --server: client key, for mutual TLS")
    p.add_argument("--timeout", type=float, default=60.0, help="with --server: seconds per call")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="models with a context vector (Parquet data): one list column of C numbers, or C "
        "numeric columns, the same on every row of a query (default: the columns the model was "
        "trained with, else the list column context)",
    )
    p.set_defaults(func=run)


def read_scores(path: Path, expected: int):
    """One float per line; errors name the line. Returns float64 ``[expected]``."""
    import numpy as np

    from ltr.data.svmlight import binary_kind
    from ltr.errors import DataFormatError

    if not path.exists():
        raise FileNotFoundError(f"no such scores file: {path}")
    wanted = "a text file of one score per line"
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder, not {wanted}; give that file")
    with path.open("rb") as fh:
        kind = binary_kind(fh.read(4096))
    if kind is not None:
        raise DataFormatError(
            f"{path} is not {wanted} ({kind} content); write the scores as plain text, one per "
            "data row in the data's order"
        )
    values = []
    lineno = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    value = float(text.split()[0])
                except ValueError:
                    raise DataFormatError(
                        f"{path}, line {lineno}: {text!r} is not a number"
                    ) from None
                if not math.isfinite(value):
                    raise DataFormatError(f"{path}, line {lineno}: score is not finite ({text})")
                values.append(value)
    except UnicodeDecodeError:  # decoded in blocks: the fault is after, not at, lineno
        raise DataFormatError(
            f"{path} is not {wanted}: not valid UTF-8 text after line {lineno}"
        ) from None
    if len(values) != expected:
        raise DataFormatError(
            f"{path} holds {len(values)} scores but the data has {expected} rows; "
            "give exactly one score per data row, in the data's order"
        )
    return np.asarray(values, dtype=np.float64)


def load_model_and_data(args: argparse.Namespace, what: str = "these metrics"):
    """``(loaded model, dataset)`` from ``args.model``, ``args.data``, ``args.group_file`` and
    ``args.context_columns``; the data must have the model's feature count. Warns on stderr when
    the model saw a data file in training (``what``: the results, for the warning)."""
    import sys

    from ltr.artifact import load_model
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.errors import DataFormatError
    from ltr.heldout import list_fingerprints, not_held_out_warning, seen_lists_warning

    loaded = load_model(args.model)
    manifest = loaded.manifest
    warning = not_held_out_warning(manifest.training, args.data, what)
    if warning:
        print(warning, file=sys.stderr)
    width = manifest.num_features
    context = resolve(
        manifest.model_config,
        context_columns=args.context_columns,
        trained_context_columns=manifest.training.get("context_columns"),
    )
    data = load_dataset(args.data, group_file=args.group_file, num_features=width, context=context)
    if data.num_features != width:
        raise DataFormatError(
            f"the data has {data.num_features} features but the model expects {width}"
        )
    if not warning:  # the same lists in another file: found by their features
        fingerprints = list_fingerprints(data.features, data.offsets)
        warning = seen_lists_warning(manifest.training, fingerprints, what)
        if warning:
            print(warning, file=sys.stderr)
    return loaded, data


def evaluate_source(args: argparse.Namespace) -> tuple[dict, dict]:
    """Scores for the data from the model, the server or the scores file; returns (metrics,
    info)."""
    from ltr.data.dataset import load_dataset
    from ltr.errors import ConfigError
    from ltr.metrics import DEFAULT_METRICS, evaluate_all_conventions

    tls = [f"--{name}" for name in ("ca", "cert", "key") if getattr(args, name, None)]
    if tls and not args.server:
        raise ConfigError(f"{' and '.join(tls)}: only for --server; leave them out here")
    info: dict[str, object] = {}
    if args.model:
        from ltr.inference import score_lists

        loaded, data = load_model_and_data(args)
        scores = score_lists(loaded.model, data, batch_size=args.batch_size).astype("float64")
        info["model"] = args.model
        max_grade = loaded.manifest.training.get("max_grade")
    elif args.server:
        data, scores, info["model"] = _scores_from_server(args)
        max_grade = None
    else:
        if args.context_columns:
            raise ConfigError("--context-columns is for models; external scores need no context")
        data = load_dataset(args.data, group_file=args.group_file)
        scores = read_scores(args.scores, data.num_rows)
        info["scores"] = str(args.scores)
        max_grade = None
    if args.err_max_grade is not None:
        if not args.err_max_grade > 0:
            raise ConfigError(f"--err-max-grade must be > 0, got {args.err_max_grade:g}")
        max_grade = args.err_max_grade
    max_grade = float(max_grade or max(2.0, float(data.labels.max())))
    metrics = evaluate_all_conventions(
        scores,
        data.labels,
        data.offsets,
        metrics=args.metrics or DEFAULT_METRICS,
        ties=args.ties,
        max_grade=max_grade,
    )
    info.update(
        {
            "data": [str(p) for p in args.data],
            "rows": data.num_rows,
            "queries": len(data),
            "queries_without_relevant": int(data.stats()["queries_without_relevant"]),
            "err_max_grade": max_grade,
            "ties": args.ties,
        }
    )
    return metrics, info


def _scores_from_server(args: argparse.Namespace):
    """(data, scores, description) with every list of the data scored by a live server."""
    from ltr.serve.client import RerankerClient, load_served_data, score_dataset

    with RerankerClient(
        args.server, ca=args.ca, cert=args.cert, key=args.key, timeout=args.timeout
    ) as client:
        spec = client.model_info().spec
        data = load_served_data(
            spec, args.data, group_file=args.group_file, context_columns=args.context_columns
        )
        scores = score_dataset(client, data, lists_per_call=min(args.batch_size, 32))
    return data, scores, f"{spec.ref.name} {spec.ref.version} at {args.server}"


def format_table(metrics: dict[str, dict[str, float]]) -> str:
    """Metric rows by convention columns."""
    conventions = list(metrics)
    names = list(next(iter(metrics.values())))
    lines = [
        f"{'metric':<10}" + "".join(f"{CONVENTION_HEADERS.get(c, c):>10}" for c in conventions)
    ]
    for name in names:
        cells = "".join(f"{metrics[c][name]:>10.4f}" for c in conventions)
        lines.append(f"{name:<10}{cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    metrics, info = evaluate_source(args)
    if args.format == "json":
        print(json.dumps(metrics))
        return 0
    source = info.get("model") or info.get("scores")
    print(
        f"{source} on {', '.join(info['data'])}: {info['rows']:,} rows, {info['queries']:,} "
        f"queries ({info['queries_without_relevant']} with no relevant item)"
    )
    print(format_table(metrics))
    print(f"ties: {info['ties']}; ERR grades scaled by max grade {info['err_max_grade']:g}")
    return 0
