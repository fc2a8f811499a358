"""BM25 scores against hand computation on a toy corpus, ordering, ties and errors.

Expected scores are written out term by term from the formula, with the idf values as literals
(``ln(1 + (N - df + 0.5) / (df + 0.5))`` for N = 4 is ln 2 at df 2, ln(10/7) at df 3, ln(10/3)
at df 1), never taken from the class.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ltr.errors import ConfigError
from ltr.text.bm25 import BM25

DOCS = [
    "apple banana apple",  # apple 2, banana 1; |d| = 3
    "banana cherry",  # banana 1, cherry 1; |d| = 2
    "cherry cherry cherry date",  # cherry 3, date 1; |d| = 4
    "apple banana date fig",  # one each; |d| = 4
]
AVGDL = 13 / 4
IDF_DF1, IDF_DF2, IDF_DF3 = math.log(10 / 3), math.log(2), math.log(10 / 7)
K1, B = 0.9, 0.4


def tf_part(tf: float, length: float, k1: float = K1, b: float = B) -> float:
    """tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))."""
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / AVGDL))


def test_idf_literals_follow_lucene_formula():
    assert math.log(1 + (4 - 2 + 0.5) / (2 + 0.5)) == pytest.approx(IDF_DF2, rel=1e-15)
    assert math.log(1 + (4 - 3 + 0.5) / (3 + 0.5)) == pytest.approx(IDF_DF3, rel=1e-15)
    assert math.log(1 + (4 - 1 + 0.5) / (1 + 0.5)) == pytest.approx(IDF_DF1, rel=1e-15)


def test_scores_match_hand_computation():
    bm25 = BM25(DOCS, stop_words=None)
    # query 1: "apple apple cherry" -> apple counted twice (df 2), cherry once (df 2)
    q1 = [
        2 * IDF_DF2 * tf_part(2, 3),  # d0: apple tf 2
        IDF_DF2 * tf_part(1, 2),  # d1: cherry tf 1
        IDF_DF2 * tf_part(3, 4),  # d2: cherry tf 3
        2 * IDF_DF2 * tf_part(1, 4),  # d3: apple tf 1
    ]
    # query 2: "banana kiwi date" -> banana (df 3), kiwi unknown, date (df 2)
    q2 = [
        IDF_DF3 * tf_part(1, 3),  # d0: banana
        IDF_DF3 * tf_part(1, 2),  # d1: banana
        IDF_DF2 * tf_part(1, 4),  # d2: date
        IDF_DF3 * tf_part(1, 4) + IDF_DF2 * tf_part(1, 4),  # d3: banana + date
    ]
    scores = bm25.scores(["apple apple cherry", "Banana KIWI date"])
    assert scores.shape == (2, 4) and scores.dtype == np.float64
    assert scores[0].tolist() == pytest.approx(q1, rel=1e-12)
    assert scores[1].tolist() == pytest.approx(q2, rel=1e-12)
    assert bm25.vocabulary_size == 5


def test_unknown_query_scores_zero():
    bm25 = BM25(DOCS, stop_words=None)
    assert bm25.scores(["kiwi mango", ""]).tolist() == [[0.0] * 4, [0.0] * 4]
    assert bm25.scores([]).shape == (0, 4)


def test_k1_zero_gives_sum_of_matched_idf():
    bm25 = BM25(DOCS, k1=0.0, stop_words=None)
    expected = [IDF_DF2, 0.0, 0.0, IDF_DF2 + IDF_DF1]
    assert bm25.scores(["apple fig"])[0].tolist() == pytest.approx(expected, rel=1e-12)


def test_b_zero_removes_length_normalisation():
    docs = ["zeta omega", "alpha gamma gamma gamma gamma", "alpha gamma"]
    long_first, short = BM25(docs, b=0.0, stop_words=None).scores(["alpha"])[0, 1:]
    assert long_first == short > 0
    normalised = BM25(docs, b=0.75, stop_words=None).scores(["alpha"])[0]
    assert normalised[2] > normalised[1] > 0


def test_top_k_orders_by_score_then_index():
    bm25 = BM25(DOCS, stop_words=None)
    queries = ["apple apple cherry", "banana kiwi date"]
    indices, scores = bm25.top_k(queries, k=3)
    # by hand (see test_scores_match_hand_computation):
    # query 1: d0 1.834, d3 1.328, d2 0.992, d1 0.748; query 2: d3 1.006, d2 0.664, d1 0.385
    assert indices.dtype == np.int64 and scores.dtype == np.float64
    assert indices.tolist() == [[0, 3, 2], [3, 2, 1]]
    assert scores[0].tolist() == pytest.approx([1.834, 1.328, 0.992], abs=1e-3)
    assert scores[1].tolist() == pytest.approx([1.006, 0.664, 0.385], abs=1e-3)


def test_top_k_ties_keep_lower_index_first():
    # five tied documents, then three better (and tied) ones; the cut at k = 5 falls in the
    # first tie group, where a bare argpartition may pick any two of indices 0-4
    docs = ["alpha beta"] * 5 + ["alpha alpha"] * 3
    bm25 = BM25(docs, b=0.0, stop_words=None)
    indices, scores = bm25.top_k(["alpha"], k=5)
    assert indices.tolist() == [[5, 6, 7, 0, 1]]
    assert scores[0, 0] == scores[0, 2] > scores[0, 3] == scores[0, 4] > 0
    indices, _ = bm25.top_k(["nothing"], k=4)  # all scores 0
    assert indices.tolist() == [[0, 1, 2, 3]]


def test_top_k_larger_than_collection():
    bm25 = BM25(DOCS, stop_words=None)
    indices, scores = bm25.top_k(["cherry"], k=10)
    assert indices.shape == scores.shape == (1, 4)
    # cherry: d2 (tf 3) > d1 (tf 1, short) > d0 = d3 = 0, which keep index order
    assert indices.tolist() == [[2, 1, 0, 3]]
    assert scores[0, 2:].tolist() == [0.0, 0.0]


def test_stop_words_are_not_terms_and_not_counted_in_length():
    docs = ["the apple", "apple", "banana of"]
    bm25 = BM25(docs, stop_words="english")
    assert bm25.vocabulary_size == 2
    scores = bm25.scores(["the apple"])[0]
    assert scores[0] == scores[1] > 0  # both have length 1 once "the" is dropped
    assert bm25.scores(["the of and"]).tolist() == [[0.0, 0.0, 0.0]]
    with_stop = BM25(docs, stop_words=None)
    assert with_stop.vocabulary_size == 4
    assert with_stop.scores(["apple"])[0, 1] > with_stop.scores(["apple"])[0, 0]


def test_min_df_drops_rare_terms():
    bm25 = BM25(DOCS, stop_words=None, min_df=2)
    assert bm25.vocabulary_size == 4  # fig occurs once
    assert bm25.scores(["fig"]).tolist() == [[0.0] * 4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"texts": []}, "at least one document"),
        ({"texts": "one string"}, "not one string"),
        ({"texts": DOCS, "k1": -0.1}, "k1 must be >= 0"),
        ({"texts": DOCS, "b": 1.5}, "b must be between 0 and 1"),
        ({"texts": DOCS, "b": -0.1}, "b must be between 0 and 1"),
        ({"texts": DOCS, "min_df": 0}, "min_df must be at least 1"),
        ({"texts": ["the and", "of it"]}, "vocabulary is empty"),
        ({"texts": DOCS, "stop_words": None, "min_df": 5}, "vocabulary is empty"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BM25(**kwargs)


def test_invalid_k():
    with pytest.raises(ConfigError, match="k must be at least 1"):
        BM25(DOCS).top_k(["apple"], k=0)
    with pytest.raises(ConfigError, match="not one string"):
        BM25(DOCS).scores("apple")
