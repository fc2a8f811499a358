"""``ltr score`` (local engine) against the offline evaluation path, on real Parquet/LETOR files."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.artifact import load_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.errors import ConfigError, DataFormatError
from ltr.inference import score_lists
from pipelines.scoring import ScoreOptions, read_scored, score_to_parquet
from tests.pipelines.helpers import LTR, reference_ranks


def test_cli_scores_letor_like_ltr_evaluate(model_dir, mq2008_dir, tmp_path):
    out = tmp_path / "scored"
    proc = subprocess.run(
        [
            *(LTR, "score", "--model", str(model_dir)),
            *("--input", str(mq2008_dir / "S5.txt.xz"), "--output", str(out)),
            *("--partition-rows", "1000", "--threads", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scored 2,874 of 2,874 rows" in proc.stdout
    table = read_scored(out)
    data = load_dataset(mq2008_dir / "S5.txt.xz")
    # ltr evaluate's offline path: the artifact's model through ltr.inference.score_lists
    want = score_lists(load_model(model_dir).model, data)
    np.testing.assert_allclose(table.column("score").to_numpy(), want, rtol=0, atol=1e-6)
    # every input column comes through unchanged, in input order
    assert table.column_names == ["qid", "doc_id", "label", "features", "score", "rank"]
    qids = np.asarray(table.column("qid").to_pylist(), dtype=object)
    assert np.array_equal(qids, np.repeat(data.qids, data.list_lengths))
    assert np.array_equal(table.column("doc_id").to_pylist(), data.doc_ids.tolist())
    assert np.array_equal(table.column("label").to_numpy(), data.labels)
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    assert np.array_equal(feats, data.features)
    ranks = table.column("rank").to_numpy()
    assert np.array_equal(ranks, reference_ranks(table.column("score").to_numpy(), qids))
    assert table.schema.field("score").type == pa.float32()
    assert table.schema.field("rank").type == pa.int32()
    # the staged LETOR conversion is removed once the job has succeeded
    assert sorted(p.name for p in out.iterdir())[:2] == ["_SUCCESS", "_manifest.json"]
    assert len(list(out.glob("part-*.parquet"))) == 3


def test_straddling_row_groups_give_whole_lists(
    model_dir, straddled_parquet, aligned_parquet, tmp_path
):
    options = ScoreOptions(partition_rows=700, progress=False)
    a = score_to_parquet(model_dir, straddled_parquet, tmp_path / "a", options)
    assert a.partitions > 5
    straddled = read_scored(tmp_path / "a")
    data = load_dataset(aligned_parquet)  # same rows, written query-aligned
    want = score_lists(load_model(model_dir).model, data)
    assert straddled.num_rows == data.num_rows
    assert straddled.column("doc_id").to_pylist() == data.doc_ids.tolist()  # once, in order
    np.testing.assert_allclose(straddled.column("score").to_numpy(), want, rtol=0, atol=1e-6)


def test_non_contiguous_query_is_a_clear_error(model_dir, straddled_parquet, tmp_path, capsys):
    table = pq.read_table(straddled_parquet)
    moved = pa.concat_tables([table.slice(0, 5), table.slice(300, 200), table.slice(5, 295)])
    bad = tmp_path / "bad.parquet"
    pq.write_table(moved, bad, row_group_size=100)
    first_qid = table.column("qid")[0].as_py()
    code = main(
        [
            "score",
            "--model",
            str(model_dir),
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"query {first_qid!r} appears in two separate places" in err
    assert "sort the input by query id" in err
    assert not list((tmp_path / "out").glob("part-*"))


def test_a_job_that_fails_before_writing_removes_the_folders_it_made(model_dir, tmp_path, capsys):
    """Scoring a file that is not LETOR fails before any output is written: the output folder
    (and the parent it made) go with it; a folder that was there already is left as it was."""
    not_letor = tmp_path / "README.md"
    not_letor.write_text("# A title\n\nOn one line, words.\n")
    out = tmp_path / "scoredy" / "run1"
    argv = ["score", "--model", str(model_dir), "--input", str(not_letor), "--quiet"]
    assert main([*argv, "--output", str(out)]) == 2
    assert "line 3: label 'On' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "scoredy").exists()
    kept = tmp_path / "mine"
    kept.mkdir()
    assert main([*argv, "--output", str(kept)]) == 2
    assert kept.is_dir() and list(kept.iterdir()) == []


def test_existing_output_needs_resume_or_overwrite(model_dir, aligned_parquet, tmp_path):
    out = tmp_path / "out"
    options = ScoreOptions(partition_rows=2000, progress=False)
    first = score_to_parquet(model_dir, aligned_parquet, out, options)
    with pytest.raises(ConfigError, match=r"pass --resume .* or --overwrite"):
        score_to_parquet(model_dir, aligned_parquet, out, options)
    done = score_to_parquet(
        model_dir, aligned_parquet, out, ScoreOptions(partition_rows=2000, resume=True)
    )
    assert done.scored_rows == 0 and done.skipped_partitions == first.partitions
    again = score_to_parquet(
        model_dir, aligned_parquet, out, ScoreOptions(partition_rows=2000, overwrite=True)
    )
    assert again.scored_rows == 6000
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no `ltr score` job"):
        score_to_parquet(model_dir, aligned_parquet, tmp_path / "foreign", options)


def test_resume_fills_in_missing_partitions_and_drops_stale_tmp(
    model_dir, other_model_dir, straddled_parquet, tmp_path
):
    out = tmp_path / "out"
    options = ScoreOptions(partition_rows=1000, progress=False)
    full = score_to_parquet(model_dir, straddled_parquet, out, options)
    clean = read_scored(out)
    # simulate a crash: two partitions and _SUCCESS missing, a half-written partition left over
    for name in ("part-00001.parquet", "part-00004.parquet", "_SUCCESS"):
        (out / name).unlink()
    (out / ".part-00001.parquet.tmp").write_bytes(b"PAR1 half written")
    with pytest.raises(ConfigError, match="another model"):
        score_to_parquet(
            other_model_dir, straddled_parquet, out, ScoreOptions(resume=True, partition_rows=1000)
        )
    resumed = score_to_parquet(
        model_dir, straddled_parquet, out, ScoreOptions(partition_rows=1000, resume=True)
    )
    assert resumed.skipped_partitions == full.partitions - 2
    assert 0 < resumed.scored_rows < 6000
    assert not list(out.glob(".*.tmp"))
    again = read_scored(out)
    assert again.column("doc_id").to_pylist() == clean.column("doc_id").to_pylist()
    np.testing.assert_array_equal(
        again.column("score").to_numpy(), clean.column("score").to_numpy()
    )


def test_feature_columns_input(model_dir, aligned_parquet, tmp_path):
    table = pq.read_table(aligned_parquet)
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    names = load_model(model_dir).manifest.feature_names
    wide = pa.table(
        {
            "query": table.column("qid"),
            "doc": table.column("doc_id"),
            **{n: feats[:, j].astype(np.float64) for j, n in enumerate(names)},
        }
    )
    pq.write_table(wide, tmp_path / "wide.parquet", row_group_size=333)
    code = main(
        [
            "score",
            "--model",
            str(model_dir),
            "--input",
            str(tmp_path / "wide.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--feature-columns",
            "model",
            "--qid-column",
            "query",
            "--quiet",
        ]
    )
    assert code == 0
    got = read_scored(tmp_path / "out")
    assert got.column_names == ["query", "doc", *names, "score", "rank"]
    want = score_lists(load_model(model_dir).model, load_dataset(aligned_parquet))
    np.testing.assert_allclose(got.column("score").to_numpy(), want, rtol=0, atol=1e-6)
    options = ScoreOptions(feature_columns=["model"], qid_column="query", drop_features=True)
    score_to_parquet(model_dir, tmp_path / "wide.parquet", tmp_path / "slim", options)
    slim = read_scored(tmp_path / "slim")
    assert slim.column_names == ["query", "doc", "score", "rank"]
    np.testing.assert_array_equal(slim.column("score").to_numpy(), got.column("score").to_numpy())


def test_wrong_feature_count_is_a_clear_error(model_dir, tmp_path):
    from pipelines.synthetic import write_synthetic

    path = write_synthetic(tmp_path / "f10.parquet", 200, num_features=10)
    with pytest.raises(DataFormatError, match="10 features per row but the model expects 46"):
        score_to_parquet(model_dir, path, tmp_path / "out")


def test_small_pieces_give_the_same_scores(model_dir, straddled_parquet, tmp_path):
    big = score_to_parquet(model_dir, straddled_parquet, tmp_path / "big", ScoreOptions())
    small = ScoreOptions(piece_rows=100, io_threads=False)
    score_to_parquet(model_dir, straddled_parquet, tmp_path / "small", small)
    assert big.rows == 6000
    a, b = read_scored(tmp_path / "big"), read_scored(tmp_path / "small")
    assert a.column("doc_id").to_pylist() == b.column("doc_id").to_pylist()
    scores_a, scores_b = a.column("score").to_numpy(), b.column("score").to_numpy()
    np.testing.assert_allclose(scores_a, scores_b, rtol=0, atol=1e-6)
    assert a.column("rank").to_pylist() == b.column("rank").to_pylist()


def test_coalesce_joins_whole_tables_in_order_up_to_the_target():
    import pyarrow as pa

    from pipelines.tables import coalesce

    sizes = [3, 4, 5, 2, 1]
    tables, start = [], 0
    for n in sizes:
        tables.append(pa.table({"qid": [f"q{start}"] * n, "row": list(range(start, start + n))}))
        start += n
    out = list(coalesce(tables, 6))
    assert [len(t) for t in out] == [7, 7, 1]  # 3+4, 5+2, then the rest
    assert pa.concat_tables(out).column("row").to_pylist() == list(range(sum(sizes)))
    assert [len(t) for t in coalesce(tables, 1)] == sizes  # already big enough: unchanged
    assert [len(t) for t in coalesce(tables, 6, first_rows=2)] == [3, 9, 3]  # small first


def test_ramped_pieces_start_small_keep_queries_whole_and_order():
    import itertools

    import pyarrow as pa

    from pipelines.tables import ramped_pieces

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=60)  # 60 queries of 1-8 rows
    qids = np.repeat(np.arange(60), lengths)
    row = np.arange(len(qids))
    cuts = [0, 50, 51, 130, len(qids)]  # row groups that straddle no query: cut at query starts
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
    cuts = sorted({int(starts[np.searchsorted(starts, c)]) if c < len(qids) else c for c in cuts})
    tables = [
        pa.table({"qid": [f"q{q}" for q in qids[a:b]], "row": row[a:b]})
        for a, b in itertools.pairwise(cuts)
        if b > a
    ]
    out = list(ramped_pieces(tables, "qid", rows=40, first_rows=10))
    assert pa.concat_tables(out).column("row").to_pylist() == row.tolist()  # all rows, in order
    assert 10 <= len(out[0]) < 10 + 8  # the first piece: the first whole queries past 10 rows
    assert max(len(t) for t in out[1:]) >= 40  # later ones grow to the target
    seen = set()
    for t in out:  # no query split between pieces
        names = set(t.column("qid").to_pylist())
        assert not names & seen
        seen |= names
