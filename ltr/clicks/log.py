"""Click logs: one row per impression (a document shown to a user at a position in a session).

Schema::

    session   int64 or string   not null   one user's look at one ranked list
    qid       string            not null   the query of the session
    doc_id    string            not null   the document shown
    position  integer           not null   1-based position it was shown at
    click     integer or bool   not null   1 = clicked, 0 = not

Features are not in the log: they are joined by ``(qid, doc_id)`` from an ltr data file when
labels are made (:mod:`ltr.clicks.labels`), as they would be from a feature store. Other columns
are ignored. :func:`read_log` checks every row and names the first bad one; :func:`aggregate`
counts impressions and clicks per ``(query, document, position)``, which is all that the
propensity and label estimators need.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltr.errors import DataFormatError

COLUMNS = ("session", "qid", "doc_id", "position", "click")
META_SIMULATION = b"ltr.click_simulation"
INTEGER_SESSIONS = pa.int64()
STRING_SESSIONS = pa.string()


class UnidentifiableError(DataFormatError):
    """Every document of the log was shown in one place only (fixed rankings), so a model that
    separates where a document was shown from what it is worth cannot be fitted.

    ``reason`` says so without advice, for a caller that names its own remedies (``ltr clicks
    compare`` reports the model as not fitted); the message is the reason and the advice.
    """

    def __init__(self, reason: str, advice: str) -> None:
        super().__init__(f"{reason}; {advice}")
        self.reason, self.advice = reason, advice

    def __reduce__(self):  # pickled with its two parts (the message alone cannot rebuild it)
        return type(self), (self.reason, self.advice)


def log_schema(
    metadata: dict | None = None, session_type: pa.DataType = INTEGER_SESSIONS
) -> pa.Schema:
    """The schema :class:`ClickLogWriter` writes (``metadata``: recorded as JSON; sessions are
    integers, or strings such as a server's impression ids)."""
    meta = {META_SIMULATION: json.dumps(metadata).encode()} if metadata else None
    return pa.schema(
        [
            pa.field("session", session_type, nullable=False),
            pa.field("qid", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),
            pa.field("click", pa.int8(), nullable=False),
        ],
        metadata=meta,
    )


class ClickLogWriter:
    """Write a click log to Parquet; the file appears under its name only after a clean exit."""

    def __init__(
        self,
        path: str | Path,
        metadata: dict | None = None,
        session_type: pa.DataType = INTEGER_SESSIONS,
    ):
        self.path = Path(path)
        self.schema = log_schema(metadata, session_type)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._writer: pq.ParquetWriter | None = None
        self.rows_written = 0

    def __enter__(self) -> ClickLogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        return self

    def write(
        self,
        session: np.ndarray,
        qid: np.ndarray,
        doc_id: np.ndarray,
        position: np.ndarray,
        click: np.ndarray,
    ) -> None:
        assert self._writer is not None, "use ClickLogWriter as a context manager"
        table = pa.Table.from_arrays(
            [
                pa.array(session, self.schema.field("session").type),
                pa.array(qid, pa.string()),
                pa.array(doc_id, pa.string()),
                pa.array(position, pa.int32()),
                pa.array(click, pa.int8()),
            ],
            schema=self.schema,
        )
        self._writer.write_table(table)
        self.rows_written += table.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if exc_type is None:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ClickLog:
    """A checked click log as arrays (one entry per impression).

    ``session``, ``query`` and ``doc`` are dense integer codes; ``qids[query]`` and
    ``doc_ids[doc]`` give the original ids (a document code is per ``(query, doc_id)`` pair).
    """

    session: np.ndarray  # [N] int64 session code
    query: np.ndarray  # [N] int64 query code
    doc: np.ndarray  # [N] int64 (query, document) pair code
    position: np.ndarray  # [N] int64, 1-based
    click: np.ndarray  # [N] int8, 0 or 1
    qids: np.ndarray  # [Q] str
    doc_qid: np.ndarray  # [D] query code of each pair
    doc_ids: np.ndarray  # [D] str
    simulation: dict | None = None

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def subset(self, keep: np.ndarray) -> ClickLog:
        """The impressions where ``keep`` (``[N]`` bool), with the same codes for sessions,
        queries and pairs."""
        return replace(
            self,
            session=self.session[keep],
            query=self.query[keep],
            doc=self.doc[keep],
            position=self.position[keep],
            click=self.click[keep],
        )

    @property
    def num_sessions(self) -> int:
        return int(self.session.max()) + 1 if len(self) else 0

    def sessions_per_query(self) -> np.ndarray:
        """``[Q]`` how many sessions each query had."""
        pairs = np.unique(self.query * self.num_sessions + self.session)
        return np.bincount(pairs // max(self.num_sessions, 1), minlength=len(self.qids))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of a column's values and the values themselves (in first-seen order)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    return (
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        encoded.dictionary.to_numpy(zero_copy_only=False),
    )


def read_log(path: str | Path) -> ClickLog:
    """Read and check a click log; raise :class:`DataFormatError` naming the first bad row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such click log: {path}")
    try:
        file_schema = pq.read_schema(path)
    except pa.ArrowInvalid as exc:
        raise DataFormatError(f"{path}: not a Parquet file ({exc})") from None
    missing = [c for c in COLUMNS if file_schema.get_field_index(c) < 0]
    if missing:
        raise DataFormatError(
            f"{path}: the click log has no {', '.join(map(repr, missing))} column; a click log "
            f"has one row per impression with the columns {', '.join(COLUMNS)}"
        )
    table = pq.read_table(path, columns=list(COLUMNS))
    if table.num_rows == 0:
        raise DataFormatError(f"{path}: the click log holds no rows")
    for name in COLUMNS:
        nulls = table.column(name).null_count
        if nulls:
            row = _first(pc.is_null(table.column(name)))
            raise DataFormatError(f"{path}: row {row} has no {name} ({nulls} rows lack one)")
    for name in ("position", "click"):
        kind = table.schema.field(name).type
        if not (pa.types.is_integer(kind) or (name == "click" and pa.types.is_boolean(kind))):
            raise DataFormatError(f"{path}: column {name!r} must hold integers, got {kind}")
    position = table.column("position").to_numpy().astype(np.int64)
    click = table.column("click").to_numpy(zero_copy_only=False).astype(np.int64)
    if np.any(position < 1):
        row = int(np.flatnonzero(position < 1)[0])
        raise DataFormatError(
            f"{path}: row {row} has position {position[row]}; positions are 1-based"
        )
    if np.any((click != 0) & (click != 1)):
        row = int(np.flatnonzero((click != 0) & (click != 1))[0])
        raise DataFormatError(f"{path}: row {row} has click {click[row]}; clicks are 0 or 1")
    qid_column = table.column("qid").cast(pa.string())
    doc_column = table.column("doc_id").cast(pa.string())
    session, _ = _codes(table.column("session").cast(pa.string()))
    query, qids = _codes(qid_column)
    doc_key, _ = _codes(pc.binary_join_element_wise(qid_column, doc_column, "\x1f"))
    doc_qid = np.zeros(int(doc_key.max()) + 1, dtype=np.int64)
    doc_qid[doc_key] = query
    doc_ids = np.empty(len(doc_qid), dtype=object)
    doc_ids[doc_key] = doc_column.to_numpy(zero_copy_only=False)
    _check_sessions(path, session, query, doc_key, position)
    meta = file_schema.metadata or {}
    simulation = json.loads(meta[META_SIMULATION]) if META_SIMULATION in meta else None
    return ClickLog(
        session,
        query,
        doc_key,
        position,
        click.astype(np.int8),
        qids.astype(object),
        doc_qid,
        doc_ids,
        simulation,
    )


def _first(flags: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(flags.to_numpy(zero_copy_only=False))[0])


def _check_sessions(
    path: Path, session: np.ndarray, query: np.ndarray, doc: np.ndarray, position: np.ndarray
) -> None:
    """A session has one query, shows a document once and fills a position once."""
    _, first_row = np.unique(session, return_index=True)  # sessions are codes 0..S-1
    bad = np.flatnonzero(query[first_row][session] != query)
    if len(bad):
        raise DataFormatError(f"{path}: row {bad[0]}: its session also holds another query")
    for what, key in (("document", doc), ("position", position)):
        order = np.lexsort((key, session))
        same = (session[order][1:] == session[order][:-1]) & (key[order][1:] == key[order][:-1])
        if np.any(same):
            row = int(order[1:][same][0])
            raise DataFormatError(
                f"{path}: row {row}: its session shows the same {what} twice"
                + (f" (position {position[row]})" if what == "position" else "")
            )


@dataclass(frozen=True)
class Counts:
    """Impressions and clicks per ``(document pair, position)`` cell of a log."""

    doc: np.ndarray  # [M] pair code
    position: np.ndarray  # [M] 1-based
    impressions: np.ndarray  # [M] int64
    clicks: np.ndarray  # [M] int64


def aggregate(log: ClickLog) -> Counts:
    """Sum the log's impressions and clicks by ``(document, position)``."""
    width = int(log.position.max()) + 1
    cell, inverse = np.unique(log.doc * width + log.position, return_inverse=True)
    return Counts(
        doc=cell // width,
        position=cell % width,
        impressions=np.bincount(inverse, minlength=len(cell)).astype(np.int64),
        clicks=np.bincount(inverse, weights=log.click, minlength=len(cell)).astype(np.int64),
    )
