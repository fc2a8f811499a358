"""``ltr convert``: LETOR/SVMlight files to Parquet in the ltr schema, streamed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert LETOR/SVMlight files to Parquet",
        description="Convert one or more LETOR/SVMlight files (plain, .xz, .gz) to one Parquet "
        "file with the ltr schema (qid, doc_id, label, features). Several inputs are "
        "concatenated in order. Rows of each query stay contiguous and within one row group.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="SVMlight/LETOR file(s)")
    p.add_argument("output", type=Path, metavar="OUTPUT.parquet")
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes (rows without qid)")
    p.add_argument("--num-features", type=int, help="feature count (default: largest index seen)")
    p.add_argument("--row-group-rows", type=int, default=65_536, help="target rows per row group")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.data.convert import convert_files
    from ltr.data.stats import format_stats
    from ltr.errors import ConfigError

    if args.output.suffix != ".parquet":
        raise ConfigError(f"the output must be a .parquet file, got {args.output}")
    if args.group_file is not None and len(args.inputs) > 1:
        raise ConfigError("--group-file applies to a single input file")
    started = time.perf_counter()
    stats = convert_files(
        args.inputs,
        args.output,
        num_features=args.num_features,
        group_file=args.group_file,
        row_group_rows=args.row_group_rows,
    )
    if not args.quiet:
        print(f"wrote {args.output} in {time.perf_counter() - started:.1f} s")
        print(format_stats(stats))
    return 0
