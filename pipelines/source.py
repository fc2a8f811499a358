"""Batch-scoring input: Parquet files read one row group (a *block*) at a time, and their plan.

An input is one Parquet file or a directory of them (read in name order; names starting with
``_`` or ``.`` are skipped, as Spark and Arrow do). Features come either from a ``features`` list
column (the ltr schema; a fixed-size or variable list of F floats) or from one column per feature
(``feature_columns``).

:func:`plan_input` reads only the query-id column, once, and records for every block how many of
its leading rows continue a query begun in an earlier block (``head_rows``). That is what lets
the scorer keep lists whole when a query straddles row groups, start any partition without
reading the blocks before it, and reject inputs whose queries are not contiguous -- before any
output is written -- with an error that names the query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.errors import ConfigError, DataFormatError
from pipelines.lists import query_starts

FEATURES = "features"


@dataclass(frozen=True)
class Block:
    """One row group of one input file.

    Attributes:
        file: index into :attr:`InputPlan.files`.
        row_group: row-group number inside that file.
        rows: rows in the row group.
        head_rows: leading rows that belong to a query begun in an earlier block.
    """

    file: int
    row_group: int
    rows: int
    head_rows: int


@dataclass
class InputPlan:
    """The blocks of an input, in order, with what the scorer needs to know about them."""

    files: list[Path]
    blocks: list[Block]
    schema: pa.Schema
    qid_column: str
    feature_columns: list[str] | None = None
    _readers: dict[int, pq.ParquetFile] = field(default_factory=dict, repr=False)

    @property
    def total_rows(self) -> int:
        return sum(b.rows for b in self.blocks)

    def continues(self, index: int) -> bool:
        """Whether block ``index`` starts inside a query begun in an earlier block."""
        return index < len(self.blocks) and self.blocks[index].head_rows > 0

    def read(self, index: int, columns: Sequence[str] | None = None) -> pa.Table:
        """Block ``index`` (all columns, or ``columns``), cast to the plan's schema."""
        b = self.blocks[index]
        reader = self._readers.get(b.file)
        if reader is None:
            self._readers.clear()  # keep one file open at a time
            reader = self._readers[b.file] = pq.ParquetFile(self.files[b.file])
        wanted = None if columns is None else list(columns)
        # use_threads=False: already off the main thread
        table = reader.read_row_group(b.row_group, columns=wanted, use_threads=False)
        schema = (
            self.schema if wanted is None else pa.schema([self.schema.field(c) for c in wanted])
        )
        return table if table.schema == schema else table.cast(schema)


def input_files(path: str | Path) -> list[Path]:
    """The Parquet files of an input path (a file, or a directory's files in name order)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such input: {path}")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise DataFormatError(f"{path} is a directory with no .parquet file in it")
    return files


def is_parquet(path: Path) -> bool:
    """Whether a file starts with Parquet's magic bytes (else it is read as LETOR text)."""
    with Path(path).open("rb") as fh:
        return fh.read(4) == b"PAR1"


def features_of(
    table: pa.Table, num_features: int, feature_columns: Sequence[str] | None = None
) -> np.ndarray:
    """``[rows, F]`` float32 features of a block (a list column, or one column per feature)."""
    if feature_columns:
        cols = [table.column(c).to_numpy(zero_copy_only=False) for c in feature_columns]
        return np.column_stack(cols).astype(np.float32, copy=False).reshape(-1, num_features)
    column = table.column(FEATURES).combine_chunks()
    if column.null_count:
        raise DataFormatError("the 'features' column holds a null list; every row needs features")
    if pa.types.is_fixed_size_list(column.type):
        values = column.flatten()
    else:  # a variable-length list (e.g. written by Spark): every list must have F values
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != num_features)
        if bad.size:
            raise DataFormatError(
                f"row {int(bad[0])} has {int(lengths[bad[0]])} features but the model expects "
                f"{num_features}"
            )
        values = column.flatten()
    array = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return array.reshape(-1, num_features)


def check_schema(
    schema: pa.Schema,
    num_features: int,
    qid_column: str,
    feature_columns: Sequence[str] | None,
    where: Path,
) -> None:
    """Raise if the input cannot be scored by a model with ``num_features`` features."""
    if schema.get_field_index(qid_column) < 0:
        raise DataFormatError(
            f"{where} has no query-id column {qid_column!r}; name it with --qid-column"
        )
    for reserved in ("score", "rank"):
        if schema.get_field_index(reserved) >= 0:
            raise DataFormatError(
                f"{where} already has a {reserved!r} column; drop or rename it before scoring"
            )
    if feature_columns:
        missing = [c for c in feature_columns if schema.get_field_index(c) < 0]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataFormatError(f"{where} lacks feature column(s) {shown}")
        if len(feature_columns) != num_features:
            raise ConfigError(
                f"{len(feature_columns)} feature columns given but the model expects "
                f"{num_features} features"
            )
        return
    if schema.get_field_index(FEATURES) < 0:
        raise DataFormatError(
            f"{where} has no 'features' column; give the per-feature columns with "
            "--feature-columns (or 'model' to use the model's feature names)"
        )
    kind = schema.field(FEATURES).type
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise DataFormatError(f"column 'features' of {where} must be a list of floats, got {kind}")
    if pa.types.is_fixed_size_list(kind) and kind.list_size != num_features:
        raise DataFormatError(
            f"{where} has {kind.list_size} features per row but the model expects {num_features}"
        )


def plan_input(
    path: str | Path,
    *,
    num_features: int,
    qid_column: str = "qid",
    feature_columns: Sequence[str] | None = None,
) -> InputPlan:
    """Scan the query ids of ``path`` once and plan how to read it in whole lists.

    Raises:
        DataFormatError: the files differ in schema, lack the needed columns, or the rows of a
            query are not contiguous (the message names the query and where it appears).
    """
    files = input_files(path)
    schema = pq.read_schema(files[0])
    check_schema(schema, num_features, qid_column, feature_columns, files[0])
    blocks: list[Block] = []
    start_hashes: list[np.ndarray] = []
    open_qid: object = None
    for f, file in enumerate(files):
        reader = pq.ParquetFile(file)
        if not reader.schema_arrow.remove_metadata().equals(schema.remove_metadata()):
            raise DataFormatError(f"{file} has another schema than {files[0]}; use one schema")
        for g in range(reader.num_row_groups):
            qids = reader.read_row_group(g, columns=[qid_column]).column(0).combine_chunks()
            if len(qids) == 0:
                continue
            starts = query_starts(qids)
            head = 0
            if open_qid is not None and qids[0].as_py() == open_qid:
                head = int(starts[1]) if len(starts) > 1 else len(qids)
            fresh = starts[starts >= head] if head else starts
            values = qids.take(pa.array(fresh)).to_pylist()
            start_hashes.append(np.fromiter((hash(v) for v in values), np.int64, len(values)))
            blocks.append(Block(f, g, len(qids), head))
            open_qid = qids[len(qids) - 1].as_py()
    plan = InputPlan(files, blocks, schema, qid_column, list(feature_columns or []) or None)
    _check_contiguous(plan, np.concatenate(start_hashes) if start_hashes else np.zeros(0, int))
    return plan


def _check_contiguous(plan: InputPlan, hashes: np.ndarray) -> None:
    """Raise if a query id starts twice. Hash hits are confirmed on the ids themselves."""
    values, counts = np.unique(hashes, return_counts=True)
    suspects = set(values[counts > 1].tolist())
    if not suspects:
        return
    seen: dict[object, int] = {}
    for index, qid, _ in iter_query_starts(plan):
        if hash(qid) in suspects:
            if qid in seen:
                first, again = plan.blocks[seen[qid]], plan.blocks[index]
                raise DataFormatError(
                    f"query {qid!r} appears in two separate places of the input "
                    f"({plan.files[first.file].name} row group {first.row_group} and "
                    f"{plan.files[again.file].name} row group {again.row_group}); rows of a "
                    "query must be contiguous: sort the input by query id, or score it with "
                    "--engine spark, which groups rows by query"
                )
            seen[qid] = index


def iter_query_starts(plan: InputPlan) -> Iterator[tuple[int, object, int]]:
    """``(block index, qid, row)`` of every query start, in input order."""
    for index, b in enumerate(plan.blocks):
        reader = pq.ParquetFile(plan.files[b.file])
        qids = reader.read_row_group(b.row_group, columns=[plan.qid_column]).column(0)
        starts = query_starts(qids)
        qids = qids.combine_chunks()
        for s in starts[starts >= b.head_rows] if b.head_rows else starts:
            yield index, qids[int(s)].as_py(), int(s)


def whole_lists(
    plan: InputPlan, first: int, end: int, columns: Sequence[str] | None = None
) -> Iterator[pa.Table]:
    """Tables of whole queries: those that *start* in blocks ``first .. end - 1``.

    Leading rows that continue a query begun before block ``first`` are skipped (an earlier
    range owns them); a query still open at block ``end - 1`` is completed from the following
    blocks. Each yielded table holds complete, contiguous queries, in input order, with all
    columns or only ``columns`` (which must include the query id).
    """
    carry: pa.Table | None = None
    started = False  # has a query started inside the range yet?
    for index in range(first, end):
        b = plan.blocks[index]
        table = plan.read(index, columns)
        if not started:
            table = table.slice(b.head_rows)
            started = b.head_rows < b.rows
        if carry is not None:
            table = pa.concat_tables([carry, table])
            carry = None
        if len(table) == 0:
            continue
        if plan.continues(index + 1):  # the last query goes on in the next block
            last = int(query_starts(table.column(plan.qid_column))[-1])
            carry = table.slice(last)
            table = table.slice(0, last)
        if len(table):
            yield table
    index = end
    while carry is not None and plan.continues(index):
        b = plan.blocks[index]
        carry = pa.concat_tables([carry, plan.read(index, columns).slice(0, b.head_rows)])
        if b.head_rows < b.rows:
            break
        index += 1
    if carry is not None and len(carry):
        yield carry


def owned_rows(plan: InputPlan, first: int, end: int) -> int:
    """Rows of the queries that start in blocks ``first .. end - 1`` (see :func:`whole_lists`)."""
    rows, started = 0, False
    for b in plan.blocks[first:end]:
        rows += b.rows if started else b.rows - b.head_rows
        started = started or b.head_rows < b.rows
    index = end
    while started and plan.continues(index):
        b = plan.blocks[index]
        rows += b.head_rows
        if b.head_rows < b.rows:
            break
        index += 1
    return rows
