"""``ltr score``: batch-score Parquet or LETOR data into Parquet with ``score`` and ``rank``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="batch-score Parquet/LETOR data (streamed, resumable; local or Spark)",
        description="Score every candidate list of INPUT with MODEL (the same artifact and "
        "loader as the server) and write OUTPUT: a directory of Parquet partitions with the input "
        "columns plus `score` (float32) and `rank` (int32, 1 = best within the query; equal "
        "scores keep input order). The local engine streams row groups (flat memory), keeps "
        "lists whole across row groups, writes each partition atomically and, with --resume, "
        "completes a job that was killed. --engine spark runs the same scorer on PySpark. "
        "Models trained with initial ranks (use_initial_rank) read a 1-based rank per row "
        "(0 = unknown) from the column `initial_rank`; models with a context vector "
        "(context_dim C) read C numbers per query, the same on every row of the query, from "
        "the columns the model was trained with (default: the list column `context`). Bad "
        "ranks or contexts are reported with the query id and column before anything is "
        "written.",
        epilog="example: ltr score --model models:/ltr-mq2008-setrank@candidate "
        "--input candidates.parquet --output scored/",
    )
    p.add_argument("--model", required=True, help="artifact dir or MLflow model URI")
    p.add_argument("--input", required=True, help="Parquet file or directory, or a LETOR file")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="predictor backend; auto (default) = ONNX Runtime when the artifact has model.onnx "
        "(written by ltr export, or for a models:/ or runs:/ model exported once into its cache "
        "folder; the faster one in docs/BENCHMARKS.md), else PyTorch",
    )
    p.add_argument("--resume", action="store_true", help="complete an interrupted job")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--batch-size", type=int, default=128, help="lists per forward pass")
    p.add_argument(
        "--partition-rows",
        type=int,
        help="input rows per output partition, the unit of --resume (local engine; default "
        "1,000,000)",
    )
    p.add_argument("--qid-column", default="qid", help="query-id column (default: qid)")
    p.add_argument(
        "--feature-columns",
        nargs="+",
        metavar="COLUMN",
        help="one column per feature, in model order, instead of a `features` list column; "
        "`model` = the model's feature names",
    )
    p.add_argument(
        "--drop-features",
        action="store_true",
        help="leave the feature column(s) out of the output (local engine)",
    )
    p.add_argument("--group-file", help="LightGBM-style group sizes for LETOR input")
    p.add_argument(
        "--threads", type=int, help="torch (or ONNX Runtime) threads (default: torch's choice)"
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where the torch backend computes: cpu (default), cuda, cuda:N or auto (local engine)",
    )
    p.add_argument(
        "--compression",
        choices=["snappy", "zstd", "lz4", "gzip", "none"],
        help="Parquet codec of the output (local engine; default snappy)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    extra = p.add_argument_group("models with initial ranks or a context vector")
    extra.add_argument(
        "--initial-rank-column",
        metavar="COLUMN",
        help="integer column of each row's 1-based initial rank, 0 = unknown (default: "
        "initial_rank); an error names it if it is missing",
    )
    extra.add_argument(
        "--initial-rank-from-order",
        action="store_true",
        help="rank each query's rows 1..n in input order instead of reading a column "
        "(local engine)",
    )
    extra.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="the per-query context vector: one list column of C numbers, or C numeric columns, "
        "the same on every row of a query (default: the columns the model was trained "
        "with, else the list column context)",
    )
    spark = p.add_argument_group("spark engine")
    spark.add_argument("--spark-master", default="local[*]", help="e.g. local[4], yarn")
    spark.add_argument(
        "--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="Spark setting"
    )
    spark.add_argument("--spark-partitions", type=int, help="partitions of the scoring stage")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.engine == "spark":
        if args.device != "cpu":
            raise ConfigError("--device applies to the local engine; Spark executors use the CPU")
        return _run_spark(args)
    if args.spark_conf or args.spark_partitions:
        raise ConfigError("--spark-conf and --spark-partitions need --engine spark")
    from pipelines.scoring import DEFAULT_PARTITION_ROWS, ScoreOptions, score_to_parquet

    options = ScoreOptions(
        backend=args.backend,
        batch_size=args.batch_size,
        partition_rows=(
            DEFAULT_PARTITION_ROWS if args.partition_rows is None else args.partition_rows
        ),
        qid_column=args.qid_column,
        feature_columns=args.feature_columns,
        group_file=args.group_file,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        compression=args.compression or "snappy",
        drop_features=args.drop_features,
        threads=args.threads,
        device=args.device,
        initial_rank_column=args.initial_rank_column,
        initial_rank_from_order=args.initial_rank_from_order,
        context_columns=args.context_columns,
    )
    result = score_to_parquet(args.model, Path(args.input), Path(args.output), options)
    if not args.quiet:
        for note in result.notes:
            print(note)
        skipped = (
            f" ({result.skipped_partitions} already done)" if result.skipped_partitions else ""
        )
        print(
            f"scored {result.scored_rows:,} of {result.rows:,} rows into {result.partitions} "
            f"partitions{skipped} in {result.seconds:.1f} s "
            f"({result.rows_per_second:,.0f} rows/s) -> {result.output}"
        )
    return 0


def _run_spark(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError

    if args.resume:
        raise ConfigError(
            "--resume applies to the local engine; a failed Spark job is re-run (its output "
            "committer never leaves partial results under the final name)"
        )
    # Refused before the Spark session starts (which takes a while), as everything else here.
    local_only = [
        flag
        for flag, given in (
            ("--drop-features", args.drop_features),
            ("--compression", args.compression is not None),
            ("--partition-rows", args.partition_rows is not None),
        )
        if given
    ]
    if local_only:
        raise ConfigError(
            f"{' and '.join(local_only)} apply to the local engine only; leave "
            f"{'them' if len(local_only) > 1 else 'it'} out with --engine spark (Spark writes "
            "snappy Parquet with every input column; --spark-partitions sets its partitions)"
        )
    if args.initial_rank_from_order:
        from pipelines.spark import RANK_FROM_ORDER_REFUSED

        raise ConfigError(RANK_FROM_ORDER_REFUSED)
    if "://" not in args.output and Path(args.output).exists() and not args.overwrite:
        raise ConfigError(
            f"the output {args.output} already exists; pass --overwrite to replace it"
        )
    local = Path(args.input)
    if args.group_file or ("://" not in args.input and local.is_file()):
        from pipelines.source import is_parquet

        if args.group_file or not is_parquet(local):
            raise ConfigError(
                "the Spark engine reads Parquet only; convert LETOR files with `ltr convert` first"
            )
    conf = {}
    for item in args.spark_conf:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--spark-conf takes KEY=VALUE, got {item!r}")
        conf[key] = value
    import sys

    from pipelines.spark import score_spark, spark_session

    # Spark's stage bars only on a terminal: elsewhere they run into the lines after them.
    show = sys.stderr.isatty() and not args.quiet
    conf.setdefault("spark.ui.showConsoleProgress", "true" if show else "false")
    spark = spark_session(args.spark_master, conf)
    # A task that fails logs its traceback several times over (executor, task set, writer);
    # the error reaches Python anyway, and an input error is printed as one line below.
    spark.sparkContext.setLogLevel("FATAL")
    result = score_spark(
        spark,
        args.model,
        args.input,
        args.output,
        overwrite=args.overwrite,
        backend=args.backend,
        batch_size=args.batch_size,
        qid_column=args.qid_column,
        feature_columns=args.feature_columns,
        num_partitions=args.spark_partitions,
        threads_per_task=args.threads or 1,
        initial_rank_column=args.initial_rank_column,
        initial_rank_from_order=args.initial_rank_from_order,
        context_columns=args.context_columns,
    )
    if not args.quiet:
        print(
            f"scored {result.rows:,} rows on Spark ({args.spark_master}) in "
            f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) -> {result.output}"
        )
    return 0
