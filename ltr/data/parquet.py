"""Parquet storage for ranking data: one explicit schema, queries never split across row groups.

Schema (``ltr.data.parquet.schema(F)``)::

    qid       string                         not null   query id
    doc_id    string                                    document id (null when the source has none)
    label     float                          not null   graded relevance
    features  fixed_size_list<float>[F]      not null   dense features (NaN = missing)

Schema metadata records the format version, the feature count and the feature names. Other
columns may be present (a model's context vectors, columns written by other tools); readers
ignore those they were not asked for. ``ParquetListWriter(context_dim=C)`` adds one::

    context   fixed_size_list<float>[C]      not null   the query's context vector, on every row

Each query's rows are contiguous and never straddle two row groups, so a row group can be scored
on its own. Files are written under a temporary name and renamed when complete: a crash never
leaves a truncated file under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.data.list_inputs import CONTEXT
from ltr.data.svmlight import RowChunk
from ltr.errors import DataFormatError

FORMAT_VERSION = "1"
DEFAULT_ROW_GROUP_ROWS = 65_536
META_NUM_FEATURES = b"ltr.num_features"
META_FEATURE_NAMES = b"ltr.feature_names"
META_VERSION = b"ltr.format_version"


def default_feature_names(num_features: int) -> list[str]:
    """LETOR-style names ``f1 .. fF`` (1-based, matching SVMlight indices)."""
    return [f"f{i}" for i in range(1, num_features + 1)]


def schema(
    num_features: int, feature_names: list[str] | None = None, context_dim: int = 0
) -> pa.Schema:
    """The Parquet schema for ``num_features`` dense features (and a ``context`` column of
    ``context_dim`` floats per row when it is above 0)."""
    names = feature_names or default_feature_names(num_features)
    if len(names) != num_features:
        raise ValueError(f"{len(names)} feature names for {num_features} features")
    context = [pa.field(CONTEXT, pa.list_(pa.float32(), context_dim), nullable=False)]
    return pa.schema(
        [
            pa.field("qid", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=True),
            pa.field("label", pa.float32(), nullable=False),
            pa.field("features", pa.list_(pa.float32(), num_features), nullable=False),
            *(context if context_dim else []),
        ],
        metadata={
            META_VERSION: FORMAT_VERSION.encode(),
            META_NUM_FEATURES: str(num_features).encode(),
            META_FEATURE_NAMES: json.dumps(names).encode(),
        },
    )


def _float_rows(values: np.ndarray) -> pa.FixedSizeListArray:
    """``[n, W]`` numbers as a fixed-size list column of float32."""
    width = values.shape[1]
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


def chunk_to_table(
    chunk: RowChunk, file_schema: pa.Schema, context: np.ndarray | None = None
) -> pa.Table:
    """Convert a :class:`RowChunk` to an Arrow table with the given schema (``context``:
    ``[n, C]`` per-row context vectors, for a schema with a ``context`` column)."""
    n = len(chunk)
    columns = [
        pa.array(chunk.qids.astype(str) if n else [], type=pa.string()),
        pa.array(list(chunk.doc_ids), type=pa.string()),
        pa.array(chunk.labels, type=pa.float32()),
        _float_rows(chunk.features),
    ]
    if context is not None:
        columns.append(_float_rows(context))
    return pa.Table.from_arrays(columns, schema=file_schema)


class ParquetListWriter:
    """Write whole queries to Parquet, cutting row groups only at query boundaries.

    Use as a context manager; the file appears under its final name only after a clean exit.

    Args:
        path: output file.
        num_features: dense width F.
        feature_names: optional names (default ``f1..fF``).
        context_dim: C > 0 adds the ``context`` column: every :meth:`write` then gives each
            row's context vector, the same on every row of a query.
        row_group_rows: target rows per row group; a single query larger than this gets a row
            group of its own.
    """

    def __init__(
        self,
        path: str | Path,
        num_features: int,
        *,
        feature_names: list[str] | None = None,
        context_dim: int = 0,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    ):
        self.path = Path(path)
        self.context_dim = context_dim
        self.schema = schema(num_features, feature_names, context_dim)
        self.row_group_rows = row_group_rows
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._last_qid: str | None = None
        self._seen: set[str] = set()
        self.rows_written = 0
        self.queries_written = 0

    def __enter__(self) -> ParquetListWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        return self

    def write(self, chunk: RowChunk, context: np.ndarray | None = None) -> None:
        """Append a chunk of whole queries (queries must not repeat across chunks); ``context``:
        ``[n, C]`` each row's context vector, given exactly when the file has that column."""
        if self._writer is None:
            raise RuntimeError("use ParquetListWriter as a context manager")
        expected = (len(chunk), self.context_dim)
        if (context is None) != (self.context_dim == 0) or (
            context is not None and np.shape(context) != expected
        ):
            got = "none" if context is None else f"shape {np.shape(context)}"
            want = f"shape {expected}" if self.context_dim else "none"
            raise ValueError(f"context vectors: got {got}, the file takes {want}")
        if len(chunk) == 0:
            return
        starts = query_starts(chunk.qids)
        for q in chunk.qids[starts]:
            if q in self._seen:
                raise DataFormatError(
                    f"query {q!r} appears in two places of the input; rows of a query must be "
                    "contiguous"
                )
            self._seen.add(q)
        self.queries_written += len(starts)
        table = chunk_to_table(chunk, self.schema, context)
        # Cut the table at query boundaries into pieces of about row_group_rows rows.
        bounds = np.append(starts, len(chunk))
        begin = 0
        for end in bounds[1:]:
            if self._pending_rows + (end - begin) >= self.row_group_rows and end > begin:
                self._pending.append(table.slice(begin, end - begin))
                self._pending_rows += end - begin
                self._flush()
                begin = end
        if begin < len(chunk):
            self._pending.append(table.slice(begin))
            self._pending_rows += len(chunk) - begin

    def _flush(self) -> None:
        if self._pending_rows and self._writer is not None:
            self._writer.write_table(
                pa.concat_tables(self._pending), row_group_size=self._pending_rows
            )
            self.rows_written += self._pending_rows
        self._pending, self._pending_rows = [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
            if self._writer is not None:
                self._writer.close()
        finally:
            if exc_type is None:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)


def query_starts(qids: np.ndarray) -> np.ndarray:
    """Indices where a new query begins in a row-ordered array of query ids."""
    if len(qids) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.ones(len(qids), dtype=bool)
    change[1:] = qids[1:] != qids[:-1]
    return np.flatnonzero(change)


def feature_names_of(file_schema: pa.Schema, width: int | None = None) -> list[str]:
    """Feature names recorded in a file's schema (``f1..fF`` when absent; ``width`` gives F for
    a variable-length ``features`` list, whose schema does not)."""
    meta = file_schema.metadata or {}
    if META_FEATURE_NAMES in meta:
        return list(json.loads(meta[META_FEATURE_NAMES]))
    return default_feature_names(width if width is not None else features_width(file_schema))


def features_width(file_schema: pa.Schema, *, labels: bool = True) -> int | None:
    """Width F of the ``features`` column (None for a variable-length list, such as Spark
    writes, whose rows say it); raises if the file does not follow the schema, whose ``label``
    column may be missing when not ``labels``."""
    try:
        field = file_schema.field("features")
    except KeyError:
        raise DataFormatError(
            "the Parquet file has no 'features' column (expected the ltr schema: qid, doc_id, "
            "label, features; convert LETOR files with `ltr convert`)"
        ) from None
    kind = field.type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if not (pa.types.is_fixed_size_list(kind) or is_list) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise DataFormatError(f"column 'features' must be a list of numbers, got {kind}")
    if file_schema.get_field_index("qid") < 0:
        raise DataFormatError("the Parquet file has no 'qid' column")
    if labels and file_schema.get_field_index("label") < 0:
        raise DataFormatError(
            "the Parquet file has no 'label' column, which this command needs (graded relevance "
            "of each row); `ltr rerank` and `ltr score` take unlabelled candidates"
        )
    return int(kind.list_size) if pa.types.is_fixed_size_list(kind) else None


def _feature_rows(column: pa.ChunkedArray, width: int | None) -> np.ndarray:
    """``[rows, F]`` float32 from a ``features`` list column, fixed-size or not (every row of a
    variable-length one must hold as many values as the first)."""
    feats = column.combine_chunks()
    if feats.null_count:
        raise DataFormatError("the 'features' column holds a null list; every row needs features")
    if width is None:
        lengths = feats.value_lengths().to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else 0
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            raise DataFormatError(
                f"row {int(bad[0])} has {int(lengths[bad[0]])} features but row 0 has {width}; "
                "every row needs the same features"
            )
    values = feats.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(-1, width)


def table_to_chunk(table: pa.Table, *, labels: bool = True) -> RowChunk:
    """Convert an Arrow table in the ltr schema to a :class:`RowChunk`; without ``labels`` a
    table may lack the ``label`` column (its rows get 0)."""
    width = features_width(table.schema, labels=labels)
    features = _feature_rows(table.column("features"), width)
    doc = (
        table.column("doc_id").to_numpy(zero_copy_only=False)
        if table.schema.get_field_index("doc_id") >= 0
        else np.full(table.num_rows, None, dtype=object)
    )
    return RowChunk(
        qids=table.column("qid").cast(pa.string()).to_numpy(zero_copy_only=False).astype(object),
        doc_ids=doc.astype(object),
        labels=(
            table.column("label").to_numpy(zero_copy_only=False).astype(np.float32)
            if table.schema.get_field_index("label") >= 0
            else np.zeros(table.num_rows, dtype=np.float32)
        ),
        features=features,
    )


def iter_parquet(path: str | Path, *, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Stream a Parquet file one row group at a time."""
    file = pq.ParquetFile(path)
    for i in range(file.num_row_groups):
        yield file.read_row_group(i, columns=columns)


def read_parquet(path: str | Path) -> tuple[RowChunk, list[str]]:
    """Read a whole ltr Parquet file: rows and feature names."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    table = pq.read_table(path)
    chunk = table_to_chunk(table)
    return chunk, feature_names_of(table.schema, chunk.features.shape[1])
