"""``ltr report --scores`` with Parquet scores: matched to the data's rows by (qid, doc_id)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.data import load_dataset
from ltr.data.convert import convert_files
from ltr.errors import DataFormatError
from pipelines.report import file_scores
from pipelines.scoring import ScoreOptions, score_to_parquet
from tests.pipelines.helpers import ltr


@pytest.fixture(scope="module")
def shuffled_scores(model_dir, mq2008_dir, tmp_path_factory):
    """S5 as Parquet with each query's rows in reverse doc_id order, scored by ``ltr score``:
    the queries keep their order, the rows within them do not."""
    tmp = tmp_path_factory.mktemp("report-scores")
    convert_files([mq2008_dir / "S5.txt.xz"], tmp / "s5.parquet")
    table = pq.read_table(tmp / "s5.parquet")
    sorted_rows = table.sort_by([("qid", "ascending"), ("doc_id", "descending")])
    assert sorted_rows.column("qid").to_pylist() == table.column("qid").to_pylist()
    assert sorted_rows.column("doc_id").to_pylist() != table.column("doc_id").to_pylist()
    pq.write_table(sorted_rows, tmp / "sorted.parquet")
    score_to_parquet(model_dir, tmp / "sorted.parquet", tmp / "scored", ScoreOptions())
    return tmp / "scored"


def test_reordered_scores_give_the_models_own_metrics(
    model_dir, mq2008_dir, shuffled_scores, tmp_path
):
    data = mq2008_dir / "S5.txt.xz"
    out = tmp_path / "report"
    argv = ["report", "--data", data, "--output", out, "--no-mlflow"]
    argv += ["--model", f"direct={model_dir}", "--scores", f"sorted={shuffled_scores}"]
    argv += ["--bootstrap", "50", "--permutations", "100", "--metrics", "ndcg@10", "map", "mrr"]
    proc = ltr(*argv)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((out / "metrics.json").read_text())["metrics"]
    # the reference: `ltr evaluate` scoring the model on the data itself
    proc = ltr("evaluate", "--model", model_dir, "--data", data, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    want = json.loads(proc.stdout)
    for conv in ("empty=1", "empty=0", "dropped"):
        for metric in ("ndcg@10", "map", "mrr"):
            expected = want[conv][metric]
            assert got[conv]["sorted"][metric]["mean"] == pytest.approx(expected, abs=1e-6)
            assert got[conv]["direct"][metric]["mean"] == pytest.approx(expected, abs=1e-6)


def test_scores_follow_the_data_rows_whatever_their_order(mq2008_dir, tmp_path):
    s5 = load_dataset(mq2008_dir / "S5.txt.xz")
    qids = np.repeat(s5.qids.astype(str), s5.list_lengths)
    values = np.arange(s5.num_rows, dtype=np.float64)  # a score per data row: its position
    order = np.random.default_rng(0).permutation(s5.num_rows)
    table = pa.table(
        {
            "qid": qids[order],
            "doc_id": s5.doc_ids.astype(str)[order],
            "score": values[order],
        }
    )
    pq.write_table(table, tmp_path / "shuffled.parquet")
    np.testing.assert_array_equal(file_scores(str(tmp_path / "shuffled.parquet"), s5), values)

    other = table.set_column(1, "doc_id", pa.array(["x", *table.column("doc_id").to_pylist()[1:]]))
    pq.write_table(other, tmp_path / "other.parquet")
    missing = s5.doc_ids[order[0]]
    with pytest.raises(DataFormatError, match=rf"no score for query .* document '{missing}'"):
        file_scores(str(tmp_path / "other.parquet"), s5)

    docs = table.column("doc_id").to_pylist()
    twice = table.set_column(1, "doc_id", pa.array([docs[1], *docs[1:]]))
    twice = twice.set_column(0, "qid", pa.array([qids[order[1]], *qids[order][1:].tolist()]))
    pq.write_table(twice, tmp_path / "twice.parquet")
    with pytest.raises(DataFormatError, match="has more than one score"):
        file_scores(str(tmp_path / "twice.parquet"), s5)


def test_mismatched_keys_are_refused_by_the_cli(model_dir, mq2008_dir, tmp_path):
    s5 = load_dataset(mq2008_dir / "S5.txt.xz")
    qids = np.repeat(s5.qids.astype(str), s5.list_lengths)
    docs = s5.doc_ids.astype(str)
    docs[5] = "GX-not-in-the-data"
    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"qid": qids, "doc_id": docs, "score": np.zeros(len(docs))}), scores)
    argv = ["report", "--data", mq2008_dir / "S5.txt.xz", "--output", tmp_path / "out"]
    proc = ltr(*argv, "--no-mlflow", "--model", f"m={model_dir}", "--scores", f"bad={scores}")
    assert proc.returncode == 2
    assert proc.stderr.startswith("ltr report: error: ") and "no score for query" in proc.stderr
    assert proc.stderr.count("\n") == 1
