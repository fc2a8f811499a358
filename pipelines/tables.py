"""Arrow tables of whole queries -> the same tables with ``score`` and ``rank`` columns.

The unit of work of the local engine: a table whose queries are complete and contiguous is cut
into query-aligned pieces, its features are turned into a ``[n, F]`` matrix -- and, for models
that take them, its initial ranks and context vectors are checked and converted
(:mod:`ltr.data.list_inputs`) -- by :func:`prepare`, done ahead of the model in a reader thread;
each piece is then scored by :func:`pipelines.lists.score_flat` (:func:`score_prepared`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from ltr.data.list_inputs import ListInputs, extract, resolve
from ltr.predictor import Predictor
from pipelines.lists import DEFAULT_BATCH_SIZE, offsets_of, rank_in_lists, score_flat
from pipelines.source import features_of


def score_table(
    predictor: Predictor,
    table: pa.Table,
    *,
    qid_column: str = "qid",
    feature_columns: list[str] | None = None,
    inputs: ListInputs | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pa.Table:
    """Score a table of whole, contiguous queries; return it with ``score`` and ``rank`` added.

    This is what ``ltr score`` does to every piece of its input, so a caller (e.g. a test that
    compares with the gRPC server) can score the same lists in memory. ``inputs`` says where a
    model's initial ranks and context come from (default: the ``initial_rank`` and ``context``
    columns, see :func:`ltr.data.list_inputs.resolve`).
    """
    manifest = predictor.loaded.manifest
    if inputs is None:
        inputs = resolve(manifest.model_config)
    prepared = prepare(table, manifest.num_features, qid_column, feature_columns, inputs)
    return score_prepared(predictor, *prepared, batch_size=batch_size)


def coalesce(
    tables: Iterable[pa.Table], rows: int, first_rows: int | None = None
) -> Iterator[pa.Table]:
    """Join consecutive tables of whole queries until each holds at least ``rows`` rows (the
    first one only ``first_rows``, default ``rows``).

    The model sorts lists by length within what it scores at once, so joining the small tables
    that row groups give means less padding; order and content are unchanged (the last table may
    be smaller). The tables must share a schema.
    """
    buffer: list[pa.Table] = []
    held = 0
    target = rows if first_rows is None else first_rows
    for table in tables:
        buffer.append(table)
        held += len(table)
        if held >= target:
            yield buffer[0] if len(buffer) == 1 else pa.concat_tables(buffer)
            buffer, held, target = [], 0, rows
    if buffer:
        yield buffer[0] if len(buffer) == 1 else pa.concat_tables(buffer)


def pieces(
    table: pa.Table, qid_column: str, rows: int, first_rows: int | None = None
) -> list[pa.Table]:
    """Cut a table of whole queries into query-aligned slices of about ``rows`` rows (the first
    slice of about ``first_rows``, default ``rows``)."""
    target = rows if first_rows is None else first_rows
    if len(table) <= target:
        return [table]
    bounds = offsets_of(table.column(qid_column))  # query starts, then the row count
    out, begin = [], 0
    for cut in bounds[1:]:
        if cut - begin >= target or cut == len(table):
            out.append(table.slice(begin, int(cut) - begin))
            begin, target = int(cut), rows
    return out


def ramped_pieces(
    tables: Iterable[pa.Table], qid_column: str, rows: int, first_rows: int
) -> Iterator[pa.Table]:
    """Query-aligned pieces of about ``rows`` rows, the first of only about ``first_rows``.

    A pipelined job cannot start scoring before its first piece is read and cannot finish before
    its last is written; a small first piece shortens the start (the rest is read while it is
    scored) at the cost of a little more padding in that piece.
    """
    for i, table in enumerate(coalesce(tables, rows, first_rows)):
        yield from pieces(table, qid_column, rows, first_rows if i == 0 else None)


def prepare(
    table: pa.Table,
    width: int,
    qid_column: str,
    feature_columns: list[str] | None,
    inputs: ListInputs | None = None,
) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Arrow -> numpy work done ahead of the model.

    Returns:
        ``(table, offsets [Q+1], features [n, F], initial_rank [n] | None, context [Q, C] | None)``
        (the last two only for a model that takes them, per ``inputs``).
    """
    offsets = offsets_of(table.column(qid_column))
    features = features_of(table, width, feature_columns)
    if inputs is None or not inputs.needed:
        return table, offsets, features, None, None
    qids = table.column(qid_column)
    ranks, context = extract(inputs, table, offsets, lambda q: qids[int(offsets[q])].as_py())
    return table, offsets, features, ranks, context


def score_prepared(
    predictor: Predictor,
    table: pa.Table,
    offsets: np.ndarray,
    features: np.ndarray,
    initial_rank: np.ndarray | None = None,
    context: np.ndarray | None = None,
    *,
    batch_size: int,
) -> pa.Table:
    """Score a prepared piece; return its table with ``score`` (float32) and ``rank`` (int32)."""
    scores = score_flat(
        predictor,
        features,
        offsets,
        initial_rank=initial_rank,
        context=context,
        batch_size=batch_size,
    )
    ranks = rank_in_lists(scores, offsets)
    table = table.append_column(pa.field("score", pa.float32(), nullable=False), pa.array(scores))
    return table.append_column(pa.field("rank", pa.int32(), nullable=False), pa.array(ranks))
