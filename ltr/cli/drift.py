"""``ltr drift``: compare data with the features a model was trained on (:mod:`ltr.drift`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

PERIODS = ("hour", "day", "week")
"""``--every``'s choices: those of :func:`ltr.drift.period_starts` (not imported here, so that
building the parser does not import numpy)."""

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
        "without one. --every day reports each day of timestamped Parquet data (a server's "
        "impression log) apart, to show a slow drift as a trend.",
        epilog="examples: ltr drift --model runs/demo/model_run/model --data impressions/ "
        "--fail-above 0.25; ltr drift --model runs/demo/model_run/model --data impressions/ "
        "--every day",
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
        "--every",
        choices=PERIODS,
        help="compare each hour, day or week (from Monday, UTC) of --time-column apart, oldest "
        "first; --fail-above and --fail-out-of-range then apply to every period judged",
    )
    p.add_argument(
        "--time-column",
        default="served_at",
        help="timestamp column that --every splits Parquet data by (default: served_at, the "
        "impression log's)",
    )
    p.add_argument(
        "--list-column",
        help="column naming each row's list, to count a period's lists (default: session, the "
        "impression log's, else qid)",
    )
    p.add_argument(
        "--min-lists",
        type=int,
        default=100,
        metavar="N",
        help="with --every, periods of fewer lists are listed but not compared: PSI over a few "
        "lists is noise (default: 100, as the server's drift.min_lists)",
    )
    p.add_argument(
        "--save-profile",
        action="store_true",
        help="profile DATA as the model's training data and write it into the artifact folder "
        "(artifacts older than profiles, or made by ltr lightgbm-model, xgboost-model or "
        "linear-model without --profile-data)",
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


BLOCK_ROWS = 65_536
"""Rows read from a Parquet file at a time: what ``ltr drift`` holds in memory, whatever the
size of the data (``--save-profile`` excepted, which needs every row for the deciles)."""


def feature_blocks(
    paths: list[Path],
    names: list[str],
    group_file: Path | None = None,
    columns: Sequence[str] = (),
    skipped: list[str] | None = None,
    block_rows: int | None = None,
) -> Iterator[tuple[object, dict[str, object]]]:
    """The rows of ``paths`` a block at a time: features ``[n, F]`` and the values of
    ``columns`` for each row (Parquet only; a timestamp column comes as ``datetime64``), at most
    ``block_rows`` (:data:`BLOCK_ROWS`) from Parquet, a whole file from LETOR. Notes on files
    skipped are appended to ``skipped``.

    Parquet files need either a ``features`` column of fixed-size lists whose schema names
    ``names`` (so an impression log qualifies), or one column per feature named as ``names``.
    A file of other features inside a folder is skipped (an impression log holds one schema per
    file, and changes schema when a model of other features is swapped in); given by name, it is
    an error. No rows at all is an error too."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ltr.data.dataset import load_dataset
    from ltr.data.parquet import META_FEATURE_NAMES, default_feature_names
    from ltr.errors import DataFormatError

    columns = list(dict.fromkeys(columns))  # each once
    skipped = [] if skipped is None else skipped
    block_rows = block_rows or BLOCK_ROWS
    rows = 0
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such data file or folder: {path}")
        if not path.is_dir() and path.suffix != ".parquet":  # LETOR/SVMlight
            if columns:
                raise DataFormatError(
                    f"{path} is a LETOR file, which has no {', '.join(columns)} column: give "
                    "Parquet files or folders (an impression log)"
                )
            data = load_dataset(path, group_file=group_file, num_features=len(names))
            if data.num_features != len(names):
                raise DataFormatError(
                    f"{path} has {data.num_features} features but the model reads {len(names)}"
                )
            rows += len(data.features)
            yield data.features, {}
            continue
        for file in _parquet_files(path):
            schema = pq.read_schema(file)
            absent = [c for c in columns if schema.get_field_index(c) < 0]
            if absent:
                raise DataFormatError(f"{file} has no {', '.join(absent)} column")
            index = schema.get_field_index("features")
            kind = schema.field(index).type if index >= 0 else None
            wide = kind is None and all(schema.get_field_index(n) >= 0 for n in names)
            if not wide:
                if kind is None or not pa.types.is_fixed_size_list(kind):
                    raise DataFormatError(
                        f"{file} has no 'features' column of fixed-size float lists (the ltr "
                        "schema; convert LETOR files with `ltr convert`) nor a column for each "
                        f"of the model's {len(names)} features"
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
            wanted = [*names, *columns] if wide else ["features", *columns]
            for batch in pq.ParquetFile(file).iter_batches(batch_size=block_rows, columns=wanted):
                if wide:  # one column per feature, named as the model's (`--feature-columns`)
                    features = np.column_stack(
                        [batch.column(n).to_numpy(zero_copy_only=False) for n in names]
                    ).astype(np.float32)
                else:
                    values = batch.column("features").flatten().to_numpy(zero_copy_only=False)
                    features = values.astype(np.float32, copy=False).reshape(-1, len(names))
                rows += len(features)
                yield features, {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}
    if rows == 0:
        raise DataFormatError(
            "no rows of the model's features in "
            + ", ".join(map(str, paths))
            + (f" ({len(skipped)} file(s) of other features skipped)" if skipped else "")
        )


def read_feature_rows(
    paths: list[Path], names: list[str], group_file: Path | None = None
) -> tuple[object, list[str]]:
    """Every row's features ``[N, F]`` from ``paths`` at once (:func:`feature_blocks`), and
    notes on files skipped."""
    import numpy as np

    skipped: list[str] = []
    blocks = [rows for rows, _ in feature_blocks(paths, names, group_file, skipped=skipped)]
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


def _feature_json(d) -> dict:
    return {
        "name": d.name,
        "psi": d.psi,
        "level": d.level,
        "out_of_range": d.out_of_range,
        "missing": d.missing,
        "mean_shift": None if math.isnan(d.mean_shift) else d.mean_shift,
    }


def _list_column(paths: list[Path]) -> str:
    """``session`` (an impression log's list id) when the first Parquet file has it, else
    ``qid``."""
    import pyarrow.parquet as pq

    for path in paths:
        if path.is_dir() or path.suffix == ".parquet":
            names = pq.read_schema(_parquet_files(path)[0]).names
            return "session" if "session" in names else "qid"
    return "qid"


def _period_label(start, every: str) -> str:
    text = str(start)  # ISO 8601, seconds
    return text[:13] + ":00" if every == "hour" else text[:10]


def _fails(report, args: argparse.Namespace, where: str = "") -> list[str]:
    """Why ``report`` (one comparison, largest PSI first) passes the --fail-* bounds."""
    why = []
    if args.fail_above is not None and report[0].psi > args.fail_above:
        worst = report[0]
        why.append(
            f"drift{where}: {worst.name}'s PSI {worst.psi:.4f} is above --fail-above "
            f"{args.fail_above}"
        )
    if args.fail_out_of_range is not None:
        outside = max(report, key=lambda d: d.out_of_range)
        if outside.out_of_range > args.fail_out_of_range:
            why.append(
                f"drift{where}: {outside.out_of_range:.2%} of {outside.name}'s values are "
                f"outside its training range, more than --fail-out-of-range "
                f"{args.fail_out_of_range}"
            )
    return why


def _run_periods(args: argparse.Namespace, profile, names: list[str]) -> int:
    import numpy as np

    from ltr.drift import MAJOR, MODERATE, PeriodCounts
    from ltr.errors import ConfigError, DataFormatError

    if args.min_lists < 1:
        raise ConfigError(f"--min-lists must be at least 1, got {args.min_lists}")
    data = list(args.data)
    lists_column = args.list_column or _list_column(data)
    counts = PeriodCounts(profile, args.every)
    skipped: list[str] = []
    rows = undated = 0
    blocks = feature_blocks(
        data, names, args.group_file, columns=[args.time_column, lists_column], skipped=skipped
    )
    for block, extras in blocks:
        times = extras[args.time_column]
        if not np.issubdtype(times.dtype, np.datetime64):
            raise DataFormatError(
                f"--time-column {args.time_column} holds {times.dtype} values, not timestamps"
            )
        dated = ~np.isnat(times)
        rows += int(dated.sum())
        undated += int((~dated).sum())
        counts.add(block[dated], times[dated], extras[lists_column][dated])
    for note in skipped:
        print(f"skipped: {note}")
    if undated:
        print(f"left out: {undated:,} row(s) with no {args.time_column}")
        if not rows:
            raise DataFormatError(f"no row has a {args.time_column}")
    periods = counts.report(min_lists=args.min_lists)
    reports = [sorted(p.features, key=lambda d: -d.psi) for p in periods]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "every": args.every,
                    "training_rows": profile.rows,
                    "periods": [
                        {
                            "start": str(p.start) + "Z",
                            "rows": p.rows,
                            "lists": p.lists,
                            "judged": p.judged,
                            "features": [
                                _feature_json(d) for d in (r if args.top is None else r[: args.top])
                            ],
                        }
                        for p, r in zip(periods, reports, strict=True)
                    ],
                },
                indent=1,
            )
        )
    else:
        judged = sum(p.judged for p in periods)
        print(
            f"{rows:,} rows in {len(periods)} {args.every}(s) (UTC) against the "
            f"{profile.rows:,} training rows of {args.model}; {judged} with at least "
            f"{args.min_lists} lists compared"
        )
        head = (
            f"{args.every:<16} {'rows':>10} {'lists':>8} {'major':>6} {'moderate':>9}  "
            f"{'largest PSI':<24} most out of range"
        )
        lines = [head, "-" * len(head)]
        for p, r in zip(periods, reports, strict=True):
            label = _period_label(p.start, args.every)
            if not p.judged:
                lines.append(
                    f"{label:<16} {p.rows:>10,} {p.lists:>8,} {'-':>6} {'-':>9}  "
                    f"too few lists to compare"
                )
                continue
            major = sum(d.psi > MAJOR for d in r)
            moderate = sum(MODERATE < d.psi <= MAJOR for d in r)
            outside = max(r, key=lambda d: d.out_of_range)
            lines.append(
                f"{label:<16} {p.rows:>10,} {p.lists:>8,} {major:>6} {moderate:>9}  "
                f"{f'{r[0].name} {r[0].psi:.4f}':<24} "
                + (f"{outside.name} {outside.out_of_range:.2%}" if outside.out_of_range else "none")
            )
        print("\n".join(lines))
    failures = [
        why
        for p, r in zip(periods, reports, strict=True)
        if p.judged
        for why in _fails(
            r, args, f" in the {args.every} from {_period_label(p.start, args.every)}"
        )
    ]
    for why in failures:
        print(why, file=sys.stderr)
    return DRIFT_FOUND if failures else 0


def run(args: argparse.Namespace) -> int:
    from ltr.artifact import ArtifactError, is_mlflow_uri, load_model
    from ltr.drift import MAJOR, MODERATE, DriftCounts, FeatureProfile, profile_features
    from ltr.errors import ConfigError

    if args.save_profile and is_mlflow_uri(args.model):
        raise ConfigError(
            "--save-profile writes into an artifact folder, not an MLflow model; save it into "
            "the local folder, then log or register that"
        )
    if args.save_profile and args.every:
        raise ConfigError("--save-profile profiles all of DATA at once; leave out --every")
    loaded = load_model(args.model)
    names = list(loaded.manifest.feature_names)
    profile = None
    if not args.save_profile:
        profile = FeatureProfile.load(loaded.path, names)
        if profile is None:
            raise ArtifactError(
                f"{args.model} carries no feature profile (made by ltr lightgbm-model, "
                "xgboost-model or linear-model without --profile-data, or trained before "
                "profiles existed); write one from its training data: ltr drift --model DIR "
                "--data TRAIN... --save-profile"
            )
    if args.every:
        return _run_periods(args, profile, names)
    if args.save_profile:
        rows, skipped = read_feature_rows(list(args.data), names, args.group_file)
        for note in skipped:
            print(f"skipped: {note}")
        profile = profile_features(rows, names, source=[str(p) for p in args.data])
        where = profile.save(loaded.path)
        print(f"wrote the feature profile of {len(rows):,} rows to {where}")
        return 0
    counted = DriftCounts(profile)
    skipped = []
    for block, _ in feature_blocks(list(args.data), names, args.group_file, skipped=skipped):
        counted.add(block)
    for note in skipped:
        print(f"skipped: {note}")
    report = sorted(counted.report(), key=lambda d: -d.psi)
    counts = {name: sum(d.level == name for d in report) for name in ("major", "moderate")}
    if args.format == "json":
        print(
            json.dumps(
                {
                    "rows": counted.rows,
                    "training_rows": profile.rows,
                    "features": [
                        _feature_json(d)
                        for d in (report if args.top is None else report[: args.top])
                    ],
                },
                indent=1,
            )
        )
    else:
        print(
            f"{counted.rows:,} rows against the {profile.rows:,} training rows of {args.model}: "
            f"{counts['major']} feature(s) with a major shift (PSI > {MAJOR}), "
            f"{counts['moderate']} moderate (> {MODERATE})"
        )
        print(format_table(report, args.top))
    failures = _fails(report, args)
    for why in failures:
        print(why, file=sys.stderr)
    return DRIFT_FOUND if failures else 0
