"""``ltr score --resume`` refuses a job started otherwise, finished or not, and says why."""

from __future__ import annotations

import shutil

import pytest

from ltr.errors import ConfigError
from pipelines.scoring import ScoreOptions, read_scored, score_to_parquet
from tests.pipelines.helpers import ltr


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"drop_features": True}, "drop features"),
        ({"partition_rows": 1000}, "partition rows"),
        ({"qid_column": "doc_id"}, "qid column"),
        ({"feature_columns": ["model"]}, "feature columns"),
        ({"compression": "zstd"}, "compression"),
    ],
)
def test_resume_of_a_finished_job_with_other_options_is_refused(
    model_dir, aligned_parquet, tmp_path, changed, named
):
    out = tmp_path / "out"
    score_to_parquet(model_dir, aligned_parquet, out, ScoreOptions(partition_rows=2000))
    before = read_scored(out)
    options = ScoreOptions(**{"partition_rows": 2000, "resume": True, **changed})
    with pytest.raises(ConfigError, match=f"started with another {named}.*--overwrite"):
        score_to_parquet(model_dir, aligned_parquet, out, options)
    assert read_scored(out).equals(before)  # the old output is left as it was
    same = ScoreOptions(partition_rows=2000, resume=True)  # the same options: nothing to do
    result = score_to_parquet(model_dir, aligned_parquet, out, same)
    assert result.notes == ["the job was already complete; nothing to do"]


def test_resume_with_another_backend_says_so(model_dir, mq2008_dir, aligned_parquet, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    proc = ltr("export", "--model", model, "--data", mq2008_dir / "S5.txt.xz", "--max-lists", 8)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    argv = ["score", "--model", model, "--input", aligned_parquet, "--output", out, "--quiet"]
    assert ltr(*argv, "--backend", "onnx").returncode == 0
    (out / "_SUCCESS").unlink()  # unfinished, and finished: the same answer
    for _ in range(2):
        proc = ltr(*argv, "--backend", "torch", "--resume")
        assert proc.returncode == 2
        assert proc.stderr == (
            f"ltr score: error: cannot resume {out}: its job was started with the onnx backend, "
            "not torch; pass --backend onnx to resume it or --overwrite to start over\n"
        )
        assert ltr(*argv, "--backend", "onnx", "--resume").returncode == 0


def test_an_unfinished_job_keeps_one_codec(model_dir, aligned_parquet, tmp_path):
    """Resuming with another --compression would write the rest of the partitions in another
    codec: refused. A manifest written before the codec was recorded had the default."""
    import json

    import pyarrow.parquet as pq

    out = tmp_path / "out"
    score_to_parquet(model_dir, aligned_parquet, out, ScoreOptions(partition_rows=2000))
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) > 1
    (out / "_SUCCESS").unlink()
    parts[-1].unlink()  # as if killed before the last partition
    with pytest.raises(ConfigError, match="started with another compression"):
        score_to_parquet(
            model_dir, aligned_parquet, out,
            ScoreOptions(partition_rows=2000, resume=True, compression="zstd"),
        )  # fmt: skip
    manifest = out / "_manifest.json"
    job = json.loads(manifest.read_text())
    del job["compression"]  # an older ltr's manifest
    manifest.write_text(json.dumps(job))
    resumed = ScoreOptions(partition_rows=2000, resume=True)
    score_to_parquet(model_dir, aligned_parquet, out, resumed)
    codecs = {pq.ParquetFile(p).metadata.row_group(0).column(0).compression for p in parts}
    assert codecs == {"SNAPPY"}
