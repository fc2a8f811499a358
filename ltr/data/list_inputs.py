"""Initial ranks and context vectors: which columns hold them, and their checks.

Some models take more than features (``use_initial_rank``, ``context_dim > 0`` in the model
config). Batch scoring reads both from columns of its input; training and evaluation read context
vectors from columns of Parquet data (their initial ranks are each list's input order). The
conventions are the model's (:class:`ltr.models.setrank.SetRank`) and the gRPC server's
(:mod:`ltr.serve.validation`):

* **initial rank** -- one integer per row, 1-based (1 = first in the initial ranking), 0 =
  unknown (the model's "unknown" embedding, as for a rank the server was not sent); ranks above
  the model's ``max_rank`` share its last embedding. Default column ``initial_rank``. With
  ``rank_from_order`` the ranks are instead the rows' order within their query, ``1 .. n``.
* **context** -- ``C`` floats per query, the same on every row of the query: one list column
  (default ``context``) or ``C`` numeric columns.

:func:`resolve` decides where each input comes from, :func:`check_columns` checks an input's
schema, and :func:`extract` turns a table of whole queries into the arrays the scorers pad:
``initial_rank [N]`` and ``context [Q, C]``. Every fault a user can make is reported with the
query id and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltr.errors import ConfigError, DataFormatError

INITIAL_RANK = "initial_rank"
"""Default column of per-row initial ranks."""
CONTEXT = "context"
"""Default column of the per-query context vector (a list of C floats)."""
_MAX_RANK = 2**62  # float ranks are clipped here before the cast (the model clips far lower)


@dataclass(frozen=True)
class ListInputs:
    """Where a model's optional per-list inputs come from.

    Attributes:
        initial_rank_column: column of per-row initial ranks; None when the model takes none or
            when ``rank_from_order``.
        rank_from_order: the initial ranks are the rows' order within their query (``1 .. n``).
        context_columns: one list column of C values, or C numeric columns; empty = no context.
        context_dim: C, the model's context size (0 = no context).
        context_option: how the user names the context columns (for messages).
    """

    initial_rank_column: str | None = None
    rank_from_order: bool = False
    context_columns: tuple[str, ...] = ()
    context_dim: int = 0
    context_option: str = "--context-columns"

    @property
    def needed(self) -> bool:
        """Whether the model takes initial ranks or a context vector."""
        return self.uses_ranks or self.context_dim > 0

    @property
    def uses_ranks(self) -> bool:
        return self.rank_from_order or self.initial_rank_column is not None

    @property
    def columns(self) -> list[str]:
        """The input columns read (beyond query id and features)."""
        rank = [self.initial_rank_column] if self.initial_rank_column else []
        return [*rank, *self.context_columns]  # distinct: resolve() sees to that

    def describe(self) -> dict:
        """JSON-able summary, recorded in a job manifest (a resume must read the same columns)."""
        return {
            "initial_rank_column": self.initial_rank_column,
            "rank_from_order": self.rank_from_order,
            "context_columns": list(self.context_columns),
        }


def resolve(
    model_config: Mapping,
    *,
    initial_rank_column: str | None = None,
    rank_from_order: bool = False,
    context_columns: Sequence[str] | None = None,
    context_option: str = "--context-columns",
    trained_context_columns: Sequence[str] | None = None,
) -> ListInputs:
    """The inputs a model with ``model_config`` needs, from the user's options (None = default).

    ``context_option`` is how the user names the context columns (a flag, or a config key), for
    the messages. Without ``context_columns`` a context model reads the columns it was trained
    with (``trained_context_columns``, recorded in its manifest), else the list column
    ``context``.

    Raises:
        ConfigError: an option the model cannot use, or two that exclude each other.
    """
    uses_rank = bool(model_config.get("use_initial_rank", False))
    dim = int(model_config.get("context_dim", 0) or 0)
    if not uses_rank and (initial_rank_column is not None or rank_from_order):
        raise ConfigError(
            "this model does not use initial ranks; leave out --initial-rank-column and "
            "--initial-rank-from-order"
        )
    if rank_from_order and initial_rank_column is not None:
        raise ConfigError(
            "--initial-rank-column and --initial-rank-from-order exclude each other; pick one"
        )
    if dim == 0 and context_columns:
        raise ConfigError(f"this model takes no context vector; leave out {context_option}")
    if context_columns is not None and len(set(context_columns)) != len(context_columns):
        raise ConfigError(f"{context_option} names a column twice; name each column once")
    rank_column = None
    if uses_rank and not rank_from_order:
        rank_column = initial_rank_column or INITIAL_RANK
    context = tuple(context_columns or trained_context_columns or [CONTEXT]) if dim else ()
    if rank_column is not None and rank_column in context:
        raise ConfigError(
            f"column {rank_column!r} cannot hold both the initial ranks and the context vector"
        )
    return ListInputs(rank_column, rank_from_order and uses_rank, context, dim, context_option)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _is_list(kind: pa.DataType) -> bool:
    return (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def check_columns(inputs: ListInputs, schema: pa.Schema, where: object) -> None:
    """Raise unless ``schema`` has the columns ``inputs`` reads, with usable types.

    Args:
        inputs: see :func:`resolve`.
        schema: the input's Arrow schema.
        where: the input, as named in the messages (a path, or "the input").
    """
    rank = inputs.initial_rank_column
    if rank is not None:
        if schema.get_field_index(rank) < 0:
            raise DataFormatError(
                f"this model uses initial ranks but {where} has no {rank!r} column; name the "
                "column of 1-based ranks (0 = unknown) with --initial-rank-column, or pass "
                "--initial-rank-from-order to rank each query's rows in input order"
            )
        kind = schema.field(rank).type
        if not _is_number(kind):
            raise DataFormatError(
                f"column {rank!r} of {where} must hold integer initial ranks, got {kind}"
            )
    if not inputs.context_dim:
        return
    names, dim = inputs.context_columns, inputs.context_dim
    missing = [c for c in names if schema.get_field_index(c) < 0]
    if missing:
        raise DataFormatError(
            f"this model needs a context vector of {dim} values per query but {where} has no "
            f"column {', '.join(map(repr, missing))}; name one list column or {dim} numeric "
            f"columns with {inputs.context_option}"
        )
    if len(names) == 1 and _is_list(schema.field(names[0]).type):
        kind = schema.field(names[0]).type
        if not _is_number(kind.value_type):
            raise DataFormatError(
                f"context column {names[0]!r} of {where} must be a list of numbers, got {kind}"
            )
        if pa.types.is_fixed_size_list(kind) and kind.list_size != dim:
            raise DataFormatError(
                f"context column {names[0]!r} of {where} holds {kind.list_size} values per row "
                f"but the model needs a context vector of {dim}"
            )
        return
    for name in names:
        kind = schema.field(name).type
        if not _is_number(kind):
            raise DataFormatError(
                f"context column {name!r} of {where} must be numeric (or the one list column), "
                f"got {kind}"
            )
    if len(names) != dim:
        raise DataFormatError(
            f"{len(names)} numeric context column(s) given but the model needs a context vector "
            f"of {dim} values; name {dim} columns, or one list column, with "
            f"{inputs.context_option}"
        )


def extract(
    inputs: ListInputs,
    table: pa.Table,
    offsets: np.ndarray,
    query_id: Callable[[int], object],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Check and convert a table's initial ranks and context vectors for the model.

    Args:
        inputs: see :func:`resolve`; the columns are checked with :func:`check_columns`.
        table: whole queries, rows of a query contiguous (it may hold other columns too).
        offsets: ``[Q + 1]`` row offsets of the queries.
        query_id: the id of query ``q`` (for messages).

    Returns:
        ``initial_rank [N]`` int64 (None if the model takes none) and ``context [Q, C]`` float32
        (None if the model takes none).

    Raises:
        DataFormatError: a missing, negative or fractional rank; a context vector that is missing,
            of the wrong length, not finite or not the same on every row of its query.
    """
    check_columns(inputs, table.schema, "the table")  # a missing column: no bare KeyError
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)  # [Q]

    def query_of(row: int) -> object:
        return query_id(int(np.searchsorted(offsets, row, side="right")) - 1)

    ranks = None
    if inputs.rank_from_order:
        ranks = ranks_in_order(offsets)
    elif inputs.initial_rank_column is not None:
        ranks = _ranks(
            table.column(inputs.initial_rank_column), inputs.initial_rank_column, query_of
        )
    context = None
    if inputs.context_dim:
        matrix, name_of = _context_matrix(inputs, table, query_of)  # (N, C)
        bad = ~np.isfinite(matrix)
        if bad.any():
            row, j = (int(v) for v in np.argwhere(bad)[0])
            raise DataFormatError(
                f"query {query_of(row)!r} has a non-finite context value ({matrix[row, j]}) in "
                f"column {name_of(j)!r}; send finite numbers only"
            )
        context = matrix[offsets[:-1]]  # (Q, C): each query's first row
        differs = matrix != np.repeat(context, lengths, axis=0)  # (N, C)
        if differs.any():
            row, j = (int(v) for v in np.argwhere(differs)[0])
            raise DataFormatError(
                f"the context column {name_of(j)!r} varies within query {query_of(row)!r}; a "
                "query's context vector must be the same on every row of the query"
            )
    return ranks, context


def ranks_in_order(offsets: np.ndarray) -> np.ndarray:
    """``[N]`` int64 each row's 1-based position in its query, for ``[Q + 1]`` row ``offsets``
    (the initial ranking training and evaluation give models with ``use_initial_rank``)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return (
        np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], np.diff(offsets)) + 1
    )


def _ranks(column: pa.ChunkedArray, name: str, query_of: Callable[[int], object]) -> np.ndarray:
    """``[N]`` int64 ranks from an integer (or integral float) column."""
    array = column.combine_chunks()
    if array.null_count:
        row = int(pc.index(pc.is_null(array), True).as_py())
        raise DataFormatError(
            f"query {query_of(row)!r} has a row without an initial rank in column {name!r}; "
            "give every row a rank (0 = unknown)"
        )
    values = array.to_numpy(zero_copy_only=False)  # (N,)
    if values.dtype.kind == "f":
        fractional = ~np.isfinite(values) | (values != np.floor(values))
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            raise DataFormatError(
                f"query {query_of(row)!r} has the initial rank {values[row]} in column {name!r}; "
                "ranks must be whole numbers (1-based, 0 = unknown)"
            )
        values = np.minimum(values, _MAX_RANK)
    negative = values < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise DataFormatError(
            f"query {query_of(row)!r} has the negative initial rank {values[row]} in column "
            f"{name!r}; ranks are 1-based, with 0 = unknown"
        )
    return values.astype(np.int64)


def _context_matrix(
    inputs: ListInputs, table: pa.Table, query_of: Callable[[int], object]
) -> tuple[np.ndarray, Callable[[int], str]]:
    """``[N, C]`` float32 context values of every row, and the column name of value ``j``."""
    names, dim = inputs.context_columns, inputs.context_dim
    first = table.column(names[0])
    if len(names) == 1 and _is_list(first.type):
        name = names[0]
        array = first.combine_chunks()
        if array.null_count:
            row = int(pc.index(pc.is_null(array), True).as_py())
            raise DataFormatError(
                f"query {query_of(row)!r} has a row without a context vector in column {name!r}"
            )
        if not pa.types.is_fixed_size_list(array.type):
            counts = array.value_lengths().to_numpy(zero_copy_only=False)
            wrong = np.flatnonzero(counts != dim)
            if wrong.size:
                row = int(wrong[0])
                raise DataFormatError(
                    f"query {query_of(row)!r} has a context vector of {int(counts[row])} values "
                    f"in column {name!r} but the model needs {dim}"
                )
        values = array.flatten()  # respects the array's offset and length
        if values.null_count:
            row = int(pc.index(pc.is_null(values), True).as_py()) // dim
            raise DataFormatError(
                f"query {query_of(row)!r} has a null inside its context vector in column {name!r}"
            )
        with np.errstate(over="ignore"):  # values beyond float32 become inf: reported as such
            matrix = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
        return matrix, lambda j: name
    cols = []
    for name in names:
        array = table.column(name).combine_chunks()
        if array.null_count:
            row = int(pc.index(pc.is_null(array), True).as_py())
            raise DataFormatError(
                f"query {query_of(row)!r} has a row without a context value in column {name!r}"
            )
        with np.errstate(over="ignore"):
            cols.append(array.to_numpy(zero_copy_only=False).astype(np.float32))
    return np.column_stack(cols), lambda j: names[j]
