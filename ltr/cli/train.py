"""``ltr train``: train a ranking model from a YAML config with dotted overrides."""

from __future__ import annotations

import argparse
import sys

from ltr.cli._training import add_training_arguments, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a ranking model (Lightning), tracked in MLflow",
        description="Train a ranking model. Any config entry can be overridden with a dotted "
        "option, e.g. --model.num_blocks 4 --trainer.max_epochs 50 --loss lambdaloss. "
        "Runs are tracked in MLflow (./mlflow.db unless MLFLOW_TRACKING_URI is set).",
        epilog="example: ltr train --config configs/setrank_imsab.yaml --trainer.max_epochs 20",
    )
    add_training_arguments(p, "configs/")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.cli.evaluate import format_table
    from ltr.train.config import load_train_config

    config = load_config(args, load_train_config)
    if config is None:
        return 0
    from ltr.train.datamodule import unread_context
    from ltr.train.run import train

    size = unread_context(config.data, int(config.model.get("context_dim") or 0))
    if size:
        print(
            f"note: the training files carry a context vector of {size} values per query (the "
            f"column context), which this model does not read; train with --model.context_dim "
            f"{size} to use it",
            file=sys.stderr,
        )
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
