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
        "With --seeds K every fold is trained K times (seeds trainer.seed, +1, ...) and reported "
        "as the mean over seeds; "
        "--ensemble also combines each fold's seeds into one ensemble (as `ltr ensemble`) and "
        "reports what it gains over one training. A cross-validation that was killed goes on "
        "with --resume. Any config entry can be overridden with a dotted option, as for "
        "`ltr train`.",
        epilog="examples: ltr cv --config configs/setrank_imsab.yaml --trainer.max_epochs 30; "
        "ltr cv --config configs/setrank_imsab.yaml --seeds 5 --ensemble",
    )
    p.add_argument("--config", type=Path, help="YAML training config (see configs/)")
    p.add_argument("--folds", type=int, nargs="+", help="which folds to run (default: 1 2 3 4 5)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="train each fold K times, with seeds trainer.seed, +1, ... (default 1)",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="combine each fold's seeds into one ensemble and report its gain over one training",
    )
    p.add_argument(
        "--combine",
        choices=["zscore", "mean"],
        default="zscore",
        help="how --ensemble combines scores (as `ltr ensemble --combine`; default zscore)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with a killed cross-validation into the same output_dir: finished trainings "
        "are kept, the cut-off one goes on from its last complete epoch",
    )
    p.add_argument(
        "--log-models", action="store_true", help="log each training's model to its MLflow run"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or model summaries")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.config import parse_overrides
    from ltr.train.config import load_train_config
    from pipelines.cv import format_result, run_cv

    config = load_train_config(args.config, parse_overrides(args.overrides))
    result = run_cv(
        config,
        folds=args.folds,
        seeds=args.seeds,
        ensemble=args.ensemble,
        combine=args.combine,
        log_models=args.log_models,
        resume=args.resume,
        verbose=not args.quiet,
    )
    print()
    if result.reused:
        print(f"{result.reused} finished training(s) kept from the interrupted run")
    print(format_result(result))
    if result.parent_run_id:
        kind = "training" if result.seeds else "fold"
        print(
            f"MLflow parent run: {result.parent_run_id} ({len(result.child_run_ids)} {kind} runs)"
        )
    return 0
