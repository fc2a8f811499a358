"""Inputs a user gets wrong (a folder, a missing file, a table without the context column) are
one-line errors that say what is wrong, not an errno or a bare KeyError."""

from __future__ import annotations

import numpy as np
import pytest

from ltr.cli import main
from ltr.data import load_dataset
from ltr.data.parquet import chunk_to_table, schema
from ltr.data.svmlight import RowChunk
from ltr.errors import DataFormatError
from ltr.predictor import load_predictor
from pipelines.tables import score_table
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="module")
def s1(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


@pytest.fixture(scope="module")
def model(tmp_path_factory, s1):
    return make_artifact(tmp_path_factory.mktemp("errors") / "model", s1, seed=5)


def test_a_folder_given_as_a_data_file_is_named_as_such(model, mq2008_dir, capsys):
    # what `ltr rerank` and `ltr evaluate` read with (load_dataset)
    assert main(["evaluate", "--model", str(model), "--data", str(mq2008_dir)]) == 2
    assert capsys.readouterr().err == (
        f"ltr evaluate: error: {mq2008_dir} is a folder; pass the data file(s) in it, e.g. "
        f"{mq2008_dir / 'S1.txt.xz'}\n"
    )


def test_drift_names_a_missing_parquet_file(model, tmp_path, capsys):
    missing = tmp_path / "nope.parquet"
    assert main(["drift", "--model", str(model), "--data", str(missing)]) == 2
    assert capsys.readouterr().err == f"ltr drift: error: no such data file or folder: {missing}\n"


def test_a_context_model_names_the_column_a_table_lacks(tmp_path, s1):
    folder = make_artifact(tmp_path / "ctx", s1, seed=6, context_dim=2)
    rows = slice(0, int(s1.offsets[3]))
    qids = np.repeat(s1.qids, s1.list_lengths)[rows]
    chunk = RowChunk(qids, s1.doc_ids[rows], s1.labels[rows], s1.features[rows])
    table = chunk_to_table(chunk, schema(s1.num_features, list(s1.feature_names)))
    with pytest.raises(DataFormatError, match=r"the table has no column 'context'"):
        score_table(load_predictor(str(folder)), table)
