"""Batch scoring on PySpark: the same per-list scorer as the local engine, for data that
outgrows one machine (``ltr score --engine spark``).

Plan: read Parquet -> tag each row with ``monotonically_increasing_id()`` (its input order) ->
``repartition(qid)`` so all rows of a query meet in one partition -> ``sortWithinPartitions(qid,
row)`` -> ``mapInPandas``, which cuts the sorted stream into whole queries (a query that straddles
two Arrow batches is carried over to the next) and scores them with
:func:`pipelines.lists.score_flat` in batches of lists -- the equivalent of
``groupBy(qid).applyInPandas`` without one Python call per query. Because rows are grouped by
query id, the input's queries need not be contiguous.

The model artifact (resolved on the driver, so MLflow URIs work without MLflow access on the
executors) is shipped to executors as a broadcast of its files' bytes; each Python worker writes
it to a temporary directory once and loads it with :func:`ltr.predictor.load_predictor`.

Output: the input columns plus ``score`` (float) and ``rank`` (int, 1-based by descending score;
equal scores are ranked by ``monotonically_increasing_id()``, which follows the input order within
each file split Spark reads). A fixed-size ``features`` list column reads back from Spark as
``array<float>``. Rows come out in Spark's partition order, not the input order. Spark's own
output committer makes the write atomic (``_SUCCESS`` last); a failed job is re-run, not resumed.

Models that take initial ranks or a context vector read them from columns, as the local engine
does (:mod:`ltr.data.list_inputs`); the columns' presence and types are checked on the driver,
their values (per query) on the executors, where a bad value fails the job before anything is
committed. Ranks taken from the input order (``--initial-rank-from-order``) are refused: Spark
does not keep the order of a query's rows across file splits.

On a cluster, run this module with ``spark-submit`` (see ``docs/PIPELINES.md``)::

    spark-submit --master yarn pipelines/spark.py --model models:/ranker@prod \\
        --input s3a://bucket/candidates/ --output s3a://bucket/scored/
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltr.data.list_inputs import ListInputs
from pipelines.jobdir import removed_if_left_empty

ROW = "_ltr_row"
RANK_FROM_ORDER_REFUSED = (
    "--initial-rank-from-order needs the local engine: Spark does not keep the input order of a "
    "query's rows across file splits; write the ranks into a column and name it with "
    "--initial-rank-column"
)
_PREDICTORS: dict[str, Any] = {}  # per Python worker: artifact digest -> predictor


@dataclass(frozen=True)
class SparkOptions:
    """What the executors need besides the model."""

    backend: str = "torch"
    batch_size: int = 128
    qid_column: str = "qid"
    feature_columns: tuple[str, ...] | None = None
    num_features: int = 0
    threads_per_task: int = 1
    """Torch threads per Python worker (one worker per task slot)."""
    list_inputs: ListInputs = field(default_factory=ListInputs)
    """Where the model's initial ranks and context come from (nothing for most models)."""


@dataclass
class SparkScoreResult:
    output: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def spark_session(master: str = "local[2]", conf: dict[str, str] | None = None):
    """A SparkSession for scoring: Arrow on, UI off, workers on this Python."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # PySpark 4.0-4.1 warn on pandas >= 3; string columns are converted in _score_frame.
    warnings.filterwarnings("ignore", message=".*does not yet fully support pandas >= 3")
    builder = (
        SparkSession.builder.master(master)
        .appName("ltr-score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def artifact_payload(model: str | Path) -> dict[str, bytes]:
    """The files of a model artifact (dir or MLflow URI), as bytes, for a broadcast."""
    from ltr.artifact import resolve_artifact_dir

    path, _ = resolve_artifact_dir(str(model))
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def _predictor(payload: dict[str, bytes], options: SparkOptions):
    """Load (once per worker process) the predictor for a broadcast artifact."""
    digest = hashlib.sha256()
    for name in sorted(payload):
        digest.update(name.encode() + b"\0" + payload[name])
    key = f"{digest.hexdigest()}:{options.backend}"
    if key not in _PREDICTORS:
        import torch

        from ltr.predictor import load_predictor

        torch.set_num_threads(options.threads_per_task)
        directory = Path(tempfile.mkdtemp(prefix="ltr-model-"))
        for name, data in payload.items():
            (directory / name).write_bytes(data)
        _PREDICTORS[key] = load_predictor(str(directory), options.backend)
    return _PREDICTORS[key]


def _score_frame(predictor, frame, options: SparkOptions):
    """Score a pandas frame of whole queries sorted by (qid, row); add score and rank."""
    import pandas as pd

    from ltr.data.list_inputs import extract
    from pipelines.lists import rank_in_lists, score_flat

    qids = frame[options.qid_column].to_numpy()
    change = np.ones(len(qids), dtype=bool)
    change[1:] = qids[1:] != qids[:-1]
    offsets = np.append(np.flatnonzero(change), len(qids)).astype(np.int64)
    if options.feature_columns:
        features = frame[list(options.feature_columns)].to_numpy(dtype=np.float32)
    else:
        lists = frame["features"].to_numpy()
        lengths = np.fromiter((len(v) for v in lists), np.int64, len(lists))
        if (lengths != options.num_features).any():
            bad = int(np.flatnonzero(lengths != options.num_features)[0])
            from ltr.errors import DataFormatError

            raise DataFormatError(
                f"a row of query {qids[bad]!r} has {lengths[bad]} features but the model "
                f"expects {options.num_features}"
            )
        features = np.stack(lists).astype(np.float32, copy=False)  # [n, F]
    ranks = context = None
    if options.list_inputs.needed:
        import pyarrow as pa

        columns = frame[options.list_inputs.columns]
        table = pa.Table.from_pandas(columns, preserve_index=False)
        ranks, context = extract(
            options.list_inputs, table, offsets, lambda q: _plain(qids[offsets[q]])
        )
    scores = score_flat(
        predictor,
        features,
        offsets,
        initial_rank=ranks,
        context=context,
        batch_size=options.batch_size,
    )
    out = frame.drop(columns=[ROW])
    for name in out.columns:  # pandas >= 3 strings are Arrow-backed; PySpark 4 wants objects
        if isinstance(out[name].dtype, pd.StringDtype):
            out[name] = out[name].astype(object)
    out["score"] = scores
    out["rank"] = rank_in_lists(scores, offsets)
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for messages: 'q1', not np.str_('q1'))."""
    return value.item() if isinstance(value, np.generic) else value


def score_partition(batches: Iterator, payload: dict[str, bytes], options: SparkOptions):
    """``mapInPandas`` body: pandas batches of a partition sorted by (qid, row) -> scored frames.

    The last query of a batch may continue in the next one, so it is carried over.
    """
    import pandas as pd

    predictor = _predictor(payload, options)
    carry = None
    for frame in batches:
        if carry is not None:
            frame = pd.concat([carry, frame], ignore_index=True)
            carry = None
        if len(frame) == 0:
            continue
        qids = frame[options.qid_column].to_numpy()
        change = np.flatnonzero(qids[1:] != qids[:-1])
        last = int(change[-1]) + 1 if change.size else 0
        carry = frame.iloc[last:].reset_index(drop=True)
        if last:
            yield _score_frame(predictor, frame.iloc[:last], options)
    if carry is not None and len(carry):
        yield _score_frame(predictor, carry, options)


def score_dataframe(
    df,
    model: str | Path,
    *,
    backend: str = "torch",
    batch_size: int = 128,
    qid_column: str = "qid",
    feature_columns: list[str] | None = None,
    num_partitions: int | None = None,
    threads_per_task: int = 1,
    initial_rank_column: str | None = None,
    context_columns: list[str] | None = None,
    initial_rank_from_order: bool = False,
):
    """Lazily score a Spark DataFrame; returns a DataFrame with ``score`` and ``rank`` added.

    ``initial_rank_column`` and ``context_columns`` name the inputs of a model that takes
    initial ranks or a context vector (see :mod:`ltr.data.list_inputs`; defaults
    ``initial_rank``, and the columns the model was trained with, else ``context``).
    ``initial_rank_from_order`` is refused here.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from ltr.artifact import load_model
    from ltr.data.list_inputs import check_columns, resolve
    from ltr.errors import ConfigError, DataFormatError

    loaded = load_model(str(model))
    manifest = loaded.manifest
    inputs = resolve(
        manifest.model_config,
        initial_rank_column=initial_rank_column,
        rank_from_order=initial_rank_from_order,
        context_columns=context_columns,
        trained_context_columns=manifest.training.get("context_columns"),
    )
    if inputs.rank_from_order:
        raise ConfigError(RANK_FROM_ORDER_REFUSED)
    if inputs.columns:
        from pyspark.sql.pandas.types import to_arrow_schema

        present = [df.schema[c] for c in inputs.columns if c in df.columns]
        check_columns(inputs, to_arrow_schema(T.StructType(present)), "the input")
    if feature_columns == ["model"]:
        feature_columns = list(manifest.feature_names)
    for reserved in ("score", "rank", ROW):
        if reserved in df.columns:
            raise DataFormatError(f"the input already has a {reserved!r} column; drop or rename it")
    if qid_column not in df.columns:
        raise DataFormatError(f"the input has no query-id column {qid_column!r}")
    if feature_columns:
        if len(feature_columns) != manifest.num_features:
            raise ConfigError(
                f"{len(feature_columns)} feature columns given but the model expects "
                f"{manifest.num_features}"
            )
    elif "features" not in df.columns:
        raise DataFormatError("the input has no 'features' column; give --feature-columns")
    options = SparkOptions(
        backend=backend,
        batch_size=batch_size,
        qid_column=qid_column,
        feature_columns=tuple(feature_columns) if feature_columns else None,
        num_features=manifest.num_features,
        threads_per_task=threads_per_task,
        list_inputs=inputs,
    )
    payload = df.sparkSession.sparkContext.broadcast(artifact_payload(loaded.path))
    schema = T.StructType(
        [
            *df.schema.fields,
            T.StructField("score", T.FloatType()),
            T.StructField("rank", T.IntegerType()),
        ]
    )
    tagged = df.withColumn(ROW, F.monotonically_increasing_id())
    grouped = (
        tagged.repartition(num_partitions, qid_column)
        if num_partitions
        else tagged.repartition(qid_column)
    )
    ordered = grouped.sortWithinPartitions(qid_column, ROW)
    return ordered.mapInPandas(
        lambda batches: score_partition(batches, payload.value, options), schema
    )


def score_spark(
    spark,
    model: str | Path,
    input_path: str,
    output: str,
    *,
    overwrite: bool = False,
    count_rows: bool = True,
    **kwargs: Any,
) -> SparkScoreResult:
    """Read Parquet at ``input_path``, score it, write Parquet to ``output`` (see the module doc).

    ``count_rows`` counts the input first (an extra, footer-only Spark job; ``rows = -1``
    without it). ``kwargs`` go to :func:`score_dataframe`.
    """
    if "://" not in str(output) and Path(output).exists() and not overwrite:
        from ltr.errors import ConfigError

        raise ConfigError(f"the output {output} already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    df = spark.read.parquet(str(input_path))
    rows = df.count() if count_rows else -1
    scored = score_dataframe(df, model, **kwargs)
    local = "://" not in str(output)
    try:  # a failed job leaves no empty output folder behind (a re-run would be refused)
        with removed_if_left_empty(Path(output)) if local else contextlib.nullcontext():
            scored.write.mode("overwrite" if overwrite else "errorifexists").parquet(str(output))
    except Exception as exc:
        ours = task_error(exc)
        if ours is None:
            raise
        raise ours from None
    return SparkScoreResult(str(output), rows, time.perf_counter() - started)


_LTR_ERROR = re.compile(r"^ltr\.errors\.(\w+): (.+)$", re.MULTILINE)


def task_error(exc: BaseException):
    """The ltr error (a bad rank or context, say) that failed a Spark task, rebuilt on the
    driver from the Python traceback that PySpark's exception carries; ``None`` for any other
    failure."""
    from ltr import errors

    if not type(exc).__module__.startswith(("pyspark", "py4j")):
        return None
    found = _LTR_ERROR.findall(str(exc))
    if not found:
        return None
    name, message = found[-1]
    kind = getattr(errors, name, None)
    simple = isinstance(kind, type) and issubclass(kind, errors.LtrError)
    if not simple or issubclass(kind, errors.ConfigFieldError):  # takes its message whole
        kind = errors.LtrError
    return kind(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``spark-submit pipelines/spark.py --model M --input IN --output OUT``."""
    parser = argparse.ArgumentParser(description="score Parquet with an ltr model on Spark")
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--qid-column", default="qid")
    parser.add_argument("--feature-columns", nargs="+")
    parser.add_argument("--partitions", type=int, help="shuffle partitions for the scoring stage")
    parser.add_argument("--threads-per-task", type=int, default=1)
    parser.add_argument("--initial-rank-column", help="initial ranks (default: initial_rank)")
    parser.add_argument(
        "--context-columns",
        nargs="+",
        help="context vector (default: the columns the model was trained with, else context)",
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("ltr-score").getOrCreate()  # master from spark-submit
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
        num_partitions=args.partitions,
        threads_per_task=args.threads_per_task,
        initial_rank_column=args.initial_rank_column,
        context_columns=args.context_columns,
    )
    print(f"scored {result.rows:,} rows in {result.seconds:.1f} s -> {result.output}")
    return 0


if __name__ == "__main__":  # spark-submit runs this file: pickle functions by module reference
    from pipelines.spark import main as _main

    raise SystemExit(_main())
