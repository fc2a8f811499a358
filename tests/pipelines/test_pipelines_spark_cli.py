"""``ltr score --engine spark``: what it refuses before Spark starts, and how a bad value ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.synthetic import write_synthetic
from tests.pipelines.helpers import ONE_THREAD, ltr, make_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_spark(monkeypatch):
    """Fail the test if a Spark session is asked for."""

    def refuse(*args, **kwargs):
        raise AssertionError("the Spark session was started")

    monkeypatch.setattr("pipelines.spark.spark_session", refuse)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--drop-features"], "--drop-features apply to the local engine only"),
        (["--compression", "zstd"], "--compression apply to the local engine only"),
        (["--partition-rows", "1000"], "--partition-rows apply to the local engine only"),
        (["--initial-rank-from-order"], "--initial-rank-from-order needs the local engine"),
    ],
)
def test_local_engine_options_are_refused_before_spark_starts(
    no_spark, model_dir, aligned_parquet, tmp_path, extra, message
):
    argv = ["score", "--engine", "spark", "--model", model_dir, "--input", aligned_parquet]
    proc = ltr(*argv, "--output", tmp_path / "out", *extra)
    assert proc.returncode == 2
    assert proc.stderr.startswith("ltr score: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_existing_output_is_refused_before_spark_starts(
    no_spark, model_dir, aligned_parquet, tmp_path
):
    (tmp_path / "out").mkdir()
    argv = ["score", "--engine", "spark", "--model", model_dir, "--input", aligned_parquet]
    proc = ltr(*argv, "--output", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"ltr score: error: the output {tmp_path / 'out'} already exists; pass --overwrite to "
        "replace it\n"
    )


@pytest.mark.slow
def test_a_bad_rank_on_spark_is_one_line_and_exit_2(tmp_path):
    model = make_model(tmp_path / "rank", seed=11, use_initial_rank=True, max_rank=8)
    base = pq.read_table(write_synthetic(tmp_path / "base.parquet", 300, max_list=20, seed=4))
    ranks = np.ones(base.num_rows)
    ranks[-2] = 2.5  # inside the last query
    bad = tmp_path / "bad.parquet"
    pq.write_table(base.append_column("initial_rank", pa.array(ranks)), bad)
    last = base.column("qid")[base.num_rows - 1].as_py()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ltr", "score", "--engine", "spark"]
    command += ["--spark-master", "local[1]", "--model", str(model), "--input", str(bad)]
    command += ["--output", str(out)]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=ONE_THREAD, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.endswith(
        f"ltr score: error: query {last!r} has the initial rank 2.5 in column 'initial_rank'; "
        "ranks must be whole numbers (1-based, 0 = unknown)\n"
    )
    # Spark's start-up lines remain; the task's tracebacks (about 200 lines) do not
    assert "Traceback" not in proc.stderr and "PythonException" not in proc.stderr
    assert proc.stderr.count("\n") < 20
    assert not out.exists()  # nothing committed, and no empty folder to refuse a re-run
