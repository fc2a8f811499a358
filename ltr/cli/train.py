"""``ltr train``: train a ranking model from a YAML config with dotted overrides."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a ranking model (Lightning), tracked in MLflow",
        description="Train a ranking model. Any config entry can be overridden with a dotted "
        "option, e.g. --model.num_blocks 4 --trainer.max_epochs 50 --loss lambdaloss. "
        "Runs are tracked in MLflow (./mlflow.db unless MLFLOW_TRACKING_URI is set).",
        epilog="example: ltr train --config configs/setrank_imsab.yaml --trainer.max_epochs 20",
    )
    p.add_argument("--config", type=Path, help="YAML config (see configs/)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run in the same output_dir from its last complete epoch",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or model summary")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import yaml

    from ltr.cli.evaluate import format_table
    from ltr.config import parse_overrides, to_dict
    from ltr.train.config import load_train_config

    config = load_train_config(args.config, parse_overrides(args.overrides))
    if args.print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False))
        return 0
    from ltr.train.run import train

    result = train(config, verbose=not args.quiet, resume=args.resume)
    if result.seconds == 0.0:  # a non-zero rank of a distributed run
        return 0
    print(f"\ntrained in {result.seconds:.0f} s; best epoch {result.best_epoch} of {result.epochs}")
    if result.test_metrics:
        print("\ntest set (lists with no relevant item: counted as 1 / as 0 / dropped)")
        print(format_table(result.test_metrics))
    print(f"\nmodel artifact:   {result.artifact_dir}")
    if result.run_id:
        print(f"MLflow run:       {result.run_uri}")
    if result.alias_uri:
        print(f"registered model: {result.alias_uri} (version {result.registered_version})")
    return 0
