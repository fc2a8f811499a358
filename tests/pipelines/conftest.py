"""Shared fixtures for the pipeline tests: small real models, synthetic Parquet, Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.synthetic import write_synthetic
from tests.pipelines.helpers import make_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, mq2008_dir) -> Path:
    """SetRank (d_model 16, random weights, normaliser fitted on MQ2008 S1)."""
    from ltr.data import load_dataset

    train = load_dataset(mq2008_dir / "S1.txt.xz")
    return make_model(tmp_path_factory.mktemp("model") / "setrank", fit_on=train.features)


@pytest.fixture(scope="session")
def mq2008_parquet_dir(tmp_path_factory, mq2008_dir) -> Path:
    """Bundled MQ2008's partitions S1..S5 converted once to Parquet (``ltr convert``): the same
    queries, labels and feature values, for the pipelines that train many times (``ltr tune``,
    ``ltr cv --resume``). Every training reads its five partitions again, in 0.15 s from Parquet
    instead of 1 s of parsing LETOR text."""
    from ltr.data.convert import convert_files

    root = tmp_path_factory.mktemp("mq2008-parquet")
    for i in range(1, 6):
        convert_files([mq2008_dir / f"S{i}.txt.xz"], root / f"S{i}.parquet")
    return root


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """Another SetRank with other random weights (to test that resume notices a new model)."""
    return make_model(tmp_path_factory.mktemp("model2") / "setrank", seed=1)


@pytest.fixture(scope="session")
def straddled_parquet(tmp_path_factory) -> Path:
    """6,000 synthetic rows in row groups of 250 rows: most queries straddle two row groups."""
    path = tmp_path_factory.mktemp("synthetic") / "straddled.parquet"
    return write_synthetic(path, 6000, row_group_rows=250, align_row_groups=False, seed=3)


@pytest.fixture(scope="session")
def aligned_parquet(tmp_path_factory) -> Path:
    """The same 6,000 rows with row groups cut at query boundaries (``ltr convert`` style)."""
    path = tmp_path_factory.mktemp("synthetic") / "aligned.parquet"
    return write_synthetic(path, 6000, row_group_rows=1000, seed=3)


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole test session."""
    from pipelines.spark import spark_session

    session = spark_session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "700",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Score on one torch thread: the 2 shared cores stay usable for I/O threads and Spark."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
