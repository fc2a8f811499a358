"""``ltr demo``: the main job end to end on the bundled MQ2008 data."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MQ2008 = REPO_ROOT / "data" / "mq2008"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the bundled MQ2008 data",
        description="Convert MQ2008 Fold1 (bundled in data/mq2008) to Parquet and print its "
        "statistics.",
    )
    p.add_argument("--data", type=Path, default=BUNDLED_MQ2008, help="folder with S1..S5")
    p.add_argument("--fold", type=int, default=1, help="LETOR fold 1..5")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.data.convert import convert_files
    from ltr.data.folds import letor_fold
    from ltr.data.stats import format_stats
    from ltr.data.svmlight import scan_num_features

    fold = letor_fold(args.data, args.fold)
    width = max(scan_num_features(p) for p in fold.train + fold.valid + fold.test)
    for split, paths in (("train", fold.train), ("valid", fold.valid), ("test", fold.test)):
        out = args.out / f"fold{fold.number}" / f"{split}.parquet"
        stats = convert_files(paths, out, num_features=width)
        names = "+".join(p.name.split(".")[0] for p in paths)
        print(f"MQ2008 fold {fold.number} {split} ({names}) -> {out}")
        print(format_stats(stats))
    return 0
