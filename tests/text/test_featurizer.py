"""TextFeaturizer on documents the collection never held (BM25 and coverage by hand, TF-IDF
against scikit-learn), ranks within a list, saving and loading, and parity with the files
``ltr text-features`` wrote."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from ltr.artifact import ArtifactError
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.lm.encode import encode_texts
from ltr.text.collection import load_collection
from ltr.text.config import TextDataConfig
from ltr.text.features import build_text_features
from ltr.text.featurizer import LexicalStats, TextFeaturizer

DOCS = [
    "The apple and the banana",  # apple, banana -> 2 terms
    "Apple apple cherry tart",  # apple x2, cherry, tart -> 4
    "Cherry pie with dates",  # cherry, pie, dates -> 3
    "A plum",  # plum -> 1
]
N, AVGDL, K1, B = 4, (2 + 4 + 3 + 1) / 4, 0.9, 0.4
DF = {"apple": 2, "banana": 1, "cherry": 2, "tart": 1, "pie": 1, "dates": 1, "plum": 1}


def idf(term: str) -> float:
    return math.log(1 + (N - DF[term] + 0.5) / (DF[term] + 0.5))


def bm25_term(term: str, tf: int, length: int) -> float:
    return idf(term) * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / AVGDL))


def test_unseen_documents_by_hand():
    stats = LexicalStats.fit(DOCS)
    new = [
        "apple apple kiwi kiwi kiwi",  # apple x2 + 3 kiwi, a term no collection doc holds
        "kiwi pie",
        "",
    ]
    got = stats.features(["apple pie kiwi"], new, np.array([[0, 1, 2]]))[0]  # (3, 5)
    assert got[0, 0] == pytest.approx(bm25_term("apple", 2, 5), rel=1e-12)  # |d| counts kiwi
    assert got[1, 0] == pytest.approx(bm25_term("pie", 1, 2), rel=1e-12)
    assert got[2, 0] == 0
    # ranks by BM25 within the list
    order = sorted(range(3), key=lambda i: -got[i, 0])
    ranks = [order.index(i) + 1 for i in range(3)]
    np.testing.assert_allclose(got[:, 1], np.log1p(ranks), rtol=1e-12)
    # TF-IDF: scikit-learn's vectorizer fitted on the collection (out-of-vocabulary terms dropped)
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(DOCS)
    q = tfidf.transform(["apple pie kiwi"]).toarray()[0]
    d = tfidf.transform(new).toarray()
    np.testing.assert_allclose(got[:, 2], d @ q, atol=1e-12)
    # coverage counts every distinct query term, kiwi included; lengths count kiwi too
    np.testing.assert_allclose(got[:, 3], [2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(got[:, 4], np.log1p([5, 2, 0]), rtol=1e-12)


def test_rank_ties_keep_the_list_order():
    stats = LexicalStats.fit(DOCS)
    texts = ["plum", "banana", "plum", "apple"]  # "banana" scores, the others do not
    got = stats.features(["banana"], texts, np.array([[0, 1, 2, 3]]))[0]
    assert got[:, 0].tolist()[0] == 0 and got[1, 0] > 0
    np.testing.assert_allclose(got[:, 1], np.log1p([2, 1, 3, 4]), rtol=1e-12)


def test_doc_index_is_checked():
    featurizer = TextFeaturizer(LexicalStats.fit(DOCS))
    with pytest.raises(ConfigError, match="outside the 2 documents"):
        featurizer.features(["apple"], ["a", "b"], np.array([[0, 2]]))
    with pytest.raises(ConfigError, match="with 2 rows"):
        featurizer.features(["apple", "pie"], ["a", "b"], np.array([[0, 1]]))


def test_a_collection_of_stop_words_is_refused():
    with pytest.raises(ConfigError, match="no term outside the English stop words"):
        LexicalStats.fit(["the and", "of a"])


# -------------------------------------------------------------------- saved beside the files
@pytest.fixture(scope="module")
def written(tmp_path_factory, synthetic, encoder_dir):
    out = tmp_path_factory.mktemp("featurizer") / "out"
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    return build_text_features(config, {"pre": str(encoder_dir)}, out)


def test_the_saved_featurizer_rebuilds_the_test_rows_from_texts(written, synthetic):
    """Each test query's candidates, given as bare texts in the file's order, get the rows
    that `ltr text-features` wrote (the online path is the offline one)."""
    featurizer = TextFeaturizer.load(written.directory / "featurizer")
    assert featurizer.feature_names == written.feature_names
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.doc_ids, collection.doc_texts, strict=True))
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    chunk, _ = read_parquet(written.files["test"])
    qids = np.asarray([str(q) for q in chunk.qids])
    for q in dict.fromkeys(qids):
        rows = np.flatnonzero(qids == q)
        texts = [text_of[str(d)] for d in chunk.doc_ids[rows]]
        got = featurizer.features([query_of[q]], texts, np.arange(len(texts))[None])[0]
        np.testing.assert_allclose(got, chunk.features[rows], rtol=1e-5, atol=2e-6)


def test_sim_column_of_an_unseen_text_is_the_encoder_cosine(written, encoder_dir):
    featurizer = TextFeaturizer.load(written.directory / "featurizer")
    lm = featurizer.encoders["pre"]
    texts = ["zorbax quillet and something new", "", "grelbo"]
    got = featurizer.features(["the zorbax"], texts, np.array([[0, 1, 2]]))[0, :, 5]
    docs = encode_texts(lm.model, lm.tokenizer, [texts[0], texts[2]])
    query = encode_texts(lm.model, lm.tokenizer, ["the zorbax"])[0]
    np.testing.assert_allclose(got[[0, 2]], docs @ query, atol=2e-6)
    assert np.isfinite(got[1])  # an empty text still gets a vector ([SEP])


def test_saving_replaces_the_folder_whole(written, tmp_path):
    featurizer = TextFeaturizer.load(written.directory / "featurizer")
    target = tmp_path / "f"
    TextFeaturizer(featurizer.lexical).save(target)
    assert TextFeaturizer.load(target).feature_names == written.feature_names[:5]
    featurizer.save(target)  # over the old one: encoders appear, no leftovers beside it
    assert TextFeaturizer.load(target).feature_names == written.feature_names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_broken_featurizers_are_named(written, tmp_path):
    with pytest.raises(ArtifactError, match=r"no featurizer\.json"):
        TextFeaturizer.load(tmp_path)
    source = json.loads((written.directory / "featurizer" / "featurizer.json").read_text())
    cases = [
        ({"format": "other"}, "not an ltr text featurizer"),
        ({"format_version": 99}, "newer ltr"),
        ({"lexical": {**source["lexical"], "document_frequency": [1]}}, "frequencies"),
        ({"lexical": {"terms": []}}, "incomplete"),
        ({"feature_names": ["bm25"]}, "do not match"),
        ({"document_cache": "nowhere.npz"}, "nowhere.npz: not a readable document cache"),
    ]
    for change, match in cases:
        folder = tmp_path / "broken"
        folder.mkdir(exist_ok=True)
        no_encoders = {"encoders": [], "document_cache": None}
        (folder / "featurizer.json").write_text(json.dumps({**source, **no_encoders, **change}))
        if "feature_names" not in change:
            names = source["feature_names"][:5]
            data = json.loads((folder / "featurizer.json").read_text())
            (folder / "featurizer.json").write_text(json.dumps({**data, "feature_names": names}))
        with pytest.raises(ArtifactError, match=match):
            TextFeaturizer.load(folder)
    (folder / "featurizer.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        TextFeaturizer.load(folder)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_random_lists_match_dense_formulas(chunk):
    """Random queries and documents (terms the collection lacks, empty texts, a document in
    several lists, repeated terms), scored in chunks of queries, against BM25 and coverage
    computed densely by hand and TF-IDF cosine from scikit-learn."""
    rng = np.random.default_rng(chunk)
    vocabulary = [f"term{i}x" for i in range(30)]
    unknown = [f"zz{i}q" for i in range(4)]

    def text(n: int, words: list[str]) -> str:
        return " ".join(rng.choice(words, size=n)) if n else ""

    collection = [text(int(rng.integers(1, 12)), vocabulary) for _ in range(40)]
    stats = LexicalStats.fit(collection)
    docs = [text(int(rng.integers(0, 10)), vocabulary + unknown) for _ in range(15)]
    queries = [text(int(rng.integers(0, 5)), vocabulary + unknown) for _ in range(7)]
    position = rng.integers(0, len(docs), size=(len(queries), 6))
    got = stats.score(queries, stats.analyze(docs), position, chunk=chunk)  # (Q, K, 5)

    terms = stats.terms
    df = np.array([sum(t in d.split() for d in collection) for t in terms])
    n, avgdl = len(collection), np.mean([len(d.split()) for d in collection])
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    count = lambda t: np.array([t.split().count(w) for w in terms], dtype=float)  # noqa: E731
    qc = np.stack([count(q) for q in queries])  # (Q, V)
    dc = np.stack([count(d) for d in docs])  # (D, V)
    length = np.array([len(d.split()) for d in docs], dtype=float)
    weights = idf * dc * (K1 + 1) / (dc + K1 * (1 - B + B * length[:, None] / avgdl))
    bm25 = np.einsum("qv,qkv->qk", qc, weights[position])
    np.testing.assert_allclose(got[..., 0], bm25, rtol=1e-12, atol=1e-12)
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(collection)
    cosine = np.einsum(
        "qv,qkv->qk", tfidf.transform(queries).toarray(), tfidf.transform(docs).toarray()[position]
    )
    np.testing.assert_allclose(got[..., 2], cosine, rtol=1e-12, atol=1e-12)
    for q, query in enumerate(queries):
        wanted = set(query.split())
        for k, d in enumerate(position[q]):
            share = len(wanted & set(docs[d].split())) / len(wanted) if wanted else 0.0
            assert got[q, k, 3] == pytest.approx(share, abs=1e-12)
    np.testing.assert_allclose(got[..., 4], np.log1p(length[position]), rtol=1e-12)
