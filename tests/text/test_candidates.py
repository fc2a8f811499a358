"""BM25 candidate lists: top-k order and labels against BM25 scores and qrels looked up in the
test, recall by hand, query splits."""

from __future__ import annotations

import numpy as np
import pytest

from ltr.errors import ConfigError
from ltr.text.bm25 import BM25
from ltr.text.candidates import QuerySplit, TextTask, retrieve
from ltr.text.collection import TextCollection, load_collection, split_queries
from ltr.text.config import TextDataConfig


@pytest.fixture(scope="module")
def collection(synthetic) -> TextCollection:
    return load_collection(synthetic.root)


def test_retrieve_gives_bm25_top_k_in_order_with_qrels_labels(synthetic, collection):
    index = BM25(collection.doc_texts)
    query_ids = ["q21", "q02", "q40", "q12"]  # not in file order
    lists = retrieve(collection, index, query_ids, k=10)
    query_text = {q["query_id"]: q["text"] for q in synthetic.queries}
    doc_ids = [d["doc_id"] for d in synthetic.docs]
    scores = index.scores([query_text[q] for q in query_ids])  # (4, 35)
    assert lists.query_ids == query_ids
    assert lists.query_texts == [query_text[q] for q in query_ids]
    assert lists.doc_index.shape == lists.bm25.shape == lists.labels.shape == (4, 10)
    for row, q in enumerate(query_ids):
        # best first; equal scores in increasing document index
        order = np.lexsort((np.arange(len(doc_ids)), -scores[row]))[:10]
        assert lists.doc_index[row].tolist() == order.tolist()
        np.testing.assert_allclose(lists.bm25[row], scores[row, order], rtol=1e-12)
        expected = [synthetic.qrels[q].get(doc_ids[i], 0) for i in order]
        assert lists.labels[row].tolist() == expected
    assert (lists.labels == 0).any() and (lists.labels == 2).any()  # unjudged docs get 0
    # each topic has 7 relevant documents in the whole collection
    assert lists.relevant.tolist() == [7, 7, 7, 7]


def toy() -> TextCollection:
    return TextCollection(
        name="toy",
        doc_ids=["d0", "d1", "d2", "d3"],
        doc_texts=["apple pie apple", "apple tart", "cherry jam", "plum jam"],
        query_ids=["qa", "qb", "qc"],
        query_texts=["apple", "jam", "plum"],
        qrels={"qa": {"d0": 2, "d2": 1, "d3": 0}, "qb": {"d2": 1}, "qc": {"d3": 0}},
    )


def test_recall_counts_relevant_documents_outside_the_top_k():
    collection = toy()
    lists = retrieve(collection, BM25(collection.doc_texts), ["qa", "qb", "qc"], k=2)
    assert sorted(lists.doc_index[0].tolist()) == [0, 1]  # the apple documents
    assert sorted(lists.doc_index[1].tolist()) == [2, 3]  # the jam documents
    assert lists.relevant.tolist() == [2, 1, 0]  # a 0 judgment is not relevant
    # qa: d0 found, d2 (relevant, no "apple") missed -> 1/2; qb: 1/1; qc: no relevant doc -> 1
    assert lists.recall() == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert lists.with_positive().tolist() == [0, 1]
    assert lists.labels[0].tolist() == [2.0, 0.0]


def test_retrieve_errors(collection):
    index = BM25(collection.doc_texts)
    with pytest.raises(ConfigError, match=r"1 query id\(s\).*'nope'"):
        retrieve(collection, index, ["q00", "nope"], k=3)
    with pytest.raises(ConfigError, match="at least 1"):
        retrieve(collection, index, ["q00"], k=0)


def test_retrieve_rejects_a_query_without_judgments():
    """A collection loaded with ``judged_only=False`` holds queries with no qrels entry;
    retrieve says they are not judged queries (its own message) instead of failing."""
    collection = toy()
    collection = TextCollection(
        name="toy", doc_ids=collection.doc_ids, doc_texts=collection.doc_texts,
        query_ids=["qa", "qx"], query_texts=["apple", "cherry"], qrels={"qa": {"d0": 1}},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"not judged queries of toy, e\.g\. 'qx'"):
        retrieve(collection, BM25(collection.doc_texts), ["qa", "qx"], k=2)


def test_k_beyond_the_collection_gives_every_document(collection):
    lists = retrieve(collection, BM25(collection.doc_texts), ["q00"], k=100)
    assert sorted(lists.doc_index[0].tolist()) == list(range(35))
    assert lists.recall() == 1.0


def test_query_split_is_split_queries_and_its_parts_are_disjoint(collection):
    split = QuerySplit.of(collection, [0.6, 0.2, 0.2], seed=3)
    train, valid, test = split_queries(collection.query_ids, (0.6, 0.2, 0.2), seed=3)
    assert (split.train, split.valid, split.test) == (train, valid, test)
    parts = split.parts()
    assert list(parts) == ["train", "valid", "test"]
    assert [len(p) for p in parts.values()] == [9, 3, 3]
    assert sorted(train + valid + test) == sorted(collection.query_ids)
    assert not set(train) & set(valid) and not set(train) & set(test)
    assert not set(valid) & set(test)
    assert QuerySplit.of(collection, [0.6, 0.2, 0.2], seed=4).parts() != parts


def test_text_task_retrieves_every_part_with_its_bm25_settings(synthetic, collection):
    config = TextDataConfig(
        collection=str(synthetic.root), candidates=6, bm25_k1=1.2, bm25_b=0.75, split_seed=1
    )
    task = TextTask.load(config)
    assert task.split == QuerySplit.of(collection, [0.6, 0.2, 0.2], seed=1)
    index = BM25(collection.doc_texts, k1=1.2, b=0.75)
    for part, ids in task.split.parts().items():
        expected = retrieve(collection, index, ids, k=6)
        np.testing.assert_array_equal(task.lists[part].doc_index, expected.doc_index)
        np.testing.assert_array_equal(task.lists[part].bm25, expected.bm25)
        np.testing.assert_array_equal(task.lists[part].labels, expected.labels)
    # other BM25 parameters give other scores: the settings are used
    assert not np.allclose(
        task.lists["train"].bm25,
        retrieve(collection, BM25(collection.doc_texts), task.split.train, 6).bm25,
    )
