"""``ltr importance``: permutation feature importance of a model on a data file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "importance",
        help="which features a model relies on: the metric's drop when each one is shuffled",
        description="Permutation feature importance: for each feature, shuffle its values "
        "(across all rows, or within each list with --shuffle lists), score every list again "
        "and report how much the metric drops, averaged over --repeats shuffles, most important "
        "first. A feature the model ignores scores exactly 0.",
    )
    p.add_argument(
        "--model", required=True, help="artifact dir, runs:/<id>/model or models:/<name>@<alias>"
    )
    p.add_argument("--data", type=Path, required=True, nargs="+", help="LETOR or Parquet file(s)")
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes for the data")
    p.add_argument("--metric", default="ndcg@10", help="metric whose drop is measured")
    p.add_argument(
        "--empty",
        choices=["one", "zero", "drop"],
        default="one",
        help="lists with no relevant item count as 1, as 0, or are left out (default: one)",
    )
    p.add_argument(
        "--ties",
        choices=["pessimistic", "position"],
        default="pessimistic",
        help="order of equal scores (default: lower labels first)",
    )
    p.add_argument("--repeats", type=int, default=5, help="shuffles per feature (default 5)")
    p.add_argument(
        "--shuffle",
        choices=["all", "lists"],
        default="all",
        help="shuffle a feature across all rows (default) or within each list",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles")
    p.add_argument(
        "--features", nargs="+", metavar="NAME", help="measure only these features (default all)"
    )
    p.add_argument(
        "--group",
        action="append",
        metavar="NAME=F1,F2,...",
        help="shuffle these features together and report them as one (repeatable); features "
        "that carry the same signal hide each other when shuffled one at a time. With --group "
        "and no --features only the groups are measured",
    )
    p.add_argument("--top", type=int, metavar="N", help="print only the N most important")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--output", type=Path, help="also write the full result here as JSON")
    p.add_argument(
        "--mlflow",
        action="store_true",
        help="also log the result to the model's training run in MLflow: "
        "importance/<metric>-<shuffle>.json and a bar chart of the 20 most important",
    )
    p.add_argument("--tracking-uri", help="with --mlflow: MLflow tracking URI")
    p.add_argument("--batch-size", type=int, default=128, help="lists per forward pass")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="models with a context vector: its columns (default: those it was trained with)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from ltr.cli.evaluate import load_model_and_data
    from ltr.data.dataset import ListDataset
    from ltr.errors import ConfigError
    from ltr.importance import permutation_importance
    from ltr.inference import score_lists

    if args.top is not None and args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    if args.tracking_uri and not args.mlflow:
        raise ConfigError("--tracking-uri is for --mlflow; add --mlflow or leave it out")
    loaded, data = load_model_and_data(args, what="these importances")
    names = list(loaded.manifest.feature_names)
    run_id = None
    if args.mlflow:  # before the work, so a run that cannot be found costs nothing
        from ltr.tracking import check_run

        run_id = loaded.manifest.training.get("run_id")
        if not run_id:
            raise ConfigError(
                "--mlflow: the model records no training run to log to; use --output instead"
            )
        check_run(run_id, args.tracking_uri)

    def indices(wanted: list[str]) -> list[int]:
        unknown = [f for f in wanted if f not in names]
        if unknown:
            raise ConfigError(
                f"the model has no feature(s) {', '.join(unknown)}; its features are "
                f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
            )
        return [names.index(f) for f in wanted]

    groups = {}
    for spec in args.group or []:
        name, sep, members = spec.partition("=")
        wanted = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name.strip() or not wanted:
            raise ConfigError(f"--group {spec!r}: write NAME=FEATURE,FEATURE,...")
        groups[name.strip()] = indices(wanted)
    columns = indices(args.features) if args.features else None

    def score(features):
        permuted = ListDataset(features, data.labels, data.offsets, data.qids, context=data.context)
        return score_lists(loaded.model, permuted, batch_size=args.batch_size)

    singles = len(columns) if columns is not None else 0 if groups else len(names)
    total = args.repeats * (singles + len(groups))
    with tqdm(total=total, desc="shuffles", unit="scoring", disable=args.quiet) as bar:
        result = permutation_importance(
            score,
            data.features,
            data.labels,
            data.offsets,
            feature_names=names,
            columns=columns,
            groups=groups,
            metric=args.metric,
            empty=args.empty,
            ties=args.ties,
            max_grade=loaded.manifest.training.get("max_grade"),
            repeats=args.repeats,
            shuffle=args.shuffle,
            seed=args.seed,
            progress=bar.update,
        )
    if args.output:
        args.output.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if run_id is not None:
        log_to_run(result, run_id, args.tracking_uri)
    shown = result.features[: args.top] if args.top else result.features
    if args.format == "json":
        full = result.to_dict()
        print(json.dumps({**full, "features": full["features"][: len(shown)]}))
        return 0
    print(
        f"{args.model} on {', '.join(str(p) for p in args.data)}: {data.num_rows:,} rows, "
        f"{len(data):,} queries; {result.metric} {result.baseline:.4f} (lists with no relevant "
        f"item: {args.empty})"
    )
    where = "across all rows" if args.shuffle == "all" else "within each list"
    print(
        f"drop of {result.metric} when a feature is shuffled {where}, mean ± sd of "
        f"{args.repeats}, seed {args.seed}:"
    )
    width = max(len("feature"), *(len(f.name) for f in shown))
    print(f"{'rank':>4}  {'feature':<{width}}  {'drop':>8}  {'± sd':>7}  {'share':>6}")
    for rank, f in enumerate(shown, 1):
        share = f.mean / result.baseline if result.baseline else float("nan")
        print(f"{rank:>4}  {f.name:<{width}}  {f.mean:>8.4f}  {f.std:>7.4f}  {share:>6.1%}")
    if len(shown) < len(result.features):
        print(f"({len(result.features) - len(shown)} more; --top to show them)")
    constant = [
        f.name
        for f in result.features
        if np.ptp(data.features[:, list(f.indices)], axis=0).max() == 0
    ]
    if constant:
        print(
            f"constant in this data, so 0 by construction: {', '.join(constant[:10])}"
            f"{' ...' if len(constant) > 10 else ''}"
        )
    return 0


def log_to_run(result, run_id: str, tracking_uri: str | None) -> None:
    """Add the result and its chart to MLflow run ``run_id`` under ``importance/``."""
    import tempfile

    from ltr.tracking import start_run
    from pipelines.plots import plot_importance, safe_name

    stem = f"importance/{safe_name(f'{result.metric}-{result.shuffle}')}"
    top = result.features[:20]
    with start_run(experiment="", run_id=run_id, tracking_uri=tracking_uri) as tracker:
        tracker.log_dict(result.to_dict(), f"{stem}.json")
        with tempfile.TemporaryDirectory() as tmp:
            chart = plot_importance(
                [f.name for f in top],
                [f.mean for f in top],
                [f.std for f in top],
                Path(tmp) / f"{Path(stem).name}.png",
                title=f"{result.metric} {result.baseline:.4f}: drop when shuffled "
                f"({result.shuffle}, {result.repeats} repeats)",
                xlabel=f"drop of {result.metric}",
            )
            tracker.log_artifact(chart, "importance")
    print(f"logged to MLflow run {run_id}: {stem}.json, {stem}.png", file=sys.stderr)
