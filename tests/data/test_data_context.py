"""Per-query context vectors in training and evaluation data (Parquet columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.data.dataset import SampledLists, collate_lists, load_dataset
from ltr.data.list_inputs import resolve
from ltr.data.parquet import chunk_to_table, schema
from ltr.data.svmlight import RowChunk
from ltr.errors import DataFormatError

# three queries of 2, 3 and 1 rows; their context vectors, written by hand
QIDS = ["a", "a", "b", "b", "b", "c"]
CONTEXT = {"a": [1.0, -2.0], "b": [0.5, 0.0], "c": [-3.0, 4.0]}


def _table(qids=QIDS, context=CONTEXT, offset: float = 0.0) -> pa.Table:
    n = len(qids)
    features = np.arange(n * 3, dtype=np.float32).reshape(n, 3) + offset
    chunk = RowChunk(
        np.asarray(qids, dtype=object),
        np.asarray([f"d{i}" for i in range(n)], dtype=object),
        np.arange(n, dtype=np.float32) % 3,
        features,
    )
    table = chunk_to_table(chunk, schema(3))
    rows = [context[q] for q in qids]
    table = table.append_column("context", pa.array(rows, pa.list_(pa.float32())))
    table = table.append_column("c_first", pa.array([r[0] for r in rows], pa.float64()))
    return table.append_column("c_second", pa.array([r[1] for r in rows], pa.int64()))


def _write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def _inputs(dim: int = 2, columns=None):
    return resolve({"context_dim": dim}, context_columns=columns, context_option="--ctx")


@pytest.mark.parametrize("columns", [None, ["context"], ["c_first", "c_second"]])
def test_context_vectors_come_from_a_list_column_or_numeric_columns(tmp_path, columns):
    path = _write(_table(), tmp_path / "d.parquet")
    data = load_dataset(path, context=_inputs(columns=columns))
    want = np.array([CONTEXT["a"], CONTEXT["b"], CONTEXT["c"]], dtype=np.float32)
    np.testing.assert_array_equal(data.context, want)
    assert data.context_dim == 2
    np.testing.assert_array_equal(data[1].context, CONTEXT["b"])
    batch = collate_lists([data[2], data[0]])
    np.testing.assert_array_equal(batch.context.numpy(), want[[2, 0]])  # (B, C), batch order
    # list sampling keeps a list's context
    sampled = SampledLists(data, max_list_length=2, seed=0)[1]
    assert len(sampled.labels) == 2
    np.testing.assert_array_equal(sampled.context, CONTEXT["b"])


def test_without_a_context_model_the_columns_are_ignored(tmp_path):
    path = _write(_table(), tmp_path / "d.parquet")
    data = load_dataset(path)
    assert data.context is None and data.context_dim == 0
    assert collate_lists([data[0], data[1]]).context is None


def test_contexts_follow_their_queries_across_files(tmp_path):
    first = _write(_table(), tmp_path / "1.parquet")
    other = {"x": [7.0, 8.0], "y": [9.0, 10.0]}
    second = _write(_table(["y", "x", "x"], other, offset=100.0), tmp_path / "2.parquet")
    data = load_dataset([first, second], context=_inputs())
    assert list(data.qids) == ["a", "b", "c", "y", "x"]
    want = [CONTEXT["a"], CONTEXT["b"], CONTEXT["c"], other["y"], other["x"]]
    np.testing.assert_array_equal(data.context, np.asarray(want, dtype=np.float32))
    np.testing.assert_array_equal(data[4].features[0], [103.0, 104.0, 105.0])  # row 1 of file 2


def test_a_rank_model_reads_no_rank_column_from_training_data(tmp_path):
    # training's initial ranks are the input order: no `initial_rank` column is asked for
    path = _write(_table(), tmp_path / "d.parquet")
    inputs = resolve({"use_initial_rank": True, "context_dim": 2})
    assert inputs.initial_rank_column == "initial_rank"
    data = load_dataset(path, context=inputs)
    np.testing.assert_array_equal(data[0].ranks(), [1, 2])
    assert data.context_dim == 2


def test_bad_context_data_is_reported_with_the_query_and_column(tmp_path):
    varying = _table().set_column(
        3 + 1, "context", pa.array([[1.0, -2.0], [1.0, -2.5]] + [[0.0, 0.0]] * 4)
    )
    path = _write(varying, tmp_path / "varying.parquet")
    with pytest.raises(DataFormatError, match="column 'context' varies within query 'a'"):
        load_dataset(path, context=_inputs())

    with_nan = _table().set_column(5, "c_first", pa.array([1.0, 1.0, 0.5, 0.5, 0.5, np.nan]))
    path = _write(with_nan, tmp_path / "nan.parquet")
    with pytest.raises(DataFormatError, match="query 'c' has a non-finite context value"):
        load_dataset(path, context=_inputs(columns=["c_first", "c_second"]))

    path = _write(_table().drop_columns(["context"]), tmp_path / "missing.parquet")
    with pytest.raises(DataFormatError, match=r"no column 'context'.*with --ctx"):
        load_dataset(path, context=_inputs())

    path = _write(_table(), tmp_path / "d.parquet")
    with pytest.raises(DataFormatError, match=r"'a' has a context vector of 2 values .* needs 3"):
        load_dataset(path, context=_inputs(dim=3))


def test_letor_files_cannot_feed_a_context_model(mq2008_dir):
    with pytest.raises(DataFormatError, match="LETOR/SVMlight files cannot carry"):
        load_dataset(mq2008_dir / "S5.txt.xz", context=_inputs())


def test_a_batch_mixing_lists_with_and_without_context_is_refused(tmp_path):
    path = _write(_table(), tmp_path / "d.parquet")
    with_context = load_dataset(path, context=_inputs())[0]
    without = load_dataset(path)[1]
    with pytest.raises(ValueError, match="some lists of the batch carry a context"):
        collate_lists([with_context, without])
