"""``ltr cv``: k-fold cross-validation on LETOR partitions, as nested MLflow runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cv",
        help="5-fold cross-validation (nested MLflow runs, mean ± sd)",
        description="Train and test one model per LETOR fold of data.letor_root, a folder with "
        "partitions S1..S5 as LETOR text or Parquet (Fold k: train on three partitions, validate "
        "on the next, test on the last). Each fold is an MLflow "
        "run nested under one parent run, which gets every fold's test metrics and their mean "
        "and standard deviation under all three conventions for lists with no relevant item. "
        "Any config entry can be overridden with a dotted option, as for `ltr train`.",
        epilog="example: ltr cv --config configs/setrank_imsab.yaml --trainer.max_epochs 30",
    )
    p.add_argument("--config", type=Path, help="YAML training config (see configs/)")
    p.add_argument("--folds", type=int, nargs="+", help="which folds to run (default: 1 2 3 4 5)")
    p.add_argument(
        "--log-models", action="store_true", help="log each fold's model to its MLflow run"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or model summaries")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.config import parse_overrides
    from ltr.train.config import load_train_config
    from pipelines.cv import format_summary, run_cv

    config = load_train_config(args.config, parse_overrides(args.overrides))
    result = run_cv(config, folds=args.folds, log_models=args.log_models, verbose=not args.quiet)
    print()
    print(format_summary(result.summary, result.folds))
    if result.parent_run_id:
        print(f"MLflow parent run: {result.parent_run_id} ({len(result.child_run_ids)} fold runs)")
    return 0
