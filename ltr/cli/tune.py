"""``ltr tune``: hyperparameter search over a training config (Optuna trials, nested MLflow
runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="hyperparameter search: Optuna trials of `ltr train`, resumable, nested MLflow runs",
        description="Train the config once per trial with values drawn from a search space "
        "(a YAML file mapping dotted config keys to ranges or lists of values, e.g. "
        "configs/tune/setrank.yaml), score each trial by its best validation trainer.monitor, "
        "and write the best values applied to the config to STUDY_DIR/best.yaml. Optuna's TPE "
        "sampler proposes the values, a median pruner stops trials that fall behind. The study "
        "is kept in STUDY_DIR/study.db: the same command run again goes on where it stopped, "
        "and a trial whose process died is run again with the same values from its last "
        "complete epoch. Each trial is an MLflow run nested under the study's parent run. Any "
        "config entry can be overridden with a dotted option, as for `ltr train`.",
        epilog="example: ltr tune --config configs/setrank_imsab.yaml "
        "--space configs/tune/setrank.yaml --trials 30 --study-dir runs/tune",
    )
    p.add_argument("--config", type=Path, help="YAML training config to tune (see configs/)")
    p.add_argument(
        "--space", type=Path, required=True, help="YAML search space (see configs/tune/)"
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="finished trials (complete or pruned) the study should hold, counting earlier runs "
        "of the command (default: 20)",
    )
    p.add_argument(
        "--study-dir",
        type=Path,
        default=Path("runs/tune"),
        help="folder of the study: its database, one folder per trial, best.yaml "
        "(default: runs/tune)",
    )
    p.add_argument("--study", default="ltr-tune", help="study name (default: ltr-tune)")
    p.add_argument(
        "--storage",
        help="Optuna storage URL instead of STUDY_DIR/study.db, e.g. a PostgreSQL database "
        "that several `ltr tune` processes share",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train every trial with this many seeds (trainer.seed, +1, ...) and score it by "
        "the mean of their validation scores: slower, but one lucky seed no longer wins "
        "(default: 1)",
    )
    p.add_argument(
        "--folds",
        type=int,
        nargs="+",
        help="LETOR folds of data.letor_root to train every trial on (as `ltr cv`); it is "
        "scored by the mean of their validation scores (default: data.fold alone)",
    )
    p.add_argument("--no-prune", action="store_true", help="run every trial to its end")
    p.add_argument(
        "--prune-startup",
        type=int,
        default=5,
        metavar="TRIALS",
        help="finished trials before any is pruned (default: 5)",
    )
    p.add_argument(
        "--prune-warmup",
        type=int,
        default=5,
        metavar="EPOCHS",
        help="epochs every trial runs before it may be pruned (default: 5)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=30.0,
        help="seconds between a running trial's heartbeats; a trial silent for twice as long "
        "is taken for dead and run again (default: 30)",
    )
    p.add_argument(
        "--verbose", action="store_true", help="progress bars of each trial's training epochs"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar over the trials")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import optuna

    from ltr.config import parse_overrides
    from ltr.train.config import load_train_config
    from pipelines.tune import format_trials, load_space, run_tuning

    config = load_train_config(args.config, parse_overrides(args.overrides))
    space = load_space(args.space)
    # one line per trial comes from run_tuning (above the progress bar), not from Optuna's log
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = run_tuning(
        config,
        space,
        trials=args.trials,
        study_dir=args.study_dir,
        study_name=args.study,
        storage=args.storage,
        prune=not args.no_prune,
        prune_startup=args.prune_startup,
        prune_warmup=args.prune_warmup,
        heartbeat=args.heartbeat,
        seeds=args.seeds,
        folds=args.folds,
        verbose=args.verbose,
        progress=not args.quiet,
    )
    print()
    print(f"Study {result.study_name!r}: {len(result.trials)} trials ({result.ran} run now)")
    print()
    print(format_trials(result))
    if result.best is None:
        print("No trial completed yet: nothing to choose from.")
        return 1
    print(f"Best: trial {result.best.number}, validation {result.metric} {result.best.value:.4f}")
    print(f"Its config: {result.best_config} (ltr train --config {result.best_config})")
    print(f"Its model: {result.best_model}")
    if result.parent_run_id:
        print(f"MLflow parent run: {result.parent_run_id}")
    return 0
