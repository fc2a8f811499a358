"""Kill ``ltr score`` with SIGKILL mid-run, resume it, and check that nothing is lost or doubled."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.scoring import ScoreOptions, read_scored, score_to_parquet
from pipelines.synthetic import write_synthetic
from tests.pipelines.helpers import LTR

ROWS = 60_000
PARTITION_ROWS = 1_000  # 60 partitions


@pytest.mark.slow
def test_kill_then_resume_scores_every_row_exactly_once(model_dir, tmp_path):
    data = write_synthetic(
        tmp_path / "in.parquet", ROWS, row_group_rows=500, align_row_groups=False, seed=11
    )
    out = tmp_path / "out"
    command = [
        *(LTR, "score", "--model", str(model_dir), "--input", str(data)),
        *(
            "--output",
            str(out),
            "--partition-rows",
            str(PARTITION_ROWS),
            "--quiet",
            "--threads",
            "1",
        ),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("part-*.parquet")):  # wait for the first finished partition
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no partition was written"
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no clean-up handlers run
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -9
    written = sorted(p.name for p in out.glob("part-*.parquet"))
    assert not (out / "_SUCCESS").exists(), "the job finished before it could be killed"
    assert 1 <= len(written) < ROWS // PARTITION_ROWS

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.glob(".*.tmp"))
    got = read_scored(out)

    # every input (qid, doc_id) exactly once
    source = pq.read_table(data, columns=["qid", "doc_id"])
    want_keys = _keys(source)
    got_keys = _keys(got)
    assert len(got_keys) == ROWS == len(set(got_keys))
    assert got_keys == want_keys
    # and the scores of an uninterrupted run
    clean = tmp_path / "clean"
    score_to_parquet(model_dir, data, clean, ScoreOptions(partition_rows=PARTITION_ROWS))
    np.testing.assert_allclose(
        got.column("score").to_numpy(), read_scored(clean).column("score").to_numpy(), atol=1e-6
    )
    np.testing.assert_array_equal(
        got.column("rank").to_numpy(), read_scored(clean).column("rank").to_numpy()
    )


def _keys(table) -> list[tuple[str, str]]:
    qids, docs = table.column("qid").to_pylist(), table.column("doc_id").to_pylist()
    return list(zip(qids, docs, strict=True))
