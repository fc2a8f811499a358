"""``ltr drift``: compare data with the features a model was trained on (:mod:`ltr.drift`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DRIFT_FOUND = 1
"""Exit status when a feature passes ``--fail-above`` or ``--fail-out-of-range`` (errors exit
2)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="how far data's features are from the model's training data (PSI per feature)",
        description="Compare the features of DATA with the training profile the model carries "
        "(feature_profile.json, written by `ltr train`): per feature, the population stability "
        "index over the training deciles (below 0.1 stable, 0.1-0.25 moderate, above 0.25 "
        "major), the share of values outside the training range and the mean shift in training "
        "standard deviations; largest PSI first. DATA may be LETOR or ltr Parquet files, "
        "Parquet files with a column per feature named as the model's, or folders of Parquet "
        "files such as a server's impression log (files of other features are skipped). With "
        "--fail-above (PSI) or --fail-out-of-range (share) the exit status is 1 when a feature "
        "drifted more, for a pipeline to stop before scoring. --save-profile instead profiles "
        "DATA as the model's training data and writes it into the artifact, for models made "
        "without one.",
        epilog="example: ltr drift --model runs/demo/model_run/model --data impressions/ "
        "--fail-above 0.25",
    )
    p.add_argument(
        "--model", required=True, help="artifact dir, runs:/<id>/model or models:/<name>@<alias>"
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        nargs="+",
        help="LETOR or Parquet file(s), or folders of Parquet files",
    )
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes for LETOR data")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--top", type=int, metavar="N", help="print only the N largest shifts")
    p.add_argument(
        "--fail-above",
        type=float,
        metavar="PSI",
        help="exit with status 1 when a feature's PSI is above this (0.25: a major shift)",
    )
    p.add_argument(
        "--fail-out-of-range",
        type=float,
        metavar="SHARE",
        help="exit with status 1 when more than this share of a feature's values fall outside "
        "its training range (0.01: what a rescaled feature trips first)",
    )
    p.add_argument(
        "--save-profile",
        action="store_true",
        help="profile DATA as the model's training data and write it into the artifact folder "
        "(models from ltr lightgbm-model, xgboost-model, linear-model, or older artifacts)",
    )
    p.set_defaults(func=run)


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
        if not files:
            from ltr.errors import DataFormatError

            raise DataFormatError(f"{path} holds no .parquet files")
        return files
    return [path]


def read_feature_rows(
    paths: list[Path], names: list[str], group_file: Path | None = None
) -> tuple[object, list[str]]:
    """Every row's features ``[N, F]`` from ``paths``, and notes on files skipped.

    Parquet files need either a ``features`` column of fixed-size lists whose schema names
    ``names`` (so an impression log qualifies), or one column per feature named as ``names``.
    A file of other features inside a folder is skipped (an impression log holds one schema per
    file, and changes schema when a model of other features is swapped in); given by name, it is
    an error."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ltr.data.dataset import load_dataset
    from ltr.data.parquet import META_FEATURE_NAMES, default_feature_names
    from ltr.errors import DataFormatError

    blocks, skipped = [], []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such data file or folder: {path}")
        if not path.is_dir() and path.suffix != ".parquet":  # LETOR/SVMlight
            data = load_dataset(path, group_file=group_file, num_features=len(names))
            if data.num_features != len(names):
                raise DataFormatError(
                    f"{path} has {data.num_features} features but the model reads {len(names)}"
                )
            blocks.append(data.features)
            continue
        for file in _parquet_files(path):
            schema = pq.read_schema(file)
            index = schema.get_field_index("features")
            kind = schema.field(index).type if index >= 0 else None
            if kind is None and all(schema.get_field_index(n) >= 0 for n in names):
                # one column per feature, named as the model's (`ltr score --feature-columns`)
                table = pq.read_table(file, columns=names)
                blocks.append(
                    np.column_stack(
                        [table.column(n).to_numpy(zero_copy_only=False) for n in names]
                    ).astype(np.float32)
                )
                continue
            if kind is None or not pa.types.is_fixed_size_list(kind):
                raise DataFormatError(
                    f"{file} has no 'features' column of fixed-size float lists (the ltr "
                    "schema; convert LETOR files with `ltr convert`) nor a column for each of "
                    f"the model's {len(names)} features"
                )
            meta = schema.metadata or {}
            theirs = (
                json.loads(meta[META_FEATURE_NAMES])
                if META_FEATURE_NAMES in meta
                else default_feature_names(kind.list_size)
            )
            if theirs != names:
                why = f"{file} holds {len(theirs)} features other than the model's {len(names)}"
                if not path.is_dir():
                    raise DataFormatError(why)
                skipped.append(why)
                continue
            column = pq.read_table(file, columns=["features"]).column("features")
            values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            blocks.append(values.astype(np.float32, copy=False).reshape(-1, len(names)))
    if not blocks or sum(len(b) for b in blocks) == 0:
        raise DataFormatError(
            "no rows of the model's features in "
            + ", ".join(map(str, paths))
            + (f" ({len(skipped)} file(s) of other features skipped)" if skipped else "")
        )
    return np.concatenate(blocks), skipped


def _number(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}"


def format_table(report, top: int | None) -> str:
    shown = report if top is None else report[:top]
    head = f"{'feature':<24} {'PSI':>8} {'level':>9} {'out of range':>13} {'mean shift (sd)':>16}"
    lines = [head, "-" * len(head)]
    for d in shown:
        lines.append(
            f"{d.name:<24} {d.psi:>8.4f} {d.level:>9} {d.out_of_range:>13.2%} "
            f"{_number(d.mean_shift):>16}"
        )
    if len(shown) < len(report):
        lines.append(f"... {len(report) - len(shown)} more, each with a smaller PSI")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ltr.artifact import ArtifactError, is_mlflow_uri, load_model
    from ltr.drift import MAJOR, MODERATE, FeatureProfile, compare, profile_features
    from ltr.errors import ConfigError

    if args.save_profile and is_mlflow_uri(args.model):
        raise ConfigError(
            "--save-profile writes into an artifact folder, not an MLflow model; save it into "
            "the local folder, then log or register that"
        )
    loaded = load_model(args.model)
    names = list(loaded.manifest.feature_names)
    rows, skipped = read_feature_rows(list(args.data), names, args.group_file)
    for note in skipped:
        print(f"skipped: {note}")
    if args.save_profile:
        profile = profile_features(rows, names, source=[str(p) for p in args.data])
        where = profile.save(loaded.path)
        print(f"wrote the feature profile of {len(rows):,} rows to {where}")
        return 0
    profile = FeatureProfile.load(loaded.path, names)
    if profile is None:
        raise ArtifactError(
            f"{args.model} carries no feature profile (models made by ltr lightgbm-model, "
            "xgboost-model or linear-model, or trained before profiles existed); write one "
            f"from its training data: ltr drift --model DIR --data TRAIN... --save-profile"
        )
    report = sorted(compare(profile, rows), key=lambda d: -d.psi)
    counts = {name: sum(d.level == name for d in report) for name in ("major", "moderate")}
    if args.format == "json":
        print(
            json.dumps(
                {
                    "rows": len(rows),
                    "training_rows": profile.rows,
                    "features": [
                        {
                            "name": d.name,
                            "psi": d.psi,
                            "level": d.level,
                            "out_of_range": d.out_of_range,
                            "missing": d.missing,
                            "mean_shift": None if math.isnan(d.mean_shift) else d.mean_shift,
                        }
                        for d in (report if args.top is None else report[: args.top])
                    ],
                },
                indent=1,
            )
        )
    else:
        print(
            f"{len(rows):,} rows against the {profile.rows:,} training rows of {args.model}: "
            f"{counts['major']} feature(s) with a major shift (PSI > {MAJOR}), "
            f"{counts['moderate']} moderate (> {MODERATE})"
        )
        print(format_table(report, args.top))
    failed = False
    if args.fail_above is not None and report[0].psi > args.fail_above:
        worst = report[0]
        print(
            f"drift: {worst.name}'s PSI {worst.psi:.4f} is above --fail-above {args.fail_above}",
            file=sys.stderr,
        )
        failed = True
    if args.fail_out_of_range is not None:
        outside = max(report, key=lambda d: d.out_of_range)
        if outside.out_of_range > args.fail_out_of_range:
            print(
                f"drift: {outside.out_of_range:.2%} of {outside.name}'s values are outside its "
                f"training range, more than --fail-out-of-range {args.fail_out_of_range}",
                file=sys.stderr,
            )
            failed = True
    return DRIFT_FOUND if failed else 0
