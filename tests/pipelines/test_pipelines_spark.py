"""The Spark engine (real PySpark, local[2]) against the local engine."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.cli import main
from pipelines.scoring import ScoreOptions, read_scored, score_to_parquet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_scores(model_dir, straddled_parquet, tmp_path_factory) -> pa.Table:
    out = tmp_path_factory.mktemp("local") / "out"
    score_to_parquet(model_dir, straddled_parquet, out, ScoreOptions(partition_rows=1500))
    return read_scored(out)


def _by_doc(table: pa.Table) -> dict[str, tuple[float, int]]:
    docs = table.column("doc_id").to_pylist()
    scores = table.column("score").to_pylist()
    ranks = table.column("rank").to_pylist()
    return {d: (s, r) for d, s, r in zip(docs, scores, ranks, strict=True)}


def test_spark_equals_local_engine_on_scattered_rows(
    spark, model_dir, straddled_parquet, local_scores, tmp_path
):
    from pipelines.spark import score_spark

    # Scatter every query's rows over the file: the Spark engine groups rows by query id itself.
    table = pq.read_table(straddled_parquet)
    order = np.random.default_rng(0).permutation(table.num_rows)
    scattered = tmp_path / "scattered.parquet"
    pq.write_table(table.take(pa.array(order)), scattered, row_group_size=1000)

    result = score_spark(spark, str(model_dir), str(scattered), str(tmp_path / "spark"))
    assert result.rows == table.num_rows
    got = pq.read_table(tmp_path / "spark")
    assert got.num_rows == table.num_rows
    assert set(got.column_names) == {"qid", "doc_id", "label", "features", "score", "rank"}
    spark_rows, local_rows = _by_doc(got), _by_doc(local_scores)
    assert spark_rows.keys() == local_rows.keys()
    docs = sorted(local_rows)
    s = np.array([spark_rows[d][0] for d in docs])
    want = np.array([local_rows[d][0] for d in docs])
    np.testing.assert_allclose(s, want, rtol=0, atol=1e-6)
    assert [spark_rows[d][1] for d in docs] == [local_rows[d][1] for d in docs]
    # features survive the trip through Spark (as array<float>)
    first = got.slice(0, 1)
    doc = first.column("doc_id")[0].as_py()
    source = table.filter(pa.compute.equal(table.column("doc_id"), doc))
    assert first.column("features").to_pylist() == source.column("features").to_pylist()


def test_cli_spark_engine(spark, model_dir, straddled_parquet, local_scores, tmp_path, capsys):
    out = tmp_path / "spark-cli"
    argv = ["score", "--engine", "spark", "--spark-master", "local[2]"]
    argv += ["--model", str(model_dir), "--input", str(straddled_parquet), "--output", str(out)]
    assert main(argv) == 0
    assert "scored 6,000 rows on Spark" in capsys.readouterr().out
    got = _by_doc(pq.read_table(out))
    want = _by_doc(local_scores)
    docs = sorted(want)
    np.testing.assert_allclose(
        [got[d][0] for d in docs], [want[d][0] for d in docs], rtol=0, atol=1e-6
    )
    assert main(argv) == 2  # the output exists: Spark needs --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 2
    assert "--resume applies to the local engine" in capsys.readouterr().err
