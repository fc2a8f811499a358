"""Hyperparameter search on one LETOR fold: does `ltr tune` find a better SetRank than the shipped
default, on test queries no trial was scored on?

Runs `ltr tune`'s study (:func:`pipelines.tune.run_tuning`) with a training config and a search
space on fold ``--fold``'s training and validation partitions, then trains the default config and
the study's best config with ``--seeds`` seeds each, and LightGBM lambdarank (as in
``benchmarks.quality_cv``) with as many, and reports validation and test NDCG@10 side by side.
The test partition plays no part in the search.

    python -m benchmarks.tuning                      # MQ2008 fold 1, 20 trials, 3 seeds
    python -m benchmarks.tuning --trials 10 --trial-seeds 2   # each trial the mean of 2 seeds
    python -m benchmarks.tuning --trials 4 --seeds 1 --no-write

``--study-dir`` keeps the study: run the command again to go on with it (more ``--trials``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import (
    DEFAULT_DATA_ROOT,
    HEADLINE,
    REPO_ROOT,
    dataset_root,
    load_fold,
    ltr_overrides,
    run_lightgbm,
    run_ltr,
)

SECTION = "tuning"


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mq2008", choices=["mq2008", "ohsumed"])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--config", default="configs/setrank_imsab.yaml")
    parser.add_argument("--space", default="configs/tune/setrank.yaml")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the final comparison")
    parser.add_argument(
        "--trial-seeds", type=int, default=1, help="seeds per trial (ltr tune --seeds)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--study-dir", type=Path, help="keep the study here (default: temporary)")
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    import optuna
    import torch

    from ltr.train.config import load_train_config
    from pipelines.tune import format_trials, load_space, run_tuning

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # run_tuning prints a line per trial
    root = dataset_root(args.dataset, args.data_root)
    fold = load_fold(root, args.fold)
    with tempfile.TemporaryDirectory(prefix="ltr-bench-tune-") as tmp:
        study_dir = args.study_dir or Path(tmp)
        extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
        overrides = ltr_overrides(root, args.fold, str(study_dir / "unused"))
        config = load_train_config(REPO_ROOT / args.config, {**overrides, **extra})
        started = time.perf_counter()
        study = run_tuning(
            config,
            load_space(REPO_ROOT / args.space),
            trials=args.trials,
            study_dir=study_dir,
            study_name=f"bench-{args.dataset}-fold{args.fold}",
            seeds=args.trial_seeds,
            progress=True,
        )
        tuning_seconds = time.perf_counter() - started
        if study.best is None:
            print("no trial completed", file=sys.stderr)
            return 1
        rows, per_seed = [], {}
        candidates = [("default", args.config), ("tuned", str(study.best_config))]
        for name, path in candidates:
            runs = []
            for seed in range(args.seeds):
                print(f"training {name}, seed {seed}", file=sys.stderr)
                runs.append(run_ltr(path, root, fold, {**extra, "trainer.seed": seed}))
            per_seed[name] = [r["test"][HEADLINE]["ndcg@10"] for r in runs]
            rows.append(_row(f"SetRank, {name}", runs))
        boosted = [run_lightgbm(fold, args.threads, seed) for seed in range(args.seeds)]
        rows.append(_row("LightGBM lambdarank", boosted))

    states = [t.state for t in study.trials]
    scored = (
        f", the mean over {args.trial_seeds} seeds" if args.trial_seeds > 1 else " with one seed"
    )
    gains = [t - d for t, d in zip(per_seed["tuned"], per_seed["default"], strict=True)]
    body = "\n".join(
        [
            f"`ltr tune` on {args.dataset} fold {args.fold} (train on its three training "
            "partitions, every trial scored by its best epoch's validation NDCG@10"
            f"{scored}), base config `{args.config}`, search space `{args.space}`, "
            f"{len(study.trials)} trials "
            f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned by the median "
            f"rule after 5 trials and 5 epochs) in {tuning_seconds / 60:.1f} min with "
            f"{args.threads} torch thread(s). Then the default and the best config were trained "
            f"with seeds 0..{args.seeds - 1} and tested on the fold's test partition, which no "
            "trial saw; LightGBM lambdarank as in the 5-fold table above, same seeds.",
            "",
            "The ten best trials:",
            "",
            format_trials(study, limit=10),
            "",
            markdown_table(
                ["model", "valid NDCG@10", "test NDCG@10", "test per seed", "train s / seed"],
                rows,
            ),
            "",
            "Tuned − default, test NDCG@10 per seed: "
            + " ".join(f"{g:+.4f}" for g in gains)
            + f" (mean {statistics.mean(gains):+.4f}).",
            "",
            f"The best values (trial {study.best.number}; the rest of the config is "
            f"`{args.config}`): "
            + ", ".join(f"`{k}` = {_value(v)}" for k, v in study.best.params.items())
            + ".",
        ]
    )
    print(body)
    if not args.no_write:
        per_trial = "" if args.trial_seeds == 1 else f", {args.trial_seeds} seeds per trial"
        write_section(
            SECTION if args.trial_seeds == 1 else f"{SECTION}-{args.trial_seeds}seeds",
            f"Hyperparameter search ({args.dataset}, fold {args.fold}{per_trial})",
            command_line("tuning", argv),
            body,
        )
    return 0


def _value(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _row(name: str, runs: list[dict]) -> list[object]:
    valid = [r["valid"][HEADLINE]["ndcg@10"] for r in runs]
    test = [r["test"][HEADLINE]["ndcg@10"] for r in runs]
    seconds = statistics.mean(r["seconds"] for r in runs)
    return [
        name,
        mean_sd(valid),
        mean_sd(test),
        " ".join(f"{v:.4f}" for v in test),
        f"{seconds:.0f}",
    ]


if __name__ == "__main__":
    sys.exit(main())
