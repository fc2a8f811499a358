"""Parquet conversion: schema, counts, row groups that never split a query, atomic writes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.cli import main
from ltr.data.convert import convert_files
from ltr.data.parquet import ParquetListWriter, read_parquet
from ltr.data.svmlight import read_svmlight


def test_convert_mq2008_s1_gives_2933_rows_and_157_queries(mq2008_dir, tmp_path, capsys):
    out = tmp_path / "s1.parquet"
    assert main(["convert", str(mq2008_dir / "S1.txt.xz"), str(out)]) == 0
    table = pq.read_table(out)  # read back with pyarrow alone
    assert table.num_rows == 2933
    assert len(set(table.column("qid").to_pylist())) == 157
    assert "2,933" in capsys.readouterr().out


def test_schema_is_explicit(mq2008_dir, tmp_path):
    out = tmp_path / "s1.parquet"
    convert_files([mq2008_dir / "S1.txt.xz"], out)
    schema = pq.read_schema(out)
    assert schema.field("qid").type == pa.string() and not schema.field("qid").nullable
    assert schema.field("doc_id").type == pa.string()
    assert schema.field("label").type == pa.float32()
    assert schema.field("features").type == pa.list_(pa.float32(), 46)


def test_queries_never_straddle_row_groups(mq2008_dir, tmp_path):
    out = tmp_path / "s.parquet"
    convert_files([mq2008_dir / "S1.txt.xz", mq2008_dir / "S2.txt.xz"], out, row_group_rows=400)
    file = pq.ParquetFile(out)
    assert file.num_row_groups > 10
    seen: set[str] = set()
    previous_last = None
    for i in range(file.num_row_groups):
        qids = file.read_row_group(i, columns=["qid"]).column("qid").to_pylist()
        assert qids[0] != previous_last, f"row group {i} continues the previous group's query"
        # rows of a query are contiguous: each query id forms one run
        runs = [q for j, q in enumerate(qids) if j == 0 or q != qids[j - 1]]
        assert len(runs) == len(set(runs))
        assert not set(runs) & seen
        seen |= set(runs)
        previous_last = qids[-1]
    assert len(seen) == 314


def test_round_trip_equals_reader(mq2008_dir, tmp_path):
    out = tmp_path / "s5.parquet"
    convert_files([mq2008_dir / "S5.txt.xz"], out, row_group_rows=1000)
    direct = read_svmlight(mq2008_dir / "S5.txt.xz")
    back, names = read_parquet(out)
    assert names == [f"f{i}" for i in range(1, 47)]
    np.testing.assert_array_equal(back.features, direct.features)
    np.testing.assert_array_equal(back.labels, direct.labels)
    assert back.qids.tolist() == direct.qids.tolist()
    assert back.doc_ids.tolist() == direct.doc_ids.tolist()


def test_malformed_line_fails_cleanly_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_text("1 qid:1 1:0.5 2:1\n0 qid:1 1:0.25 2:oops\n")
    out = tmp_path / "out.parquet"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'oops'" in err and str(src) in err
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


def test_crash_mid_write_keeps_previous_output(mq2008_dir, tmp_path):
    out = tmp_path / "s1.parquet"
    convert_files([mq2008_dir / "S1.txt.xz"], out)
    before = out.read_bytes()
    rows = read_svmlight(mq2008_dir / "S2.txt.xz")
    with pytest.raises(RuntimeError), ParquetListWriter(out, 46, row_group_rows=100) as writer:
        writer.write(rows)
        raise RuntimeError("simulated crash")
    assert out.read_bytes() == before


def test_output_must_be_parquet(mq2008_dir, tmp_path, capsys):
    assert main(["convert", str(mq2008_dir / "S1.txt.xz"), str(tmp_path / "x.csv")]) == 2
    assert "must be a .parquet file" in capsys.readouterr().err


def test_parquet_given_as_letor_input_is_named_not_decoded(mq2008_dir, tmp_path, capsys):
    parquet = tmp_path / "s1.parquet"
    convert_files([mq2008_dir / "S1.txt.xz"], parquet)
    out = tmp_path / "out.parquet"
    assert main(["convert", str(parquet), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert f"{parquet} is a Parquet file" in err and "needs no conversion" in err
    assert not out.exists()
