"""``ltr demo``: the main job end to end on the bundled MQ2008 data.

1. convert MQ2008 Fold1 (LETOR, bundled in ``data/mq2008``) to Parquet;
2. train the default SetRank configuration on it (Lightning, tracked in MLflow);
3. evaluate the best checkpoint on the test fold under all three empty-list conventions;
4. print where the run and the registered model are, and how to open the MLflow UI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MQ2008 = REPO_ROOT / "data" / "mq2008"
DEFAULT_CONFIG = REPO_ROOT / "configs" / "setrank_imsab.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train and evaluate SetRank on the bundled MQ2008 data, end to end",
        description="Convert MQ2008 Fold1 to Parquet, train SetRank on it (tracked in MLflow), "
        "evaluate on the test fold and print the metrics and the registered model URI. "
        "Dotted overrides work as for `ltr train`, e.g. --trainer.max_epochs 5.",
    )
    p.add_argument("--data", type=Path, default=BUNDLED_MQ2008, help="folder with S1..S5")
    p.add_argument("--fold", type=int, default=1, help="LETOR fold 1..5")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.cli.evaluate import format_table
    from ltr.config import parse_overrides
    from ltr.data.convert import convert_files
    from ltr.data.folds import letor_fold
    from ltr.data.svmlight import scan_num_features
    from ltr.tracking import resolve_tracking_uri
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    fold = letor_fold(args.data, args.fold)
    width = max(scan_num_features(p) for p in fold.train + fold.valid + fold.test)
    files: dict[str, str] = {}
    print(f"[1/3] MQ2008 fold {fold.number} -> Parquet")
    for split, paths in (("train", fold.train), ("valid", fold.valid), ("test", fold.test)):
        out = args.out / "data" / f"{split}.parquet"
        stats = convert_files(paths, out, num_features=width)
        names = "+".join(p.name.split(".")[0] for p in paths)
        print(
            f"      {split:<5} {names:<9} {stats['queries']:>4} queries {stats['rows']:>6,} rows"
            f" ({stats['queries_without_relevant']} queries with no relevant document) -> {out}"
        )
        files[split] = str(out)

    overrides = {
        "data.train": [files["train"]],
        "data.valid": [files["valid"]],
        "data.test": [files["test"]],
        "output_dir": str(args.out / "model_run"),
    }
    overrides.update(parse_overrides(args.overrides))
    config = load_train_config(args.config, overrides)
    print(f"\n[2/3] training {config.model['name']} ({args.config.name}, loss {config.loss})")
    result = train(config, verbose=not args.quiet)
    print(
        f"      {result.epochs} epochs in {result.seconds:.0f} s; best epoch {result.best_epoch} "
        f"(validation NDCG@10, lists with no relevant item counted as 1)"
    )

    print(f"\n[3/3] test fold ({', '.join(p.name for p in fold.test)}), best checkpoint")
    print("      columns: lists with no relevant item counted as 1 / counted as 0 / dropped")
    print(format_table(result.test_metrics))
    print(f"\nmodel artifact      {result.artifact_dir}")
    if result.run_id:
        print(f"MLflow run          {result.run_uri}")
        print(f"registered model    {result.alias_uri} (version {result.registered_version})")
        uri = resolve_tracking_uri(config.tracking.tracking_uri)
        print(f"tracking store      {uri}")
        bin_dir = _bin_dir()
        if uri.startswith("sqlite:"):
            print(f"open the MLflow UI  {bin_dir}mlflow ui --backend-store-uri {uri}")
            print("                    then browse http://127.0.0.1:5000")
        print(
            f"evaluate it again   {bin_dir}ltr evaluate --model {result.alias_uri} "
            f"--data {files['test']}"
        )
        print(f"describe it         {bin_dir}ltr info {result.alias_uri}")
    return 0


def _bin_dir() -> str:
    """Prefix for commands of this environment (``.venv/bin/`` when not on PATH)."""
    import os
    import shutil
    import sys

    here = Path(sys.executable).parent
    if shutil.which("ltr") == str(here / "ltr"):
        return ""
    try:
        return f"{here.relative_to(Path.cwd())}{os.sep}"
    except ValueError:
        return f"{here}{os.sep}"
