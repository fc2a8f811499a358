"""``ltr serve``: the gRPC reranking server."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over gRPC (ONNX Runtime, dynamic batching, health, metrics)",
        description="Serve a model with the ltr.reranker.v1.Reranker gRPC service, the standard "
        "health service and server reflection. Settings come from --config "
        "(configs/serve/*.yaml), then LTR_SERVE_* environment variables, then options; any "
        "setting can be given as a dotted option, e.g. --batching.max_delay_ms 1 --tls.cert "
        "server.pem. SIGTERM drains and exits; SIGHUP reloads the model.",
        epilog="example: ltr serve --model models:/ltr-mq2008-setrank@candidate --port 50051",
    )
    p.add_argument("--model", help="artifact dir, runs:/<id>/model or models:/<name>@<alias>")
    p.add_argument(
        "--featurizer",
        help="text featurizer folder (ltr text-features' OUT/featurizer) for RerankText calls "
        "(default: the one the model artifact carries, if any)",
    )
    p.add_argument("--config", type=Path, help="YAML server config (see configs/serve/)")
    p.add_argument("--backend", choices=["onnx", "torch"], help="inference engine (default onnx)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="gRPC port (default 50051)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus port (default 9090, 0 = off); every server on a machine needs its own",
    )
    p.add_argument("--metrics-host", help="address of the Prometheus port (default: --host's)")
    p.add_argument("--threads", type=int, help="compute threads per forward pass (default 1)")
    p.add_argument("--device", help="torch backend: cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--featurizer-device",
        help="where the text featurizer's encoders run (default: --device); a GPU works with "
        "the onnx backend too",
    )
    p.add_argument("--no-batching", action="store_true", help="one forward pass per list")
    p.add_argument(
        "--impressions",
        metavar="DIR",
        help="log every answered list (returned candidates, positions, scores, features) as "
        "Parquet files in DIR, for learning from clicks (impressions.directory)",
    )
    p.add_argument(
        "--challenger",
        metavar="MODEL",
        help="compare MODEL with --model online: answer feature lists with the team-draft "
        "interleaving of both rankings, each candidate's team in the impression log, for "
        "`ltr clicks interleaving` (interleaving.challenger)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import yaml

    from ltr.config import parse_overrides, to_dict
    from ltr.serve.config import load_serve_config

    overrides = parse_overrides(args.overrides)
    flags = {
        "model": args.model,
        "featurizer": args.featurizer,
        "backend": args.backend,
        "host": args.host,
        "port": args.port,
        "metrics_host": args.metrics_host,
        "metrics_port": args.metrics_port,
        "threads": args.threads,
        "device": args.device,
        "featurizer_device": args.featurizer_device,
        "batching.enabled": False if args.no_batching else None,
        "impressions.directory": args.impressions,
        "interleaving.challenger": args.challenger,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    config = load_serve_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False))
        return 0
    from ltr.artifact import is_mlflow_uri, resolve_artifact_dir

    for source in (config.model, config.interleaving.challenger):
        if source and not is_mlflow_uri(source):
            resolve_artifact_dir(source)  # a wrong path is told now, not after ~10 s of imports
    from ltr.serve.server import run as run_server

    return run_server(config)
