"""Streaming, resumable batch scoring of Parquet (or LETOR) data: the local engine of ``ltr score``.

Output: a directory of Parquet partitions ``part-00000.parquet, part-00001.parquet, ...`` holding
every input column plus ``score`` (float32, the model's output) and ``rank`` (int32, 1-based within
the query by descending score; equal scores keep input order). Rows keep the input order.

How it works:

* :func:`pipelines.source.plan_input` reads the query-id column once: it finds queries that
  straddle row groups and rejects inputs whose queries are not contiguous before writing anything.
* The input's row groups are cut into partitions of about ``partition_rows`` rows. Partition
  ``k`` owns the queries that *start* in its row groups, so every list is scored whole and every
  row lands in exactly one partition, whatever the row-group layout.
* Memory stays flat: a few pieces of about ``piece_rows`` rows (one read ahead, one being scored,
  up to two being written) are in memory at a time, whatever the input's size.
* Each partition is written to ``.part-KKKKK.parquet.tmp``, flushed to disk and renamed, so a
  final name always means a complete partition. ``_manifest.json`` (written first) records the
  input, the model and the partition plan; ``_SUCCESS`` is written last.
* ``resume=True`` skips the partitions already present, deletes temporary files a crash left,
  and refuses to continue if the input, the model or the options differ from the manifest.
  Without ``resume`` (or ``overwrite``) an existing output is an error.

LETOR/SVMlight input is first converted (streamed) to ``_input.parquet`` inside the output
directory, which is kept until the job completes, so a resumed job does not parse the text again.

Models that take initial ranks or a context vector read them from input columns
(:mod:`ltr.data.list_inputs`). Those columns are checked in one pass over the input, reading only
them and the query ids, before the output directory is touched (even with ``overwrite``): a bad
rank or context vector is reported with its query id and column, and nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ltr.data.list_inputs import ListInputs, check_columns, extract, resolve
from ltr.errors import ConfigError
from ltr.predictor import Predictor, load_predictor
from pipelines.jobdir import (
    MANIFEST,
    PART,
    STAGED_INPUT,
    SUCCESS,
    check_same_job,
    completed_partitions,
    fingerprint_files,
    model_digest,
    prepare_output,
    read_scored,
    removed_if_left_empty,
    write_json,
)
from pipelines.lists import DEFAULT_BATCH_SIZE, offsets_of
from pipelines.prefetch import prefetch
from pipelines.source import (
    InputPlan,
    input_files,
    is_parquet,
    owned_rows,
    plan_input,
    whole_lists,
)
from pipelines.tables import prepare, ramped_pieces, score_prepared, score_table

DEFAULT_PARTITION_ROWS = 1_000_000
PIECE_ROWS = 262_144
FIRST_PIECE_DIVISOR = 8
"""A partition's first piece is ``piece_rows / 8`` rows: scoring starts after a short read."""
JOB_FORMAT = 1


@dataclass
class ScoreOptions:
    """Options of a batch-scoring job (the ``ltr score`` flags)."""

    backend: str = "torch"
    """Predictor backend: ``torch``, ``onnx`` (needs ``ltr export``) or ``auto`` (``onnx`` when
    the artifact has ``model.onnx``; the CLI's default)."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Lists per forward pass."""
    partition_rows: int = DEFAULT_PARTITION_ROWS
    """Target rows per output partition (the unit of resumption)."""
    qid_column: str = "qid"
    feature_columns: list[str] | None = None
    """One column per feature, in model order; ``["model"]`` = the model's feature names;
    ``None`` = the ``features`` list column."""
    group_file: str | None = None
    """LightGBM-style group sizes for LETOR input without ``qid:``."""
    resume: bool = False
    overwrite: bool = False
    progress: bool | None = None
    """Show a progress bar: ``None`` = only when stderr is a terminal."""
    compression: str = "snappy"
    """Parquet codec of the output (snappy: fast, and readable everywhere)."""
    piece_rows: int = PIECE_ROWS
    """Rows scored at once (query-aligned). Lists are sorted by length within a piece, so larger
    pieces mean less padding (lists of 10-100 candidates: 9 % padded slots at 65,536 rows, 2 % at
    262,144); consecutive row groups are joined up to this size and bigger ones cut to it."""
    drop_features: bool = False
    """Leave the feature column(s) out of the output (much smaller and faster to write)."""
    io_threads: bool = True
    """Read ahead and write behind in two background threads (False: all in one thread)."""
    device: str = "cpu"
    """Torch backend: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (ONNX Runtime runs on the CPU;
    with ``backend="auto"`` a GPU device picks torch)."""
    threads: int | None = None
    """ONNX Runtime threads (default: torch's thread count, which is process-wide and set with
    torch.set_num_threads)."""
    initial_rank_column: str | None = None
    """Column of 1-based initial ranks (0 = unknown) for models with ``use_initial_rank``;
    ``None`` = ``initial_rank``. Only for such models."""
    initial_rank_from_order: bool = False
    """Models with ``use_initial_rank``: rank each query's rows ``1 .. n`` in input order instead
    of reading a column."""
    context_columns: list[str] | None = None
    """Models with ``context_dim`` C: one list column of C numbers, or C numeric columns, the
    same on every row of a query; ``None`` = the columns the model was trained with, else the
    list column ``context``."""

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other; pick one")
        if self.batch_size < 1 or self.partition_rows < 1:
            raise ConfigError("batch size and partition rows must be at least 1")


@dataclass
class ScoreResult:
    """What a scoring job did."""

    output: Path
    rows: int
    partitions: int
    skipped_partitions: int
    seconds: float
    scored_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.scored_rows / self.seconds if self.seconds > 0 else float("nan")


def plan_partitions(plan: InputPlan, partition_rows: int) -> list[tuple[int, int]]:
    """Consecutive block ranges ``[first, end)`` of about ``partition_rows`` input rows each."""
    ranges: list[tuple[int, int]] = []
    first, rows = 0, 0
    for index, block in enumerate(plan.blocks):
        rows += block.rows
        if rows >= partition_rows:
            ranges.append((first, index + 1))
            first, rows = index + 1, 0
    if first < len(plan.blocks) or not ranges:
        ranges.append((first, len(plan.blocks)))
    return ranges


def score_to_parquet(
    model: str | Path,
    input_path: str | Path,
    output: str | Path,
    options: ScoreOptions | None = None,
    *,
    predictor: Predictor | None = None,
) -> ScoreResult:
    """Score ``input_path`` with ``model`` into the partitioned Parquet directory ``output``.

    Args:
        model: artifact directory or MLflow URI (ignored when ``predictor`` is given).
        input_path: Parquet file, directory of Parquet files, or LETOR/SVMlight text file.
        output: output directory.
        options: see :class:`ScoreOptions`.
        predictor: an already loaded predictor (benchmarks, tests).

    A job that fails before writing anything removes the ``output`` folder it made.
    """
    output = Path(output)
    with removed_if_left_empty(output):
        return _score_to_parquet(model, input_path, output, options, predictor)


def _score_to_parquet(
    model: str | Path,
    input_path: str | Path,
    output: Path,
    options: ScoreOptions | None,
    predictor: Predictor | None,
) -> ScoreResult:
    options = options or ScoreOptions()
    started = time.perf_counter()
    if predictor is None:
        # ONNX Runtime gets as many threads as torch would use (--threads, else torch's count)
        threads = options.threads or torch.get_num_threads()
        predictor = load_predictor(
            str(model), options.backend, threads=threads, device=options.device
        )
    manifest = predictor.loaded.manifest
    inputs = resolve(
        manifest.model_config,
        initial_rank_column=options.initial_rank_column,
        rank_from_order=options.initial_rank_from_order,
        context_columns=options.context_columns,
        trained_context_columns=manifest.training.get("context_columns"),
    )
    feature_columns = options.feature_columns
    if feature_columns == ["model"]:
        feature_columns = list(manifest.feature_names)
    output = Path(output)
    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"no such input: {input_path}")

    text_input = input_path.is_file() and not is_parquet(input_path)
    if text_input and inputs.columns:
        by_order = " (or pass --initial-rank-from-order)" if not inputs.context_dim else ""
        raise ConfigError(
            f"this model needs the column(s) {', '.join(inputs.columns)}, which LETOR input "
            "cannot carry; convert it with `ltr convert`, add the columns and score the Parquet"
            + by_order
        )
    checked = None  # the plan of an input whose ranks and contexts were checked
    if not text_input and inputs.columns:  # before the output is touched (even --overwrite)
        check_columns(inputs, pq.read_schema(input_files(input_path)[0]), input_path)
        checked = _plan(input_path, manifest.num_features, options.qid_column, feature_columns)
        check_list_inputs(checked, inputs)
    existing = prepare_output(output, resume=options.resume, overwrite=options.overwrite)
    job = {
        "format": JOB_FORMAT,
        "input": str(input_path.resolve()),
        "input_files": fingerprint_files([input_path] if text_input else input_files(input_path)),
        "model": {"source": str(model), "sha256": model_digest(predictor)},
        "backend": predictor.backend,
    }
    # The options that shape the output: a finished job with other ones is refused, as an
    # unfinished one is (the partition plan below follows from the input and partition_rows).
    settings = {
        "qid_column": options.qid_column,
        "feature_columns": feature_columns,
        "drop_features": options.drop_features,
        "partition_rows": options.partition_rows,
        "compression": options.compression,  # one codec for all of a job's partitions
    }
    list_inputs = {"list_inputs": inputs.describe()} if inputs.needed else {}
    if existing is not None and (output / SUCCESS).exists():
        check_same_job(existing, job | settings | list_inputs, output)
        done = json.loads((output / SUCCESS).read_text())
        return ScoreResult(
            output,
            done["rows"],
            done["partitions"],
            done["partitions"],
            time.perf_counter() - started,
            notes=["the job was already complete; nothing to do"],
        )
    if checked is not None:
        plan = checked
    else:
        if text_input:
            source = _stage_letor(input_path, output, manifest.num_features, options, existing)
        else:
            source = input_path
        plan = _plan(source, manifest.num_features, options.qid_column, feature_columns)
    ranges = plan_partitions(plan, options.partition_rows)
    expected = [owned_rows(plan, a, b) for a, b in ranges]
    job |= settings | {
        "partitions": [[a, b, n] for (a, b), n in zip(ranges, expected, strict=True)],
        "rows": plan.total_rows,
    }
    job |= list_inputs  # absent for other models: their manifests stay as they were
    if existing is not None:
        check_same_job(existing, job, output)
    else:
        write_json(output / MANIFEST, job)

    done = completed_partitions(output, expected)
    result = ScoreResult(output, plan.total_rows, len(ranges), len(done), 0.0)
    kept = plan.schema
    if options.drop_features:
        for name in feature_columns or ["features"]:
            kept = kept.remove(kept.get_field_index(name))
    out_schema = kept.append(pa.field("score", pa.float32(), nullable=False)).append(
        pa.field("rank", pa.int32(), nullable=False)
    )
    bar = _progress_bar(options.progress, plan.total_rows, sum(expected[k] for k in done))
    scoring_started = time.perf_counter()
    try:
        for k, (a, b) in enumerate(ranges):
            if k in done:
                continue
            rows = _write_partition(
                output / PART.format(k),
                plan,
                (a, b),
                predictor,
                out_schema,
                options,
                feature_columns,
                inputs,
                bar,
            )
            if rows != expected[k]:  # a bug, not a user error
                raise RuntimeError(f"partition {k} got {rows} rows, expected {expected[k]}")
            result.scored_rows += rows
            release_free_memory()
    finally:
        if bar is not None:
            bar.close()
    result.seconds = time.perf_counter() - started
    scoring_seconds = time.perf_counter() - scoring_started
    write_json(
        output / SUCCESS,
        {
            "rows": plan.total_rows,
            "partitions": len(ranges),
            "scored_rows": result.scored_rows,
            "scoring_seconds": round(scoring_seconds, 3),
        },
    )
    (output / STAGED_INPUT).unlink(missing_ok=True)
    return result


def _write_partition(
    path: Path,
    plan: InputPlan,
    block_range: tuple[int, int],
    predictor: Predictor,
    out_schema: pa.Schema,
    options: ScoreOptions,
    feature_columns: list[str] | None,
    inputs: ListInputs,
    bar,
) -> int:
    """Score the queries owned by ``block_range`` into ``path`` atomically; return the rows."""
    tmp = path.with_name(f".{path.name}.tmp")
    width = predictor.loaded.manifest.num_features
    tables = whole_lists(plan, *block_range)
    first = max(1, options.piece_rows // FIRST_PIECE_DIVISOR)
    prepared = (
        prepare(piece, width, plan.qid_column, feature_columns, inputs)
        for piece in ramped_pieces(tables, plan.qid_column, options.piece_rows, first)
    )
    # Dictionaries and min/max statistics only pay off for the id-like columns, not for floats.
    floats = {*(feature_columns or ["features"]), "score", "rank"}
    encoding = {
        "use_dictionary": [n for n in out_schema.names if n not in floats],
        "write_statistics": [n for n in out_schema.names if n not in floats - {"score", "rank"}],
    }
    rows = 0
    pending: deque[Future] = deque()
    # Reading runs ahead in one thread, writing behind in another; the model scores in between.
    with (
        pq.ParquetWriter(tmp, out_schema, compression=options.compression, **encoding) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="ltr-write") as write_pool,
    ):
        for item in prefetch(prepared, depth=1) if options.io_threads else prepared:
            scored = score_prepared(predictor, *item, batch_size=options.batch_size)
            if options.drop_features:
                scored = scored.select(out_schema.names)
            if options.io_threads:
                pending.append(write_pool.submit(writer.write_table, scored.cast(out_schema)))
            else:
                writer.write_table(scored.cast(out_schema))
            while len(pending) > 1:
                pending.popleft().result()
            rows += scored.num_rows
            if bar is not None:
                bar.update(scored.num_rows)
        while pending:
            pending.popleft().result()
    with open(tmp, "rb+") as fh:  # the data reach the disk before the name does
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return rows


def _plan(
    source: Path, num_features: int, qid_column: str, feature_columns: list[str] | None
) -> InputPlan:
    return plan_input(
        source, num_features=num_features, qid_column=qid_column, feature_columns=feature_columns
    )


def check_list_inputs(plan: InputPlan, inputs: ListInputs) -> None:
    """Check every query's initial ranks and context vector, reading only those columns.

    Raises:
        DataFormatError: the first bad value, with its query id and column.
    """
    qid = plan.qid_column
    columns = [qid, *(c for c in inputs.columns if c != qid)]
    for table in whole_lists(plan, 0, len(plan.blocks), columns):
        offsets = offsets_of(table.column(qid))
        qids = table.column(qid)
        extract(inputs, table, offsets, lambda q, o=offsets, c=qids: c[int(o[q])].as_py())


def _stage_letor(
    path: Path, output: Path, num_features: int, options: ScoreOptions, existing: dict | None
) -> Path:
    """Convert a LETOR/SVMlight file to ``output/_input.parquet`` (kept for a resume)."""
    from ltr.data.convert import convert_files

    staged = output / STAGED_INPUT
    if existing is None or not staged.exists():
        convert_files(
            [path],
            staged,
            num_features=num_features,
            group_file=options.group_file,
            row_group_rows=min(65_536, options.partition_rows),  # partitions are row-group sets
        )
    return staged


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Called after every partition, so allocator fragmentation cannot make the resident set creep
    upwards over a long job.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


def _progress_bar(enabled: bool | None, total: int, initial: int):
    """tqdm bar with rows/s and time left; ``None`` = only on a terminal."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="rows",
        unit_scale=True,
        dynamic_ncols=True,
        desc="scoring",
        smoothing=0.1,
    )


__all__ = [
    "ScoreOptions",
    "ScoreResult",
    "plan_partitions",
    "read_scored",
    "score_table",
    "score_to_parquet",
]
