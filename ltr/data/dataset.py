"""List datasets: contiguous arrays plus per-query offsets, and collation into padded batches.

A :class:`ListDataset` holds all rows of all queries in flat arrays (``features [N, F]``,
``labels [N]``) and ``offsets [Q + 1]`` such that query ``q`` owns rows
``offsets[q]:offsets[q + 1]``, plus, for models with a context vector, ``context [Q, C]`` (one
vector per query, read from Parquet columns, see :mod:`ltr.data.list_inputs`). Item ``q`` of the
dataset is that query's list.

:func:`collate_lists` pads a list of items into a :class:`~ltr.types.ListBatch` with a boolean mask
(``True`` = real candidate). Evaluation always sees whole lists. For training only,
:class:`SampledLists` caps very long lists by sampling: a list longer than ``max_list_length``
is replaced by a uniformly random subset of that size (without replacement, original order kept),
drawn from a generator seeded by ``(seed, epoch, query index)``, so runs are reproducible and do
not depend on data-loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from ltr.data.list_inputs import ListInputs, check_columns, extract, ranks_in_order
from ltr.data.parquet import default_feature_names, feature_names_of, query_starts, table_to_chunk
from ltr.data.stats import DataStats
from ltr.data.svmlight import RowChunk, concat_chunks, read_svmlight
from ltr.errors import DataFormatError
from ltr.types import ListBatch


@dataclass(frozen=True)
class ListExample:
    """One query's candidate list.

    Attributes:
        features: ``[n, F]`` float32.
        labels: ``[n]`` float32.
        index: position of the query in its dataset.
        rows: ``[n]`` int64 row numbers of the candidates in the dataset's flat arrays.
        initial_rank: ``[n]`` int64 1-based position of each candidate in its query's input
            order (the first-stage ranking, for models with ``use_initial_rank``); kept through
            list sampling. ``None`` = ``1..n``.
        context: ``[C]`` float32 the query's context vector, or None.
    """

    features: np.ndarray
    labels: np.ndarray
    index: int
    rows: np.ndarray
    initial_rank: np.ndarray | None = None
    context: np.ndarray | None = None

    def ranks(self) -> np.ndarray:
        """``initial_rank``, or ``1..n`` when not given."""
        if self.initial_rank is not None:
            return self.initial_rank
        return np.arange(1, len(self.labels) + 1, dtype=np.int64)


class ListDataset(Dataset):
    """Ranking data as flat arrays plus per-query offsets.

    Args:
        features: ``[N, F]`` float32 candidate features, rows of a query contiguous.
        labels: ``[N]`` float32 relevance grades.
        offsets: ``[Q + 1]`` int64 row offsets, ``offsets[0] = 0``, ``offsets[-1] = N``.
        qids: ``[Q]`` query ids.
        doc_ids: optional ``[N]`` document ids.
        feature_names: names of the F features (default ``f1..fF``).
        context: optional ``[Q, C]`` float32 per-query context vectors (finite).
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        offsets: np.ndarray,
        qids: Sequence[str] | np.ndarray,
        doc_ids: np.ndarray | None = None,
        feature_names: list[str] | None = None,
        context: np.ndarray | None = None,
    ):
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.ascontiguousarray(labels, dtype=np.float32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.qids = np.asarray(qids, dtype=object)
        self.doc_ids = doc_ids if doc_ids is not None else np.full(len(labels), None, dtype=object)
        n = self.features.shape[0]
        if self.features.ndim != 2:
            raise DataFormatError(f"features must be [rows, features], got {self.features.shape}")
        if self.labels.shape != (n,):
            raise DataFormatError(f"{self.labels.shape[0]} labels for {n} feature rows")
        if self.offsets[0] != 0 or self.offsets[-1] != n or np.any(np.diff(self.offsets) <= 0):
            raise DataFormatError("offsets must start at 0, end at the row count and increase")
        if len(self.qids) != len(self.offsets) - 1:
            raise DataFormatError(f"{len(self.qids)} query ids for {len(self.offsets) - 1} queries")
        self.feature_names = feature_names or default_feature_names(self.features.shape[1])
        self.context = None
        if context is not None:
            self.context = np.ascontiguousarray(context, dtype=np.float32)  # (Q, C)
            if self.context.ndim != 2 or self.context.shape[0] != len(self.qids):
                raise DataFormatError(
                    f"context must be [queries, context_dim] = [{len(self.qids)}, C], got "
                    f"{self.context.shape}"
                )
            if not np.isfinite(self.context).all():
                raise DataFormatError("context vectors must hold finite numbers only")

    @classmethod
    def from_chunk(
        cls,
        chunk: RowChunk,
        feature_names: list[str] | None = None,
        context: np.ndarray | None = None,
    ) -> ListDataset:
        """Build from rows whose queries are contiguous (``context``: ``[Q, C]`` in query
        order, or None)."""
        if len(chunk) == 0:
            raise DataFormatError("the data holds no rows")
        starts = query_starts(chunk.qids)
        qids = chunk.qids[starts]
        if len(set(qids)) != len(qids):
            twice = _repeated(qids)
            raise DataFormatError(
                f"rows of a query must be contiguous; query {twice!r} appears in two places"
            )
        offsets = np.append(starts, len(chunk)).astype(np.int64)
        return cls(
            chunk.features, chunk.labels, offsets, qids, chunk.doc_ids, feature_names, context
        )

    @property
    def context_dim(self) -> int:
        """C, the size of the per-query context vectors (0 = none)."""
        return 0 if self.context is None else int(self.context.shape[1])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> ListExample:
        start, end = self.offsets[index], self.offsets[index + 1]
        return ListExample(
            self.features[start:end],
            self.labels[start:end],
            int(index),
            np.arange(start, end, dtype=np.int64),
            context=None if self.context is None else self.context[index],
        )

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def list_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def input_ranks(self) -> np.ndarray:
        """``[N]`` int64 each row's 1-based position in its query (the initial ranking that
        training and evaluation give models with ``use_initial_rank``)."""
        return ranks_in_order(self.offsets)

    @property
    def query_of_row(self) -> np.ndarray:
        """``[N]`` index of the query each row belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.list_lengths)

    def stats(self) -> dict[str, object]:
        """Counts a user wants to see after loading or converting data."""
        return DataStats().update(self.labels, self.features, self.offsets).summary()


class SampledLists(Dataset):
    """Training view of a :class:`ListDataset` that caps list length by seeded sampling.

    Call :meth:`set_epoch` at the start of every epoch to draw new subsets.
    """

    def __init__(self, dataset: ListDataset, max_list_length: int | None, seed: int = 0):
        if max_list_length is not None and max_list_length < 1:
            raise ValueError(f"max_list_length must be at least 1, got {max_list_length}")
        self.dataset = dataset
        self.max_list_length = max_list_length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> ListExample:
        item = self.dataset[index]
        cap = self.max_list_length
        if cap is None or len(item.labels) <= cap:
            return item
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        keep = np.sort(rng.choice(len(item.labels), size=cap, replace=False))
        return ListExample(
            item.features[keep],
            item.labels[keep],
            item.index,
            item.rows[keep],
            item.ranks()[keep],
            item.context,
        )


def collate_lists(items: Sequence[ListExample]) -> ListBatch:
    """Pad candidate lists into a :class:`ListBatch` (padded slots: zeros, mask ``False``).

    Context vectors, when the items carry them, are stacked into ``context [B, C]``.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    with_context = [it.context is not None for it in items]
    if any(with_context) and not all(with_context):
        raise ValueError("some lists of the batch carry a context vector and some do not")
    width = items[0].features.shape[1]
    longest = max(len(it.labels) for it in items)
    features = np.zeros((len(items), longest, width), dtype=np.float32)
    labels = np.zeros((len(items), longest), dtype=np.float32)
    mask = np.zeros((len(items), longest), dtype=bool)
    ranks = np.zeros((len(items), longest), dtype=np.int64)  # 0 = padded
    rows = np.full((len(items), longest), -1, dtype=np.int64)  # -1 = padded
    context = np.stack([it.context for it in items]) if all(with_context) else None  # (B, C)
    for b, it in enumerate(items):
        n = len(it.labels)
        features[b, :n] = it.features
        labels[b, :n] = it.labels
        mask[b, :n] = True
        ranks[b, :n] = it.ranks()
        rows[b, :n] = it.rows
    return ListBatch(
        features=torch.from_numpy(features),  # (B, L, F)
        labels=torch.from_numpy(labels),  # (B, L)
        mask=torch.from_numpy(mask),  # (B, L)
        initial_rank=torch.from_numpy(ranks),  # (B, L), input order; used by rank-aware models
        context=None if context is None else torch.from_numpy(context),  # (B, C)
        query_index=torch.tensor([it.index for it in items], dtype=torch.int64),
        rows=torch.from_numpy(rows),  # (B, L), -1 at padded slots
    )


def load_dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    group_file: str | Path | None = None,
    num_features: int | None = None,
    context: ListInputs | None = None,
    labels: bool = True,
) -> ListDataset:
    """Load one or more LETOR/SVMlight (plain, .xz, .gz) or ltr Parquet files as one dataset.

    Several files are concatenated in order (e.g. the three training partitions of a fold); a
    query id may not occur in two of them.

    Args:
        labels: whether the data must carry labels; without, a Parquet file may lack the
            ``label`` column (candidates to rank, whose rows get label 0).
        context: for a model with a context vector (``context.context_dim > 0``, see
            :func:`ltr.data.list_inputs.resolve`): the Parquet columns each query's vector is
            read from. LETOR/SVMlight files cannot carry one.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("no data file given")
    inputs = None  # only the context columns: training's initial ranks are the input order
    if context is not None and context.context_dim:
        inputs = replace(context, initial_rank_column=None, rank_from_order=False)
    chunks: list[RowChunk] = []
    vectors: list[np.ndarray] = []
    names: list[str] | None = None
    owners: dict[object, Path] = {}  # query id -> the file it came from
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such data file: {path}")
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix != ".md")
            example = f", e.g. {inside[0]}" if inside else ""
            raise DataFormatError(f"{path} is a folder; pass the data file(s) in it{example}")
        if path.suffix == ".parquet":
            chunk, file_names, file_context = _read_parquet_lists(path, inputs, labels)
            if names is not None and file_names != names:
                raise DataFormatError(f"{path}: its feature names differ from the other files'")
            names = file_names
            if file_context is not None:
                vectors.append(file_context)
        elif inputs is not None:
            raise DataFormatError(
                f"{path}: the model needs a context vector of {inputs.context_dim} values per "
                "query, which LETOR/SVMlight files cannot carry; convert the data to Parquet "
                "(`ltr convert`) and add a context column"
            )
        else:
            chunk = read_svmlight(path, num_features=num_features, group_file=group_file)
        _check_new_queries(chunk, path, owners)
        chunks.append(chunk)
    if num_features is None and len({c.features.shape[1] for c in chunks}) > 1:
        # Sparse files may stop at different largest indices: widen to the largest.
        width = max(c.features.shape[1] for c in chunks)
        chunks = [_widen(c, width) for c in chunks]
    vectors_all = np.concatenate(vectors) if inputs is not None else None  # (Q, C)
    return ListDataset.from_chunk(concat_chunks(chunks), names, vectors_all)


def _repeated(qids: np.ndarray) -> object:
    """The first query id that occurs twice in ``qids``."""
    seen = set()
    for q in qids:
        if q in seen:
            return q
        seen.add(q)
    raise ValueError("no query id occurs twice")


def _check_new_queries(chunk: RowChunk, path: Path, owners: dict[object, Path]) -> None:
    """Raise if a query of ``chunk`` (read from ``path``) came from an earlier file; record
    the file's queries in ``owners``."""
    if len(chunk) == 0:
        return
    qids = chunk.qids[query_starts(chunk.qids)]
    shared = [q for q in owners.keys() & set(qids) if owners[q] != path]
    if shared:
        q = min(shared, key=str)
        raise DataFormatError(
            f"query {q!r} occurs in both {owners[q]} and {path}; a query's rows must all be in "
            "one file (give the queries of different files different ids)"
        )
    owners.update(dict.fromkeys(qids, path))


def _read_parquet_lists(
    path: Path, inputs: ListInputs | None, labels: bool = True
) -> tuple[RowChunk, list[str], np.ndarray | None]:
    """A Parquet file's rows, feature names and (with ``inputs``) ``[Q, C]`` context vectors."""
    table = pq.read_table(path)
    try:
        chunk = table_to_chunk(table, labels=labels)
    except DataFormatError as exc:
        raise DataFormatError(f"{path}: {exc}") from None
    names = feature_names_of(table.schema, chunk.features.shape[1])
    if inputs is None or len(chunk) == 0:
        return chunk, names, None
    starts = query_starts(chunk.qids)
    qids = chunk.qids[starts]
    if len(set(qids)) != len(qids):
        raise DataFormatError(
            f"{path}: rows of a query must be contiguous; query {_repeated(qids)!r} appears in "
            "two places (`ltr convert` groups them)"
        )
    check_columns(inputs, table.schema, path)
    offsets = np.append(starts, len(chunk))
    _, vectors = extract(inputs, table, offsets, lambda q: qids[q])
    return chunk, names, vectors


def _widen(chunk: RowChunk, width: int) -> RowChunk:
    extra = width - chunk.features.shape[1]
    if extra == 0:
        return chunk
    features = np.pad(chunk.features, ((0, 0), (0, extra)))
    return RowChunk(chunk.qids, chunk.doc_ids, chunk.labels, features)
