"""``ltr export``: write an artifact's ONNX graph, checked against PyTorch on real data."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (model.onnx), checked against PyTorch on real lists",
        description="Export a trained model (feature normaliser included) to an ONNX graph with "
        "dynamic batch and list dimensions. ONNX Runtime and PyTorch score the same real lists "
        "(from --data, else the test/valid data recorded in the artifact); model.onnx is written "
        "atomically only if they agree to --atol, else nothing is written and the command fails.",
        epilog="example: ltr export --model runs/setrank_imsab/model --data data/mq2008/S5.txt.xz",
    )
    p.add_argument(
        "--model", required=True, help="artifact dir, runs:/<id>/model or models:/<name>@<alias>"
    )
    p.add_argument("--data", type=Path, nargs="+", help="LETOR or Parquet file(s) to check on")
    p.add_argument(
        "--output",
        type=Path,
        help="folder for the exported artifact (default: the artifact folder itself; for a "
        "registry version or run, its folder in the model cache, where ltr score and ltr serve "
        "find the graph; required for other MLflow URIs, whose artifact is a temporary download)",
    )
    p.add_argument("--atol", type=float, default=1e-5, help="largest score difference allowed")
    p.add_argument("--max-lists", type=int, default=64, help="lists to check (default 64)")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="for a model with a context vector: the Parquet column(s) holding each query's "
        "vector (default: the columns it was trained with; LETOR data gets random vectors)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from ltr.artifact import ONNX, is_mlflow_uri, load_model
    from ltr.errors import ConfigError
    from ltr.export.onnx import REFUSED, cached_folder, export_checked, parity_lists, recorded_data

    loaded = load_model(args.model)
    cached = cached_folder(loaded)
    if args.output is None and is_mlflow_uri(args.model) and cached is None:
        raise ConfigError(f"{args.model} is a temporary download; pass --output DIR for the export")
    files = list(args.data or recorded_data(loaded))
    if not files:
        raise ConfigError(
            "the artifact records no data file that exists here; pass --data FILE with real "
            "lists to check the export on"
        )
    out = Path(args.output) if args.output is not None else loaded.path
    if out.resolve() != loaded.path.resolve():
        shutil.copytree(loaded.path, out, dirs_exist_ok=True)
        (out / ONNX).unlink(missing_ok=True)  # never keep a graph that was not checked here
    batches, data = parity_lists(
        loaded, files, args.max_lists, context_columns=args.context_columns
    )
    report = export_checked(loaded, out, batches, atol=args.atol, data=data)
    where = ""
    if cached is not None and out.resolve() == cached.resolve():
        (out / REFUSED).unlink(missing_ok=True)
        version = f"version {loaded.manifest.version} of {loaded.manifest.name}"
        if not loaded.manifest.name:  # a run's model
            version = args.model
        where = (
            f" (the model cache's copy of {version}: ltr score and ltr serve on this machine "
            "run it on ONNX Runtime)"
        )
    print(
        f"wrote {out / ONNX}{where}: ONNX Runtime matches PyTorch on {report.lists} lists "
        f"({report.candidates:,} candidates) of {data}; largest difference "
        f"{report.max_abs_diff:.2g} (allowed {report.atol:g})"
    )
    return 0
