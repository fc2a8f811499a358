"""Encoder scores on candidate lists against ``encode_texts`` and hand-pooled hidden states;
mean NDCG@10 against a hand-written NDCG."""

from __future__ import annotations

import numpy as np
import pytest

from ltr.lm.artifact import LoadedLM, load_lm
from ltr.lm.encode import encode_texts
from ltr.text.bm25 import BM25
from ltr.text.candidates import CandidateLists, retrieve
from ltr.text.collection import TextCollection, load_collection
from ltr.text.encoder import TokenizedTexts, encoder_scores, mean_ndcg

from .conftest import BLOCK, hand_ndcg, unit_mean_hidden


@pytest.fixture(scope="module")
def loaded(encoder_dir) -> LoadedLM:
    return load_lm(encoder_dir)


@pytest.fixture(scope="module")
def collection(synthetic) -> TextCollection:
    return load_collection(synthetic.root)


@pytest.fixture(scope="module")
def lists(collection) -> CandidateLists:
    # q00 and q01 share a topic, so their candidate lists share documents
    return retrieve(collection, BM25(collection.doc_texts), ["q00", "q01", "q32"], k=12)


def test_scores_are_cosines_of_encode_texts_vectors(loaded, collection, lists):
    model, tok = loaded.model, loaded.tokenizer
    lengths = [len(ids) for ids in tok.encode_batch(collection.doc_texts + lists.query_texts)]
    assert max(lengths) < BLOCK  # nothing is cut on either path
    texts = TokenizedTexts.build(tok, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK)
    scores = encoder_scores(model, texts, lists, batch_size=5)  # several padded doc batches
    docs = encode_texts(model, tok, collection.doc_texts)  # (35, d)
    queries = encode_texts(model, tok, lists.query_texts)  # (3, d)
    expected = np.einsum("qd,qkd->qk", queries, docs[lists.doc_index])
    assert scores.shape == (3, 12)
    np.testing.assert_allclose(scores, expected, atol=2e-6)
    assert np.ptp(scores) > 1e-3  # the scores tell documents apart
    assert not model.training  # left as it was


def test_texts_are_cut_to_their_token_limits(loaded, collection, lists):
    model, tok = loaded.model, loaded.tokenizer
    texts = TokenizedTexts.build(tok, collection, max_doc_tokens=5, max_query_tokens=3)
    assert all(len(doc) == 5 for doc in texts.docs)
    assert all(len(q) == 3 for q in texts.queries.values())
    scores = encoder_scores(model, texts, lists)
    for row, q in enumerate(lists.query_ids):
        query = unit_mean_hidden(model, tok.encode(lists.query_texts[row])[:3])
        for col, i in enumerate(lists.doc_index[row]):
            doc = unit_mean_hidden(model, tok.encode(collection.doc_texts[i])[:5])
            assert scores[row, col] == pytest.approx(query @ doc, abs=2e-6), (q, i)


def test_a_document_in_two_lists_gets_the_same_score(loaded, collection, lists):
    model, tok = loaded.model, loaded.tokenizer
    texts = TokenizedTexts.build(tok, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK)
    shared = sorted(set(lists.doc_index[0].tolist()) & set(lists.doc_index[1].tolist()))
    assert shared
    # q00 and q01 score the same document with different queries; compare each query's score
    # of a shared document with that query alone in a list holding only that document
    scores = encoder_scores(model, texts, lists)
    for doc in shared:
        for row in (0, 1):
            col = lists.doc_index[row].tolist().index(doc)
            alone = CandidateLists(
                query_ids=[lists.query_ids[row]],
                query_texts=[lists.query_texts[row]],
                doc_index=np.array([[doc]]),
                bm25=np.zeros((1, 1)),
                labels=np.zeros((1, 1), dtype=np.float32),
                relevant=np.zeros(1, dtype=np.int64),
            )
            assert encoder_scores(model, texts, alone)[0, 0] == pytest.approx(
                scores[row, col], abs=1e-6
            )
    # the same query twice: identical rows
    twice = CandidateLists(
        query_ids=["q00", "q00"],
        query_texts=[lists.query_texts[0]] * 2,
        doc_index=np.stack([lists.doc_index[0], lists.doc_index[0][::-1]]),
        bm25=np.zeros((2, 12)),
        labels=np.zeros((2, 12), dtype=np.float32),
        relevant=np.zeros(2, dtype=np.int64),
    )
    got = encoder_scores(model, texts, twice)
    np.testing.assert_allclose(got[0], got[1][::-1], atol=1e-6)


def test_mean_ndcg_is_hand_ndcg_at_10():
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(6, 14))
    labels = rng.integers(0, 4, size=(6, 14)).astype(np.float32)
    labels[2] = 0  # no relevant item: counts 1
    labels[4] = 0
    labels[4, 13] = 1  # one relevant item
    expected = hand_ndcg(scores, labels)
    assert mean_ndcg(scores, labels) == pytest.approx(expected, rel=1e-12)
    assert mean_ndcg(scores, labels, k=3) == pytest.approx(hand_ndcg(scores, labels, 3), rel=1e-12)
    assert 0 < expected < 1
    # equal scores: the lower label is ranked first (pessimistic), as in the hand NDCG
    tied = np.round(scores)
    assert len(np.unique(tied[0])) < tied.shape[1]
    assert mean_ndcg(tied, labels) == pytest.approx(hand_ndcg(tied, labels), rel=1e-12)
    # a perfect ranking of the labels scores 1
    assert mean_ndcg(labels.astype(np.float64), labels) == pytest.approx(1.0)


def test_empty_document_is_encoded_as_the_sep_token(loaded):
    model, tok = loaded.model, loaded.tokenizer
    collection = TextCollection(
        name="empty",
        doc_ids=["blank", "full"],
        doc_texts=["", "zorbax data"],
        query_ids=["q"],
        query_texts=["zorbax quillet"],
        qrels={"q": {"full": 1}},
    )
    texts = TokenizedTexts.build(tok, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK)
    assert texts.docs[0].tolist() == [tok.sep_id]
    assert texts.docs[1].tolist() == tok.encode("zorbax data")
    lists = CandidateLists(
        query_ids=["q"],
        query_texts=["zorbax quillet"],
        doc_index=np.array([[1, 0]]),
        bm25=np.array([[1.0, 0.0]]),
        labels=np.array([[1.0, 0.0]], dtype=np.float32),
        relevant=np.array([1]),
    )
    scores = encoder_scores(model, texts, lists)
    query = unit_mean_hidden(model, tok.encode("zorbax quillet"))
    sep = unit_mean_hidden(model, [tok.sep_id])
    assert scores[0, 1] == pytest.approx(query @ sep, abs=2e-6)
    assert scores[0, 0] == pytest.approx(
        query @ unit_mean_hidden(model, tok.encode("zorbax data")), abs=2e-6
    )


def test_stream_puts_the_separator_between_documents_only():
    texts = TokenizedTexts(
        docs=[np.array([7, 8]), np.array([9]), np.array([10, 11, 12])],
        queries={},
        pad_id=0,
        sep_id=5,
    )
    assert texts.stream(5).tolist() == [7, 8, 5, 9, 5, 10, 11, 12]
    ids, mask = texts.pad(texts.docs)
    assert ids.tolist() == [[7, 8, 0], [9, 0, 0], [10, 11, 12]]
    assert mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
