"""Loading text collections from synthetic folders, their errors, subsets and query splits."""

from __future__ import annotations

import gzip
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from ltr.errors import ConfigError, DataFormatError
from ltr.text.collection import TextCollection, load_collection, split_queries

DOCS = [
    {"doc_id": "d1", "title": "Wing flutter", "text": "Flutter of swept wings."},
    {"doc_id": 2, "title": "", "text": "Heat transfer in slabs."},  # numeric id, empty title
    {"doc_id": "d3", "title": "Boundary layers", "text": ""},  # empty abstract
    {"doc_id": "d4", "text": "No title at all."},
]
QUERIES = [
    {"query_id": "q1", "text": "wing flutter"},
    {"query_id": 7, "text": "heat slabs"},
    {"query_id": "q3", "text": "never judged"},
]
QRELS = "doc_id\textra\trelevance\tquery_id\nd1\tx\t2\tq1\nd3\ty\t0\tq1\n2\tz\t1.5\t7\n"


def write_jsonl(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.name.endswith(".xz"):
        with lzma.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def make_collection(root: Path, docs_name: str = "docs.jsonl.xz", qrels: str = QRELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / docs_name, DOCS)
    write_jsonl(root / "queries.jsonl", QUERIES)
    (root / "qrels.tsv").write_text(qrels, encoding="utf-8")
    return root


@pytest.mark.parametrize("docs_name", ["docs.jsonl", "docs.jsonl.xz", "docs.jsonl.gz"])
def test_load_contents(tmp_path, docs_name):
    c = load_collection(make_collection(tmp_path / "toy", docs_name))
    assert c.name == "toy"
    assert c.doc_ids == ["d1", "2", "d3", "d4"]
    assert c.doc_texts == [
        "Wing flutter\nFlutter of swept wings.",
        "Heat transfer in slabs.",
        "Boundary layers",
        "No title at all.",
    ]
    assert c.query_ids == ["q1", "7"]  # q3 has no judgment
    assert c.query_texts == ["wing flutter", "heat slabs"]
    assert c.qrels == {"q1": {"d1": 2.0, "d3": 0.0}, "7": {"2": 1.5}}
    assert c.doc_position() == {"d1": 0, "2": 1, "d3": 2, "d4": 3}


def test_keep_unjudged_queries(tmp_path):
    c = load_collection(make_collection(tmp_path / "toy"), judged_only=False)
    assert c.query_ids == ["q1", "7", "q3"]
    assert c.query_texts[2] == "never judged"
    assert "q3" not in c.qrels
    assert c.labels("q3", ["d1", "2"]).tolist() == [0.0, 0.0]


def test_labels(tmp_path):
    c = load_collection(make_collection(tmp_path / "toy"))
    labels = c.labels("q1", ["d4", "d1", "d3", "2"])
    assert labels.dtype == np.float32
    assert labels.tolist() == [0.0, 2.0, 0.0, 0.0]
    assert c.labels("7", ["2", "d1"]).tolist() == [1.5, 0.0]
    assert c.labels("q1", []).shape == (0,)
    with pytest.raises(ConfigError, match="'nope' is not in collection"):
        c.labels("nope", ["d1"])


def test_subset(tmp_path):
    c = load_collection(make_collection(tmp_path / "toy"), judged_only=False)
    sub = c.subset(["q3", "q1"])
    assert sub.query_ids == ["q3", "q1"]
    assert sub.query_texts == ["never judged", "wing flutter"]
    assert sub.qrels == {"q1": {"d1": 2.0, "d3": 0.0}}
    assert sub.doc_ids == c.doc_ids and sub.doc_texts == c.doc_texts
    with pytest.raises(ConfigError, match=r"'zz' is not in collection 'toy' \(2 unknown ids\)"):
        c.subset(["q1", "zz", "yy"])
    with pytest.raises(ConfigError, match="duplicates"):
        c.subset(["q1", "q1"])


def test_split_files(tmp_path):
    root = tmp_path / "sci"
    root.mkdir()
    write_jsonl(root / "docs.jsonl.xz", DOCS)
    write_jsonl(root / "queries_dev.jsonl", QUERIES[:2])
    (root / "qrels_dev.tsv").write_text("query_id\tdoc_id\trelevance\nq1\td4\t1\n")
    write_jsonl(root / "queries_test.jsonl", QUERIES[2:])
    dev = load_collection(root, split="dev")
    assert dev.name == "sci/dev"
    assert dev.query_ids == ["q1"] and dev.qrels == {"q1": {"d4": 1.0}}
    with pytest.raises(ConfigError, match="no judged query in sci/test"):
        load_collection(root, split="test")
    test = load_collection(root, split="test", judged_only=False)
    assert test.query_ids == ["q3"] and test.qrels == {}
    with pytest.raises(DataFormatError, match=r"looked for queries\.jsonl"):
        load_collection(root)
    with pytest.raises(ConfigError, match="plain name"):
        load_collection(root, split="../dev")


def test_no_judged_query_when_qrels_empty(tmp_path):
    root = make_collection(tmp_path / "toy", qrels="query_id\tdoc_id\trelevance\n")
    with pytest.raises(ConfigError, match="no judged query in toy"):
        load_collection(root)
    assert load_collection(root, judged_only=False).query_ids == ["q1", "7", "q3"]


def test_missing_root_and_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_collection(tmp_path / "absent")
    root = make_collection(tmp_path / "toy")
    (root / "docs.jsonl.xz").unlink()
    with pytest.raises(
        DataFormatError, match=r"looked for docs\.jsonl, docs\.jsonl\.xz, docs\.jsonl\.gz"
    ):
        load_collection(root)


def broken(tmp_path: Path, docs: str | None = None, queries: str | None = None, qrels=QRELS):
    root = make_collection(tmp_path / "toy", "docs.jsonl", qrels=qrels)
    if docs is not None:
        (root / "docs.jsonl").write_text(docs)
    if queries is not None:
        (root / "queries.jsonl").write_text(queries)
    return root


GOOD_DOCS = "".join(json.dumps(d) + "\n" for d in DOCS)
GOOD_QUERIES = "".join(json.dumps(q) + "\n" for q in QUERIES)


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"docs": GOOD_DOCS + "{not json\n"}, r"docs\.jsonl, line 5: not valid JSON"),
        ({"docs": GOOD_DOCS + "[1, 2]\n"}, r"docs\.jsonl, line 5: expected a JSON object"),
        ({"docs": '{"text": "x"}\n'}, r"docs\.jsonl, line 1: the object has no 'doc_id' field"),
        ({"docs": '{"doc_id": "a"}\n'}, r"docs\.jsonl, line 1: the object has no 'text' field"),
        ({"docs": '{"doc_id": 1.5, "text": "x"}\n'}, "line 1: doc_id must be a string or an"),
        ({"docs": '{"doc_id": "a", "text": 3}\n'}, "line 1: 'text' must be a string"),
        ({"docs": "\n\n"}, r"docs\.jsonl has no document"),
        (
            {"docs": GOOD_DOCS + '\n{"doc_id": "d1", "text": "again"}\n'},
            r"docs\.jsonl, line 6: duplicate doc_id 'd1' \(first on line 1\)",
        ),
        (
            {"queries": GOOD_QUERIES + '{"query_id": "7", "text": "again"}\n'},
            r"queries\.jsonl, line 4: duplicate query_id '7' \(first on line 2\)",
        ),
        ({"queries": '{"text": "x"}\n'}, r"queries\.jsonl, line 1: the object has no 'query_id'"),
        (
            {"qrels": "query_id\tdoc\trelevance\nq1\td1\t1\n"},
            r"qrels\.tsv, line 1: the header lacks column doc_id",
        ),
        ({"qrels": ""}, r"qrels\.tsv, line 1: the header lacks column query_id, doc_id, relevance"),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\n"},
            r"qrels\.tsv, line 2: 2 tab-separated fields, the header has 3",
        ),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\t1\nq1\td3\thigh\n"},
            r"qrels\.tsv, line 3: relevance 'high' is not a finite number",
        ),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\tnan\n"},
            r"line 2: relevance 'nan' is not a finite number",
        ),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\t1\nq1\tx9\t1\nq1\tx8\t1\n7\tx9\t1\n"},
            r"qrels\.tsv, line 3: doc_id 'x9' is not in docs\.jsonl \(3 rows, 2 distinct unknown",
        ),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\t1\nq9\td1\t1\n"},
            r"qrels\.tsv, line 3: query_id 'q9' is not in queries\.jsonl \(1 rows, 1 distinct",
        ),
        (
            {"qrels": "query_id\tdoc_id\trelevance\nq1\td1\t1\nq1\td3\t0\nq1\td1\t2\n"},
            r"qrels\.tsv, line 4: query 'q1' judges doc 'd1' twice",
        ),
    ],
)
def test_format_errors(tmp_path, files, match):
    with pytest.raises(DataFormatError, match=match):
        load_collection(broken(tmp_path, **files))


def test_damaged_compressed_file(tmp_path):
    root = make_collection(tmp_path / "toy", "docs.jsonl.xz")
    (root / "docs.jsonl.xz").write_bytes(b"not xz at all")
    with pytest.raises(DataFormatError, match="compressed file is damaged"):
        load_collection(root)


def test_collection_checks_lengths():
    with pytest.raises(ConfigError, match="2 doc ids but 1 doc texts"):
        TextCollection("x", ["a", "b"], ["t"], [], [], {})


# ---------------------------------------------------------------------------------- split_queries
IDS = [f"q{i}" for i in range(20)]


def test_split_partitions_in_file_order():
    train, val, test = split_queries(IDS)
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert sorted(train + val + test) == sorted(IDS)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    for part in (train, val, test):
        assert part == [q for q in IDS if q in part]


def test_split_is_deterministic_and_seeded():
    assert split_queries(IDS, seed=3) == split_queries(IDS, seed=3)
    assert split_queries(IDS, seed=3) != split_queries(IDS, seed=4)


@pytest.mark.parametrize(
    ("n", "fractions", "sizes"),
    [
        (10, (0.5, 0.25, 0.25), (5, 3, 2)),  # 2.5 and 2.5 share the leftover, first part first
        (3, (0.6, 0.2, 0.2), (1, 1, 1)),  # every part gets one
        (4, (0.9, 0.05, 0.05), (2, 1, 1)),
        (5, (1.0, 0.0, 0.0), (5, 0, 0)),  # a zero fraction gives an empty part
        (7, (0.7, 0.3, 0.0), (5, 2, 0)),
    ],
)
def test_split_sizes(n, fractions, sizes):
    parts = split_queries([str(i) for i in range(n)], fractions, seed=1)
    assert tuple(len(p) for p in parts) == sizes


@pytest.mark.parametrize(
    ("ids", "fractions", "match"),
    [
        (IDS, (0.5, 0.5), "three non-negative numbers"),
        (IDS, (0.6, 0.3, 0.2), "summing to 1"),
        (IDS, (1.2, -0.1, -0.1), "non-negative"),
        (["a", "b"], (0.6, 0.2, 0.2), "cannot split 2 queries into 3 non-empty parts"),
        (["a", "b", "a"], (0.6, 0.2, 0.2), "duplicates"),
    ],
)
def test_split_errors(ids, fractions, match):
    with pytest.raises(ConfigError, match=match):
        split_queries(ids, fractions)
