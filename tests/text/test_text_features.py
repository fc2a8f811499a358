"""Text features: lexical columns against scikit-learn and hand counts, the Parquet files of
``build_text_features`` against the collection, and ``ltr train`` on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm
from ltr.lm.encode import encode_texts
from ltr.text.bm25 import BM25
from ltr.text.candidates import CandidateLists, retrieve
from ltr.text.collection import TextCollection, load_collection, split_queries
from ltr.text.config import TextDataConfig
from ltr.text.features import FeatureFiles, build_text_features, parse_encoders
from ltr.text.featurizer import LexicalStats
from ltr.train.config import load_train_config
from ltr.train.run import train

from .conftest import hand_ndcg

NAMES = ["bm25", "bm25_log_rank", "tfidf_cosine", "query_coverage", "doc_log_length", "sim_pre"]


# ---------------------------------------------------------------------------- lexical features
def lexical_features(collection: TextCollection, lists: CandidateLists) -> np.ndarray:
    stats = LexicalStats.fit(collection.doc_texts)
    return stats.features(lists.query_texts, collection.doc_texts, lists.doc_index)


def toy() -> TextCollection:
    return TextCollection(
        name="toy",
        doc_ids=["d0", "d1", "d2", "d3"],
        doc_texts=[
            "The apple and the banana",  # counted terms: apple, banana -> 2
            "Apple apple cherry tart",  # apple x2, cherry, tart -> 4
            "Cherry pie with dates",  # cherry, pie, dates ("with" is a stop word) -> 3
            "A plum",  # plum ("a" is too short and a stop word) -> 1
        ],
        query_ids=["qa", "qb"],
        query_texts=["apple cherry pie", "the banana tart"],
        qrels={"qa": {"d1": 1}, "qb": {"d0": 2}},
    )


def test_lexical_features_against_sklearn_and_hand_counts():
    collection = toy()
    lists = retrieve(collection, BM25(collection.doc_texts), ["qa", "qb"], k=4)
    got = lexical_features(collection, lists)
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(got[..., 0], lists.bm25, rtol=1e-12)  # the first stage's scores
    np.testing.assert_allclose(got[..., 1], np.log(1 + np.array([[1, 2, 3, 4]] * 2)), rtol=1e-12)
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(collection.doc_texts)
    cosine = cosine_similarity(
        tfidf.transform(lists.query_texts), tfidf.transform(collection.doc_texts)
    )  # (2, 4)
    np.testing.assert_allclose(
        got[..., 2], np.take_along_axis(cosine, lists.doc_index, axis=1), atol=1e-12
    )
    # share of the query's distinct terms found in the document, by hand
    terms = {
        "d0": {"apple", "banana"},
        "d1": {"apple", "cherry", "tart"},
        "d2": {"cherry", "pie", "dates"},
        "d3": {"plum"},
    }
    query_terms = {"qa": {"apple", "cherry", "pie"}, "qb": {"banana", "tart"}}
    lengths = {"d0": 2, "d1": 4, "d2": 3, "d3": 1}
    for row, q in enumerate(["qa", "qb"]):
        for col, i in enumerate(lists.doc_index[row]):
            d = collection.doc_ids[i]
            share = len(query_terms[q] & terms[d]) / len(query_terms[q])
            assert got[row, col, 3] == pytest.approx(share), (q, d)
            assert got[row, col, 4] == pytest.approx(math.log(1 + lengths[d])), d


def test_query_coverage_counts_query_terms_found_in_no_document():
    """ "kiwi" is a term of the query that occurs in no document: a document holding only
    "banana" holds half of the query's distinct terms."""
    collection = toy()
    lists = retrieve(collection, BM25(collection.doc_texts), ["qb"], k=4)
    lists.query_texts = ["the banana kiwi"]
    got = lexical_features(collection, lists)
    col = lists.doc_index[0].tolist().index(0)  # d0: "The apple and the banana"
    assert got[0, col, 3] == pytest.approx(0.5)


# ---------------------------------------------------------------------------- feature files
@pytest.fixture(scope="module")
def features(tmp_path_factory, synthetic, encoder_dir):
    out = tmp_path_factory.mktemp("features") / "out"
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    return config, build_text_features(config, {"pre": str(encoder_dir)}, out)


def test_feature_files_hold_every_query_once_with_its_qrels(features, synthetic):
    _, result = features
    assert result.feature_names == NAMES
    all_ids = [q["query_id"] for q in synthetic.queries]
    seen: dict[str, str] = {}
    for part in ("train", "valid", "test"):
        chunk, names = read_parquet(result.files[part])
        assert names == NAMES
        qids = [str(q) for q in chunk.qids]
        distinct = list(dict.fromkeys(qids))
        assert len(qids) == 10 * len(distinct) == result.rows[part]
        for q in distinct:
            assert q not in seen, f"{q} in {seen.get(q)} and {part}"
            seen[q] = part
        expected = [
            synthetic.qrels[q].get(str(d), 0) for q, d in zip(qids, chunk.doc_ids, strict=True)
        ]
        assert chunk.labels.tolist() == expected
        # rows of a query: BM25's candidates, best first, ranks 1..10
        f = chunk.features.reshape(len(distinct), 10, len(NAMES))
        assert np.all(np.diff(f[..., 0], axis=1) <= 0)
        np.testing.assert_allclose(
            f[..., 1], np.log1p(np.arange(1, 11))[None].repeat(len(distinct), 0), rtol=1e-6
        )
    assert sorted(seen) == sorted(all_ids)
    _, valid, test = split_queries(all_ids, (0.6, 0.2, 0.2), seed=0)
    assert {q for q, p in seen.items() if p == "valid"} == set(valid)
    assert {q for q, p in seen.items() if p == "test"} == set(test)


def test_bm25_and_sim_columns(features, synthetic, encoder_dir):
    _, result = features
    chunk, _ = read_parquet(result.files["test"])
    qids = [str(q) for q in chunk.qids]
    doc_ids = [d["doc_id"] for d in synthetic.docs]
    query_text = {q["query_id"]: q["text"] for q in synthetic.queries}
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    collection = load_collection(synthetic.root)
    bm25 = BM25(collection.doc_texts).scores([query_text[q] for q in qids])  # (rows, 35)
    rows = np.arange(len(qids))
    cols = np.array([doc_row[str(d)] for d in chunk.doc_ids])
    np.testing.assert_allclose(chunk.features[:, 0], bm25[rows, cols], rtol=1e-6)
    # sim_pre: the cosine of encode_texts vectors of the query and the document
    loaded = load_lm(encoder_dir)
    docs = encode_texts(loaded.model, loaded.tokenizer, collection.doc_texts)
    queries = encode_texts(loaded.model, loaded.tokenizer, [query_text[q] for q in qids])
    expected = np.einsum("nd,nd->n", queries, docs[cols])
    np.testing.assert_allclose(chunk.features[:, 5], expected, atol=2e-6)


def test_features_json_records_how_the_files_were_made(features, synthetic, encoder_dir):
    _, result = features
    facts = json.loads((result.directory / "features.json").read_text())
    assert facts["feature_names"] == NAMES
    assert facts["encoders"] == {"pre": str(encoder_dir)}
    assert facts["queries"] == {"train": 9, "valid": 3, "test": 3}
    assert facts["rows"] == {"train": 90, "valid": 30, "test": 30}
    assert facts["candidates"] == 10 and facts["split_seed"] == 0
    assert facts["collection"] == str(synthetic.root)
    assert facts["bm25"] == {"k1": 0.9, "b": 0.4}
    for part in ("train", "valid", "test"):
        chunk, _ = read_parquet(result.files[part])
        qids = [str(q) for q in chunk.qids]
        shares = []
        for q in dict.fromkeys(qids):
            found = sum(1 for qq, y in zip(qids, chunk.labels, strict=True) if qq == q and y > 0)
            shares.append(found / sum(1 for y in synthetic.qrels[q].values() if y > 0))
        assert facts["recall"][part] == pytest.approx(np.mean(shares))
        assert result.recall[part] == pytest.approx(np.mean(shares))


def test_each_columns_ndcg_alone_is_recorded(features):
    """features.json's per-split NDCG@10 of each column, against NDCG written out by hand over
    the file's lists (all lists here hold the same number of candidates). The BM25 rank column
    ranks smallest first: it is BM25's order, the candidates' order in the file."""
    _, result = features
    recorded = json.loads((result.directory / "features.json").read_text())["column_ndcg@10"]
    assert recorded == result.column_ndcg
    for part, path in result.files.items():
        chunk, names = read_parquet(path)
        q = len(dict.fromkeys(chunk.qids))
        labels = chunk.labels.reshape(q, -1)
        for j, name in enumerate(names):
            column = chunk.features[:, j].reshape(q, -1)
            want = hand_ndcg(-column if name == "bm25_log_rank" else column, labels)
            assert result.column_ndcg[part][name] == pytest.approx(want, abs=1e-6)
        first_stage = -np.tile(np.arange(labels.shape[1], dtype=float), (q, 1))
        assert result.column_ndcg[part]["bm25_log_rank"] == pytest.approx(
            hand_ndcg(first_stage, labels), abs=1e-6
        )


def test_leak_warning_names_a_column_far_better_on_training_lists():
    result = FeatureFiles(
        Path("."),
        feature_names=["bm25", "sim_ft", "sim_pre"],
        column_ndcg={
            "train": {"bm25": 0.9, "sim_ft": 0.99, "sim_pre": 0.30},
            "valid": {"bm25": 0.5, "sim_ft": 0.59, "sim_pre": 0.28},
        },
    )
    warnings = result.leak_warnings()
    assert len(warnings) == 1  # bm25 is no encoder column; sim_pre generalises
    assert warnings[0].startswith("sim_ft ranks the training lists far better")
    assert "0.990 against 0.590" in warnings[0]
    assert result.leak_warnings(gap=0.5) == []


def test_ltr_train_takes_the_feature_files(features, tmp_path, monkeypatch):
    _, result = features
    monkeypatch.chdir(tmp_path)
    overrides = {
        "model": {"name": "mlp", "hidden_sizes": [8], "dropout": 0.0},
        "loss": "softmax",
        "data.train": [str(result.files["train"])],
        "data.valid": [str(result.files["valid"])],
        "data.test": [str(result.files["test"])],
        "data.batch_size": 4,
        "trainer.max_epochs": 2,
        "trainer.progress_bar": False,
        "trainer.accelerator": "cpu",
        "optim.warmup_steps": 0,
        "tracking.enabled": False,
        "output_dir": str(tmp_path / "out"),
    }
    run = train(load_train_config(None, overrides), verbose=False)
    metrics = run.test_metrics["empty=1"]
    assert "ndcg@10" in metrics
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in metrics.values())


# ---------------------------------------------------------------------------- --encoder specs
def test_parse_encoders():
    assert parse_encoders([]) == {}
    assert parse_encoders(["ft=runs/a=b", "pre_1=models:/x@candidate"]) == {
        "ft": "runs/a=b",
        "pre_1": "models:/x@candidate",
    }


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        (["x"], "NAME=MODEL"),
        (["=y"], "NAME=MODEL"),
        (["x="], "NAME=MODEL"),
        (["a=1", "a=2"], "given twice"),
        (["bad-name=y"], "letters, digits and _"),
        (["sp ace=y"], "letters, digits and _"),
    ],
)
def test_parse_encoders_errors(specs, match):
    with pytest.raises(ConfigError, match=match):
        parse_encoders(specs)


def test_build_text_features_needs_a_collection(tmp_path):
    with pytest.raises(ConfigError, match="no collection given"):
        build_text_features(TextDataConfig(), {}, tmp_path)


def test_no_encoder_gives_the_lexical_columns_only(tmp_path, synthetic):
    config = TextDataConfig(collection=str(synthetic.root), candidates=3)
    result = build_text_features(config, {}, tmp_path / "lex")
    chunk, names = read_parquet(result.files["valid"])
    assert names == NAMES[:5] and chunk.features.shape == (9, 5)


def test_lexical_features_follow_the_candidates_doc_index():
    lists = CandidateLists(
        query_ids=["qa"],
        query_texts=["apple"],
        doc_index=np.array([[1, 0]]),
        bm25=np.array([[2.0, 1.0]]),
        labels=np.zeros((1, 2), dtype=np.float32),
        relevant=np.zeros(1, dtype=np.int64),
    )
    got = lexical_features(toy(), lists)
    assert got.shape == (1, 2, 5)
    assert got[0, :, 4].tolist() == pytest.approx([math.log(5), math.log(3)])  # d1, d0 lengths
