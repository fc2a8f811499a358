"""Parity data with another feature count than the model's is refused before ONNX Runtime runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.artifact import ONNX, load_model
from ltr.cli import main
from ltr.data.parquet import chunk_to_table, schema
from ltr.data.svmlight import RowChunk
from ltr.errors import DataFormatError
from ltr.export.onnx import ensure_onnx


def _parquet_with(data, path: Path, width: int) -> Path:
    """``data`` as an ltr Parquet file that keeps only its first ``width`` features."""
    qids = np.repeat(data.qids, data.list_lengths)
    chunk = RowChunk(qids, data.doc_ids, data.labels, data.features[:, :width])
    pq.write_table(chunk_to_table(chunk, schema(width, list(data.feature_names[:width]))), path)
    return path


def test_export_refuses_data_with_another_feature_count(artifact, s5_data, tmp_path, capsys):
    f45 = _parquet_with(s5_data, tmp_path / "f45.parquet", 45)
    out = tmp_path / "out"
    code = main(["export", "--model", str(artifact), "--data", str(f45), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "ltr export: error: the data has 45 features but the model expects 46\n"
    assert not (out / ONNX).exists()


def test_export_on_load_refuses_parity_data_with_another_feature_count(
    artifact, s5_data, tmp_path
):  # what `ltr serve --parity_data` runs at start-up
    f45 = _parquet_with(s5_data, tmp_path / "f45.parquet", 45)
    wanted = r"^the data has 45 features but the model expects 46$"
    with pytest.raises(DataFormatError, match=wanted):
        ensure_onnx(load_model(artifact), [f45])
