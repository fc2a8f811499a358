"""Partition planning over row groups: every row exactly once, every list whole (property test)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.scoring import plan_partitions
from pipelines.source import owned_rows, plan_input, whole_lists


def _write(path: Path, lengths: list[int], row_group: int, files: int) -> pa.Table:
    qids = np.repeat([f"q{i}" for i in range(len(lengths))], lengths)
    n = len(qids)
    table = pa.table(
        {
            "qid": pa.array(qids.tolist()),
            "doc_id": pa.array([f"d{i}" for i in range(n)]),
            "features": pa.FixedSizeListArray.from_arrays(
                pa.array(np.arange(2 * n, dtype=np.float32)), 2
            ),
        }
    )
    cuts = np.linspace(0, n, files + 1).astype(int)  # a directory of several files
    for f in range(files):
        part = table.slice(cuts[f], cuts[f + 1] - cuts[f])
        pq.write_table(part, path / f"part-{f}.parquet", row_group_size=row_group)
    return table


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=25),
    giant=st.integers(0, 120),
    row_group=st.integers(1, 30),
    partition_rows=st.integers(1, 90),
    files=st.integers(1, 3),
)
def test_partitions_cover_every_row_once_with_whole_lists(
    lengths, giant, row_group, partition_rows, files
):
    if giant:
        lengths = [*lengths[: len(lengths) // 2], giant, *lengths[len(lengths) // 2 :]]
    with tempfile.TemporaryDirectory() as tmp:
        table = _write(Path(tmp), lengths, row_group, files)
        plan = plan_input(tmp, num_features=2)
        assert plan.total_rows == len(table)
        seen_docs: list[str] = []
        seen_queries: list[str] = []
        for first, end in plan_partitions(plan, partition_rows):
            rows = 0
            for piece in whole_lists(plan, first, end):
                qids = piece.column("qid").to_pylist()
                runs = [q for i, q in enumerate(qids) if i == 0 or q != qids[i - 1]]
                seen_queries += runs
                seen_docs += piece.column("doc_id").to_pylist()
                rows += len(piece)
            assert rows == owned_rows(plan, first, end)
        # all rows, once each, in input order; no query split over two pieces
        assert seen_docs == table.column("doc_id").to_pylist()
        assert seen_queries == [f"q{i}" for i in range(len(lengths))]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=20), rows=st.integers(1, 60))
def test_pieces_are_query_aligned_and_cover_the_table(lengths, rows):
    from pipelines.tables import pieces

    qids = np.repeat(np.arange(len(lengths)), lengths)
    table = pa.table({"qid": qids, "row": np.arange(len(qids))})
    parts = pieces(table, "qid", rows)
    assert pa.concat_tables(parts).column("row").to_pylist() == list(range(len(qids)))
    for i, part in enumerate(parts):
        q = part.column("qid").to_pylist()
        assert np.sum(qids == q[0]) == q.count(q[0])  # no query is cut
        assert np.sum(qids == q[-1]) == q.count(q[-1])
        if i < len(parts) - 1 and len(table) > rows:
            assert len(part) >= rows
