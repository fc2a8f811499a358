"""The SVMlight/LETOR reader against scikit-learn's independent reader, and its error messages."""

from __future__ import annotations

import gzip
import lzma
import math

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

from ltr.data.svmlight import iter_svmlight, read_svmlight, scan_num_features
from ltr.errors import DataFormatError


def test_mq2008_s1_matches_sklearn_reader(mq2008_dir, tmp_path):
    raw = tmp_path / "S1.txt"
    raw.write_bytes(lzma.decompress((mq2008_dir / "S1.txt.xz").read_bytes()))
    x_ref, y_ref, q_ref = load_svmlight_file(str(raw), query_id=True, zero_based=False)
    rows = read_svmlight(mq2008_dir / "S1.txt.xz")
    assert len(rows) == 2933
    assert len(set(rows.qids)) == 157
    np.testing.assert_array_equal(rows.labels, y_ref.astype(np.float32))
    np.testing.assert_allclose(rows.features, x_ref.toarray(), rtol=0, atol=1e-7)
    assert [int(q) for q in rows.qids] == q_ref.tolist()
    assert rows.doc_ids[0] == "GX008-86-4444840"


def test_plain_gzip_and_xz_read_the_same(tmp_path):
    text = "2 qid:7 1:0.5 3:1.5 #docid = A\n0 qid:7 2:-1 #docid = B\n1 qid:9 1:2\n"
    (tmp_path / "d.txt").write_text(text)
    (tmp_path / "d.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "d.txt.xz").write_bytes(lzma.compress(text.encode()))
    reads = [read_svmlight(tmp_path / n) for n in ("d.txt", "d.txt.gz", "d.txt.xz")]
    for r in reads:
        np.testing.assert_array_equal(r.features, [[0.5, 0, 1.5], [0, -1, 0], [2, 0, 0]])
        assert r.labels.tolist() == [2, 0, 1]
        assert r.qids.tolist() == ["7", "7", "9"]
        assert r.doc_ids.tolist() == ["A", "B", None]


def test_null_values_become_nan(tmp_path):
    (tmp_path / "d.txt").write_text("1 qid:1 1:NULL 2:3\n0 qid:1 1:1 2:nan\n")
    rows = read_svmlight(tmp_path / "d.txt")
    assert math.isnan(rows.features[0, 0]) and rows.features[0, 1] == 3
    assert math.isnan(rows.features[1, 1])


def test_lightgbm_style_group_file(lightgbm_example_dir, tmp_path):
    data = lightgbm_example_dir / "rank.test.xz"
    groups = [int(x) for x in (lightgbm_example_dir / "rank.test.query").read_text().split()]
    rows = read_svmlight(data, group_file=lightgbm_example_dir / "rank.test.query")
    assert len(rows) == sum(groups) == 768
    _, sizes = np.unique(rows.qids.astype(int), return_counts=True)
    assert sizes.tolist() == groups
    raw = tmp_path / "rank.test"
    raw.write_bytes(lzma.decompress(data.read_bytes()))
    x_ref, y_ref = load_svmlight_file(str(raw), zero_based=False, n_features=300)
    np.testing.assert_allclose(rows.features, x_ref.toarray(), atol=1e-7)
    np.testing.assert_array_equal(rows.labels, y_ref)


def test_chunks_hold_whole_queries(mq2008_dir):
    whole = read_svmlight(mq2008_dir / "S1.txt.xz")
    chunks = list(iter_svmlight(mq2008_dir / "S1.txt.xz", chunk_rows=300))
    assert len(chunks) > 5
    seen: set[str] = set()
    for c in chunks:
        qs = set(c.qids)
        assert not qs & seen, "a query was split across chunks"
        seen |= qs
    np.testing.assert_array_equal(np.concatenate([c.features for c in chunks]), whole.features)


BAD_LINES = [
    ("x qid:1 1:0.5", "label 'x' is not a number"),
    ("-1 qid:1 1:0.5", "label must be a finite number >= 0"),
    ("1 qid:1 1=0.5", "not of the form index:value"),
    ("1 qid:1 a:0.5", "feature index 'a' is not an integer"),
    ("1 qid:1 0:0.5", "below 1"),
    ("1 qid:1 2:0.5 2:0.7", "repeats or is out of increasing order"),
    ("1 qid:1 1:abc", "value 'abc' of feature 1 is not a number"),
    ("1 qid:1 1:inf", "infinite"),
    ("1 qid:1 9:1", "above the feature count 3"),
    ("1 1:0.5 qid:1", "'qid:' must come right after the label"),
    ("1 qid: 1:0.5", "empty query id"),
    ("1 1:0.5", "no 'qid:' on the line"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_malformed_line_names_file_line_and_fault(tmp_path, line, reason):
    path = tmp_path / "bad.txt"
    path.write_text(f"0 qid:1 1:0.1 3:0.2\n# a comment line\n{line}\n0 qid:2 1:0.3\n")
    with pytest.raises(DataFormatError) as err:
        read_svmlight(path, num_features=3)
    message = str(err.value)
    assert str(path) in message
    assert "line 3:" in message
    assert reason in message


def test_non_contiguous_query_is_an_error(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("1 qid:1 1:1\n0 qid:2 1:1\n0 qid:1 1:2\n")
    with pytest.raises(DataFormatError, match=r"line 3: query '1' appears again"):
        read_svmlight(path)


@pytest.mark.parametrize(
    ("sizes", "reason"),
    [
        ("2\n", "more rows than the group file"),
        ("2\n2\n", "accounts for 4 rows but the data file has 3"),
    ],
)
def test_group_sizes_must_add_up(tmp_path, sizes, reason):
    (tmp_path / "d.txt").write_text("1 1:1\n0 1:2\n2 1:3\n")
    (tmp_path / "d.query").write_text(sizes)
    with pytest.raises(DataFormatError, match=reason):
        read_svmlight(tmp_path / "d.txt", group_file=tmp_path / "d.query")


def test_qid_and_group_file_together_is_an_error(tmp_path):
    (tmp_path / "d.txt").write_text("1 qid:1 1:1\n")
    (tmp_path / "d.query").write_text("1\n")
    with pytest.raises(DataFormatError, match="use one or the other"):
        read_svmlight(tmp_path / "d.txt", group_file=tmp_path / "d.query")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_svmlight(tmp_path / "absent.txt")


def _parquet_file(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": list(range(1000))}), path)
    return path


@pytest.mark.parametrize("reader", ["read_svmlight", "scan_num_features", "group_file"])
def test_parquet_is_refused_by_every_reader_as_parquet(reader, tmp_path):
    parquet = _parquet_file(tmp_path / "d.parquet")
    (tmp_path / "d.txt").write_text("1 1:1\n")
    with pytest.raises(DataFormatError, match=r"d\.parquet is a Parquet file .*b'PAR1'") as info:
        if reader == "read_svmlight":
            read_svmlight(parquet)
        elif reader == "scan_num_features":
            scan_num_features(parquet)
        else:
            read_svmlight(tmp_path / "d.txt", group_file=parquet)
    assert "read Parquet files named *.parquet directly" in str(info.value)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (bytes(range(256)) * 4, "binary content"),
        (lzma.compress(lzma.compress(b"1 qid:1 1:1\n")), "xz-compressed content"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(128, 256)), "zip content"),
    ],
)
def test_binary_input_is_named_not_decoded(content, kind, tmp_path):
    path = tmp_path / "d.bin"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=f"d.bin is not a LETOR/SVMlight text file \\({kind}"):
        read_svmlight(path)


def test_invalid_utf8_after_the_first_block_names_the_file(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"1 qid:1 1:1\n" * 2000 + b"1 qid:1 1:1 # caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"d\.txt: not valid UTF-8 text after line \d+"):
        read_svmlight(path)


def test_utf8_character_cut_by_the_sniffed_block_is_text(tmp_path):
    path = tmp_path / "d.txt"
    line = "1 qid:1 1:1 # docid = é\n".encode()
    cut = 4096 - line.index("é".encode()) - 1  # the first sniffed block ends inside the é
    path.write_bytes(b" " * cut + line)
    assert read_svmlight(path).doc_ids.tolist() == ["é"]
