"""TextReranker and ``ltr rerank-text``: a query's candidate texts reranked in-process score as
the trained model scores the rows ``ltr text-features`` wrote, on PyTorch and ONNX Runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ltr.cli import main
from ltr.data.dataset import load_dataset
from ltr.errors import ConfigError
from ltr.predictor import load_predictor
from ltr.text.featurizer import TextFeaturizer, featurizer_beside
from ltr.text.rerank import TextReranker
from tests.serve._helpers import make_artifact

from .conftest import doc_text, offline_test_lists

REPO = Path(__file__).resolve().parents[2]


def test_test_queries_score_as_the_offline_path(trained, synthetic):
    """For every test query, its candidates' texts in the file's order get the scores that
    `ltr evaluate`'s path gives the written rows, and come back in that score order."""
    files, model_dir = trained
    reranker = TextReranker.load(model_dir, backend="torch")
    for query, ids, texts, offline in offline_test_lists(files.files["test"], model_dir, synthetic):
        hits = reranker.rerank(query, texts, ids)
        got = {hit.id: hit.score for hit in hits}
        np.testing.assert_allclose([got[d] for d in ids], offline, rtol=1e-5, atol=1e-6)
        assert [hit.score for hit in hits] == sorted(got.values(), reverse=True)
        assert [ids[hit.position] for hit in hits] == [hit.id for hit in hits]


def test_onnx_runtime_gives_the_same_ranking(trained, synthetic):
    files, model_dir = trained
    featurizer = TextFeaturizer.load(files.directory / "featurizer")
    torch_ = TextReranker(featurizer, load_predictor(str(model_dir), "torch"))
    onnx = TextReranker(
        featurizer, load_predictor(str(model_dir), "onnx", export_missing_onnx=True)
    )
    assert onnx.predictor.backend == "onnx"
    texts = [doc_text(d) for d in synthetic.docs[:12]] + ["a text no collection held"]
    for query in ("the zorbax quillet", "grelbo and unknown words", "xyzzy plugh"):
        np.testing.assert_allclose(
            onnx.scores(query, texts), torch_.scores(query, texts), rtol=1e-5, atol=1e-5
        )


def test_bad_calls_are_refused(trained):
    _, model_dir = trained
    reranker = TextReranker.load(model_dir, backend="torch")
    with pytest.raises(ConfigError, match="no candidates"):
        reranker.rerank("q", [])
    with pytest.raises(ConfigError, match="not one string"):
        reranker.rerank("q", "one text")
    with pytest.raises(ConfigError, match="2 ids for 3 candidate texts"):
        reranker.rerank("q", ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ConfigError, match="'x' is given twice"):
        reranker.rerank("q", ["a", "b", "c"], ["x", "y", "x"])
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        reranker.rerank("q", ["a"], top_k=0)
    assert len(reranker.rerank("q", ["a", "b", "c"], top_k=2)) == 2
    lexical_only = TextFeaturizer(reranker.featurizer.lexical)
    with pytest.raises(ConfigError, match=r"do not belong together.*sim_pre"):
        TextReranker(lexical_only, reranker.predictor)


def test_cli_rerank_text(trained, synthetic, tmp_path, capsys):
    files, model_dir = trained
    docs = synthetic.docs[:6]
    hits_file = tmp_path / "hits.jsonl"
    hits_file.write_text("".join(json.dumps(d) + "\n" for d in docs))
    featurizer = str(files.directory / "featurizer")
    argv = ["rerank-text", "--featurizer", featurizer, "--model", str(model_dir),
            "--query", "the zorbax", "--docs", str(hits_file)]  # fmt: skip
    assert main([*argv, "--format", "json", "--backend", "torch"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == {"name": model_dir.name, "version": "unversioned"}
    printed = printed["candidates"]
    reranker = TextReranker.load(model_dir, backend="torch")
    expected = reranker.rerank(
        "the zorbax", [doc_text(d) for d in docs], [d["doc_id"] for d in docs]
    )
    assert [p["id"] for p in printed] == [h.id for h in expected]
    np.testing.assert_allclose([p["score"] for p in printed], [h.score for h in expected])
    assert main([*argv, "--top-k", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + 3 and table[1].split()[1] == expected[0].id
    hits_file.write_text('{"doc_id": "x"}\n')
    assert main(argv) == 2
    assert "no 'text' field" in capsys.readouterr().err


def test_training_bundles_the_featurizer_of_its_files(trained, tmp_path):
    """`ltr train` on text-features files copies their featurizer into the artifact, so the
    model alone reranks texts; its manifest and scores are the files' featurizer's."""
    files, model_dir = trained
    bundled = model_dir / "featurizer"
    source = files.directory / "featurizer"
    assert json.loads((bundled / "featurizer.json").read_text()) == json.loads(
        (source / "featurizer.json").read_text()
    )
    assert load_predictor(str(model_dir)).loaded.manifest.training["featurizer"] == str(
        source.resolve()
    )
    texts = ["zorbax quillet data", "grelbo study", "the mepron report of dravik"]
    explicit = TextReranker.load(model_dir, source, backend="torch")
    implicit = TextReranker.load(model_dir, backend="torch")
    np.testing.assert_array_equal(
        implicit.scores("zorbax", texts), explicit.scores("zorbax", texts)
    )
    # a model artifact without one says what to do
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns("featurizer"))
    with pytest.raises(ConfigError, match=r"carries no text featurizer.*featurizer folder"):
        TextReranker.load(bare, backend="torch")


def test_featurizer_beside_needs_one_folder_and_the_same_columns(trained, tmp_path):
    files, _ = trained
    names = TextFeaturizer.load(files.directory / "featurizer").feature_names
    train_file = files.files["train"]
    assert featurizer_beside([train_file], names) == (files.directory / "featurizer").resolve()
    assert featurizer_beside([train_file], names[:-1]) is None  # other columns
    elsewhere = tmp_path / "train.parquet"
    shutil.copy(train_file, elsewhere)
    assert featurizer_beside([train_file, elsewhere], names) is None  # two folders
    assert featurizer_beside([elsewhere], names) is None  # no featurizer there


def test_a_rank_aware_model_gets_each_lists_order_from_one(trained, synthetic, tmp_path):
    """The initial rank of the k-th given candidate is k (1-based, as training and `ltr evaluate`
    give it; 0 would mean 'unknown')."""
    files, _ = trained
    model_dir = make_artifact(
        tmp_path / "ranked", load_dataset(files.files["train"]), seed=3, use_initial_rank=True
    )
    reranker = TextReranker(
        TextFeaturizer.load(files.directory / "featurizer"), load_predictor(str(model_dir))
    )
    # the offline path scores the file's rows with ranks in file order = 1..n
    for query, _, texts, offline in offline_test_lists(files.files["test"], model_dir, synthetic):
        np.testing.assert_allclose(reranker.scores(query, texts), offline, rtol=1e-5, atol=1e-6)


def test_list_features_keep_lists_apart(trained):
    """Lists of equal length share a features() call; each list's rows are the ones it gets
    alone."""
    files, _ = trained
    featurizer = TextFeaturizer.load(files.directory / "featurizer")
    queries = ["zorbax", "grelbo study", "mepron dravik"]
    lists = [
        ["zorbax quillet data", "a study", "grelbo"],
        ["grelbo study", "tuvask", "the zorbax", "nothing here", ""],
        ["mepron", "dravik report", "zorbax"],
    ]
    together = featurizer.list_features(queries, lists)
    for query, texts, rows in zip(queries, lists, together, strict=True):
        alone = featurizer.features([query], texts, np.arange(len(texts))[None])[0]
        assert rows.shape == (len(texts), len(featurizer.feature_names))
        np.testing.assert_allclose(rows, alone, rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="2 candidate lists for 3 queries"):
        featurizer.list_features(queries, lists[:2])
