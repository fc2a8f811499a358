"""TextReranker and ``ltr rerank-text``: a query's candidate texts reranked in-process score as
the trained model scores the rows ``ltr text-features`` wrote, on PyTorch and ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltr.cli import main
from ltr.data.dataset import load_dataset
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.inference import score_lists
from ltr.predictor import load_predictor
from ltr.text.collection import load_collection
from ltr.text.config import TextDataConfig
from ltr.text.features import build_text_features
from ltr.text.featurizer import TextFeaturizer
from ltr.text.rerank import TextReranker
from ltr.train.config import load_train_config
from ltr.train.run import train

from .conftest import doc_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic, encoder_dir):
    """Feature files with one encoder, and the default SetRank trained on them for 2 epochs."""
    work = tmp_path_factory.mktemp("text_rerank")
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    files = build_text_features(config, {"pre": str(encoder_dir)}, work / "features")
    overrides = {
        "data.train": [str(files.files["train"])],
        "data.valid": [str(files.files["valid"])],
        "data.test": [str(files.files["test"])],
        "data.letor_root": None,
        "data.batch_size": 4,
        "trainer.max_epochs": 2,
        "trainer.progress_bar": False,
        "trainer.accelerator": "cpu",
        "tracking.enabled": False,
        "output_dir": str(work / "setrank"),
    }
    run = train(
        load_train_config(REPO / "configs" / "setrank_imsab.yaml", overrides), verbose=False
    )
    return files, run.artifact_dir


def test_test_queries_score_as_the_offline_path(trained, synthetic):
    """For every test query, its candidates' texts in the file's order get the scores that
    `ltr evaluate`'s path gives the written rows, and come back in that score order."""
    files, model_dir = trained
    reranker = TextReranker.load(files.directory / "featurizer", model_dir, backend="torch")
    data = load_dataset(files.files["test"])
    offline = score_lists(load_predictor(str(model_dir)).model, data)
    chunk, _ = read_parquet(files.files["test"])
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.doc_ids, collection.doc_texts, strict=True))
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    qids = np.asarray([str(q) for q in chunk.qids])
    for q in dict.fromkeys(qids):
        rows = np.flatnonzero(qids == q)
        ids = [str(d) for d in chunk.doc_ids[rows]]
        hits = reranker.rerank(query_of[q], [text_of[d] for d in ids], ids)
        got = {hit.id: hit.score for hit in hits}
        np.testing.assert_allclose([got[d] for d in ids], offline[rows], rtol=1e-5, atol=1e-6)
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
    for query in ("the zorbax quillet", "grelbo and unknown words", ""):
        np.testing.assert_allclose(
            onnx.scores(query, texts), torch_.scores(query, texts), rtol=1e-5, atol=1e-5
        )


def test_bad_calls_are_refused(trained):
    files, model_dir = trained
    reranker = TextReranker.load(files.directory / "featurizer", model_dir, backend="torch")
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
    reranker = TextReranker.load(files.directory / "featurizer", model_dir, backend="torch")
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
