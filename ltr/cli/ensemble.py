"""``ltr ensemble``: combine trained models (seeds of one config, say) into one artifact."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine trained models into one artifact that scores with their mean",
        description="Combine models that read the same features (for instance one config "
        "trained with several seeds) into one artifact whose score is the mean of theirs, each "
        "standardised within the list first (--combine zscore) or as it is (--combine mean). "
        "The artifact holds every member's weights and normaliser: export, serve, score and "
        "evaluate it like any model. With --data, every member and the ensemble are evaluated "
        "on those lists. The ensemble is logged to MLflow as a run (and registered with "
        "--register) unless --no-mlflow.",
        epilog="example: for s in 1 2 3 4 5; do ltr train --config configs/setrank_imsab.yaml "
        "--trainer.seed $s --output_dir runs/seed$s --tracking.registered_model null; done; "
        "ltr ensemble --model runs/seed{1,2,3,4,5}/model --output runs/ensemble --data "
        "data/mq2008/S4.txt.xz --register ltr-mq2008-ensemble --alias candidate",
    )
    p.add_argument(
        "--model",
        nargs="+",
        action="extend",
        required=True,
        help="two or more models: artifact dirs, runs:/<id>/model or models:/<name>@<alias>",
    )
    p.add_argument("--output", required=True, help="folder for the ensemble artifact")
    p.add_argument(
        "--combine",
        choices=["zscore", "mean"],
        default="zscore",
        help="standardise each model's scores within the list before the mean (default), or "
        "take the plain mean (for models whose scores share one scale)",
    )
    p.add_argument("--data", nargs="+", help="LETOR or Parquet file(s) to evaluate on")
    p.add_argument("--group-file", help="LightGBM-style group sizes for the data")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="models with a context vector (Parquet data): the column(s) holding each query's "
        "vector (default: the columns the models were trained with)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--experiment", default="ltr-ensembles", help="MLflow experiment")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--run-name", help="MLflow run name")
    p.add_argument("--register", metavar="NAME", help="register the ensemble under this name")
    p.add_argument("--alias", help="with --register: point this alias at the new version")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "map")


def _evaluate(args: argparse.Namespace, models, ensemble, manifest) -> dict[str, dict]:
    """``{name: headline metrics}`` for every member and the ensemble on ``args.data``."""
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.errors import DataFormatError
    from ltr.inference import score_lists
    from ltr.metrics import evaluate_all_conventions

    context = resolve(
        manifest.model_config,
        context_columns=args.context_columns,
        trained_context_columns=manifest.training.get("context_columns"),
    )
    width = manifest.num_features
    data = load_dataset(args.data, group_file=args.group_file, num_features=width, context=context)
    if data.num_features != width:
        raise DataFormatError(
            f"the data has {data.num_features} features but the models expect {width}"
        )
    max_grade = float(manifest.training.get("max_grade") or max(2.0, float(data.labels.max())))
    systems = [(f"model {i + 1}", m.model) for i, m in enumerate(models)]
    systems.append(("ensemble", ensemble))
    out = {}
    for name, module in systems:
        if not args.quiet:
            print(f"evaluating {name} on {len(data):,} lists", flush=True)
        scores = score_lists(module, data).astype("float64")
        metrics = evaluate_all_conventions(
            scores, data.labels, data.offsets, metrics=list(METRICS), max_grade=max_grade
        )
        out[name] = metrics["empty=1"]
    return out


def format_evaluation(results: dict[str, dict], sources: list[str]) -> str:
    """A table: one row per member (with its source), the members' mean, the ensemble."""
    import numpy as np

    lines = [f"{'':<14}" + "".join(f"{m:>9}" for m in METRICS) + "  source"]
    members = [name for name in results if name != "ensemble"]
    for name, source in zip(members, sources, strict=True):
        lines.append(
            f"{name:<14}" + "".join(f"{results[name][m]:>9.4f}" for m in METRICS) + f"  {source}"
        )
    mean = {m: float(np.mean([results[n][m] for n in members])) for m in METRICS}
    lines.append(f"{'members mean':<14}" + "".join(f"{mean[m]:>9.4f}" for m in METRICS))
    lines.append(f"{'ensemble':<14}" + "".join(f"{results['ensemble'][m]:>9.4f}" for m in METRICS))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import contextlib

    from ltr.artifact import load_model
    from ltr.ensemble import check_compatible, save_ensemble
    from ltr.errors import ConfigError

    if args.alias and not args.register:
        raise ConfigError("--alias needs --register NAME")
    if args.no_mlflow and args.register:
        raise ConfigError("--register needs MLflow; leave out --no-mlflow")
    if len(args.model) < 2:
        raise ConfigError(f"an ensemble needs at least 2 models, got {len(args.model)}")
    models = []
    for i, source in enumerate(args.model):
        if not args.quiet:
            print(f"loading model {i + 1} of {len(args.model)}: {source}", flush=True)
        models.append(load_model(source))
    check_compatible(models)  # before a run is started for nothing

    tracker = None
    with contextlib.ExitStack() as stack:
        if not args.no_mlflow:
            from ltr.tracking import start_run

            tracker = stack.enter_context(
                start_run(
                    experiment=args.experiment,
                    run_name=args.run_name,
                    tracking_uri=args.tracking_uri,
                    tags={"ltr.run_type": "ensemble"},
                )
            )
        facts = {} if tracker is None else {"run_id": tracker.run_id}
        if args.register:
            facts["registered_model"] = args.register
        ensemble, manifest, folder = save_ensemble(models, args.output, args.combine, facts)
        print(f"ensemble of {len(models)} models ({args.combine}) written to {folder}")
        results = None
        if args.data:
            results = _evaluate(args, models, ensemble, manifest)
            print(format_evaluation(results, [m.source for m in models]))
        if tracker is not None:
            from ltr.inference import frame_context_columns

            tracker.log_params({"combine": args.combine, "members": len(models)})
            tracker.log_dict({"members": manifest.training["members"]}, "members.json")
            for name, metrics in (results or {}).items():
                key = name.replace(" ", "_")
                tracker.log_metrics({f"data/{key}/{m}": v for m, v in metrics.items()})
            logged = tracker.log_model(
                folder,
                feature_names=manifest.feature_names,
                context_columns=frame_context_columns(manifest),
                context_dim=manifest.context_dim,
                registered_name=args.register,
                alias=args.alias,
            )
            print(f"MLflow run {logged.run_id}: {logged.run_uri}")
            if logged.registered_name:
                print(
                    f"registered {logged.registered_name} version {logged.registered_version}"
                    + (f": {logged.alias_uri}" if logged.alias_uri else "")
                )
    return 0
