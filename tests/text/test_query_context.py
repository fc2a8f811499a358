"""A query's encoder vector as the reranker's per-list context (``--context-encoder``).

``ltr text-features --context-encoder NAME`` writes each query's unit vector from the bi-encoder
NAME as the list column ``context`` on every row of the query; a SetRank trained with
``model.context_dim`` reads it; the featurizer bundled into that model gives new queries theirs,
in-process (``TextReranker``) and over gRPC (``RerankText``). Checked against vectors computed
by hand from the encoder's hidden states, and against ``ltr evaluate``'s offline path on the
written files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.artifact import ArtifactError
from ltr.cli import main
from ltr.data.parquet import ParquetListWriter
from ltr.data.svmlight import RowChunk
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm, save_lm
from ltr.predictor import load_predictor
from ltr.text.config import TextDataConfig
from ltr.text.cross import new_head
from ltr.text.features import build_text_features
from ltr.text.featurizer import TextFeaturizer, featurizer_beside
from ltr.text.rerank import TextReranker
from ltr.train.config import DataConfig
from ltr.train.datamodule import unread_context

from .conftest import (
    BLOCK,
    check_served_as_offline,
    offline_test_lists,
    tiny_lm,
    train_setrank,
    unit_mean_hidden,
)

CONTEXT_DIM = 8
"""The context encoder's d_model: not the similarity encoder's 16, so a vector from the wrong
encoder cannot pass."""


@pytest.fixture(scope="module")
def context_encoder_dir(tmp_path_factory, encoder_dir):
    """A second tiny masked LM (other weights, d_model 8) on the same tokenizer."""
    tokenizer = load_lm(encoder_dir).tokenizer
    model = tiny_lm(tokenizer.vocab_size, seed=3, d_model=CONTEXT_DIM, d_ff=16)
    return save_lm(model, tokenizer, tmp_path_factory.mktemp("context_encoder") / "model")


@pytest.fixture(scope="module")
def with_context(tmp_path_factory, synthetic, encoder_dir, context_encoder_dir):
    """Feature files with a context column from ``ctx``, and SetRank trained on them."""
    work = tmp_path_factory.mktemp("query_context")
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    encoders = {"pre": str(encoder_dir), "ctx": str(context_encoder_dir)}
    files = build_text_features(config, encoders, work / "features", context_encoder="ctx")
    model_dir = train_setrank(
        files.files, work / "setrank", epochs=2, **{"model.context_dim": CONTEXT_DIM}
    )
    return files, model_dir


def hand_context(encoder_dir, text: str) -> np.ndarray:
    """The unit mean of the encoder's final hidden states over the text's tokens (float64)."""
    lm = load_lm(encoder_dir)
    return unit_mean_hidden(lm.model, lm.tokenizer.encode_batch([text])[0][:BLOCK])


def test_every_row_carries_its_querys_vector_from_the_context_encoder(
    with_context, synthetic, context_encoder_dir
):
    files, _ = with_context
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    assert (files.context_encoder, files.context_dim) == ("ctx", CONTEXT_DIM)
    assert files.feature_names[-2:] == ["sim_pre", "sim_ctx"]  # its similarity column too
    seen = 0
    for part, path in files.files.items():
        table = pq.read_table(path)
        context = np.asarray(table.column("context").to_pylist(), dtype=np.float64)
        assert context.shape == (table.num_rows, CONTEXT_DIM), part
        qids = table.column("qid").to_pylist()
        for q in dict.fromkeys(qids):
            rows = [i for i, x in enumerate(qids) if x == q]
            want = hand_context(context_encoder_dir, query_of[q])
            np.testing.assert_allclose(context[rows], np.tile(want, (len(rows), 1)), atol=2e-6)
            seen += 1
    assert seen == len(synthetic.queries)
    facts = json.loads((files.directory / "features.json").read_text())
    assert (facts["context_encoder"], facts["context_dim"]) == ("ctx", CONTEXT_DIM)


def test_reranking_new_texts_scores_as_the_offline_path(with_context, synthetic):
    """The model carries the featurizer; the query vector it computes for each test query is
    the one the file holds, so every candidate gets the offline path's score."""
    files, model_dir = with_context
    assert (model_dir / "featurizer").is_dir()
    reranker = TextReranker.load(model_dir, backend="torch")
    assert reranker.featurizer.context_encoder == "ctx"
    lists = list(offline_test_lists(files.files["test"], model_dir, synthetic))
    for query, ids, texts, offline in lists:
        got = {hit.id: hit.score for hit in reranker.rerank(query, texts, ids)}
        np.testing.assert_allclose([got[d] for d in ids], offline, rtol=1e-5, atol=1e-6)
    # the context is read: another query's vector gives other scores
    query, _, texts, offline = lists[0]
    features = reranker.featurizer.list_features([query], [texts])[0][None].astype(np.float32)
    other = reranker.featurizer.query_context(["an unrelated question"])
    moved = reranker.predictor.predict(features, np.ones(features.shape[:2], bool), None, other)
    assert np.abs(moved[0] - offline).max() > 1e-4


def test_rerank_text_over_grpc_gets_the_offline_scores(with_context, synthetic, tmp_path):
    """A real ``ltr serve`` (ONNX Runtime, exported on load) computes each query's context in
    the batch and answers RerankText with the offline path's scores."""
    files, model_dir = with_context
    spec = check_served_as_offline(tmp_path, model_dir, files.files["test"], synthetic)
    assert spec.context_dim == CONTEXT_DIM


def test_cli_text_features_and_rerank_text_with_a_context_encoder(
    tmp_path, synthetic, encoder_dir, with_context, capsys
):
    out = tmp_path / "features"
    argv = ["text-features", "--data.collection", str(synthetic.root), "--data.candidates", "10",
            "--encoder", f"pre={encoder_dir}", "--context-encoder", "pre", "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "context: 16 values per query, the query's vector from pre" in printed
    assert "--model.context_dim 16" in printed
    assert pq.read_schema(out / "train.parquet").field("context").type.list_size == 16

    _, model_dir = with_context
    hits = tmp_path / "hits.jsonl"
    hits.write_text("".join(json.dumps(d) + "\n" for d in synthetic.docs[:5]))
    argv = ["rerank-text", "--model", str(model_dir), "--query", "the zorbax",
            "--docs", str(hits), "--backend", "torch", "--format", "json"]  # fmt: skip
    assert main(argv) == 0
    reranker = TextReranker.load(model_dir, backend="torch")
    texts = [f"{d['title']}\n{d['text']}" for d in synthetic.docs[:5]]
    scores = reranker.scores("the zorbax", texts)
    want = dict(zip([d["doc_id"] for d in synthetic.docs[:5]], scores, strict=True))
    printed = json.loads(capsys.readouterr().out)["candidates"]
    assert [hit["id"] for hit in printed] == sorted(want, key=lambda d: -want[d])
    np.testing.assert_allclose([hit["score"] for hit in printed], sorted(want.values())[::-1])


# ---------------------------------------------------------------------------- errors
def test_a_context_encoder_must_be_one_of_the_bi_encoders(tmp_path, synthetic, encoder_dir):
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    with pytest.raises(ConfigError, match=r"'ctx' is not one of the encoders given \(pre\)"):
        build_text_features(
            config, {"pre": str(encoder_dir)}, tmp_path / "a", context_encoder="ctx"
        )
    lm = load_lm(encoder_dir)
    cross = save_lm(lm.model, lm.tokenizer, tmp_path / "cross", head=new_head(16, seed=0))
    with pytest.raises(ConfigError, match=r"'ce' is a cross-encoder.*name a bi-encoder"):
        build_text_features(config, {"ce": str(cross)}, tmp_path / "b", context_encoder="ce")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_model_and_featurizer_whose_contexts_differ_are_refused(with_context, trained):
    files, model_dir = with_context
    with_ctx = TextFeaturizer.load(files.directory / "featurizer")
    context_model = load_predictor(str(model_dir), "torch")
    without = TextFeaturizer(with_ctx.lexical, with_ctx.encoders, with_ctx.sources)
    with pytest.raises(ConfigError, match=r"context vector of 8 values.*gives none"):
        TextReranker(without, context_model)
    without.context_encoder = "pre"  # a vector of 16 values
    with pytest.raises(ConfigError, match=r"8 values from the column.*16 values of encoder 'pre'"):
        TextReranker(without, context_model)
    with pytest.raises(ConfigError, match="gives no context vector"):
        TextFeaturizer(with_ctx.lexical, with_ctx.encoders).query_context(["q"])
    # a model without a context reads the featurizer's columns and ignores its vectors
    _, plain_model = trained
    plain = TextFeaturizer.load(trained[0].directory / "featurizer")
    plain.context_encoder = "pre"
    TextReranker(plain, load_predictor(str(plain_model), "torch")).scores("q", ["a", "b"])


def test_a_saved_featurizer_with_a_broken_context_is_refused(with_context, tmp_path):
    files, _ = with_context
    folder = tmp_path / "featurizer"
    shutil.copytree(files.directory / "featurizer", folder)
    manifest = folder / "featurizer.json"
    data = json.loads(manifest.read_text())
    for broken, match in (
        ({"context_encoder": "nope"}, "context encoder 'nope' is not one of its encoders"),
        ({"context_dim": 16}, "context_dim does not match"),
    ):
        manifest.write_text(json.dumps({**data, **broken}))
        with pytest.raises(ArtifactError, match=match):
            TextFeaturizer.load(folder)


def test_training_bundles_only_a_featurizer_that_gives_the_models_context(with_context):
    files, _ = with_context
    names = files.feature_names
    folder = files.directory / "featurizer"
    assert featurizer_beside(list(files.files.values()), names, CONTEXT_DIM) == folder
    assert featurizer_beside(list(files.files.values()), names, 0) == folder
    assert featurizer_beside(list(files.files.values()), names, 16) is None


def test_the_writer_takes_context_vectors_only_of_its_width(tmp_path):
    chunk = RowChunk(
        np.array(["q1", "q1"], dtype=object),
        np.array(["a", "b"], dtype=object),
        np.zeros(2, np.float32),
        np.ones((2, 3), np.float32),
    )
    with (
        pytest.raises(ValueError, match=r"got none, the file takes shape \(2, 4\)"),
        ParquetListWriter(tmp_path / "a.parquet", 3, context_dim=4) as writer,
    ):
        writer.write(chunk)
    with (
        pytest.raises(ValueError, match=r"got shape \(2, 4\), the file takes none"),
        ParquetListWriter(tmp_path / "b.parquet", 3) as writer,
    ):
        writer.write(chunk, np.zeros((2, 4)))
    assert not list(tmp_path.iterdir())  # nothing half-written is left
    with ParquetListWriter(tmp_path / "c.parquet", 3, context_dim=2) as writer:
        writer.write(chunk, np.array([[0.5, -1.0], [0.5, -1.0]]))
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.column("context").to_pylist() == [[0.5, -1.0], [0.5, -1.0]]


def test_training_without_the_context_says_the_files_carry_one(
    with_context, trained, tmp_path, capsys
):
    files, _ = with_context
    splits = {f"data.{part}": [str(path)] for part, path in files.files.items()}
    assert unread_context(DataConfig(**_data(splits)), 0) == CONTEXT_DIM
    assert unread_context(DataConfig(**_data(splits)), CONTEXT_DIM) == 0  # it reads it
    plain = {f"data.{part}": [str(p)] for part, p in trained[0].files.items()}
    assert unread_context(DataConfig(**_data(plain)), 0) == 0  # no context column
    config = Path(__file__).resolve().parents[2] / "configs" / "setrank_imsab.yaml"
    argv = ["train", "--config", str(config), "--trainer.max_epochs", "1", "--quiet",
            "--tracking.enabled", "false", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    for key, value in splits.items():
        argv += [f"--{key}", *value]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"carry a context vector of {CONTEXT_DIM} values" in err
    assert f"--model.context_dim {CONTEXT_DIM}" in err


def _data(splits: dict) -> dict:
    return {key.removeprefix("data."): value for key, value in splits.items()}


def test_a_query_whose_rows_were_just_computed_is_not_encoded_again(
    with_context, context_encoder_dir, monkeypatch
):
    """Reranking computes the rows (the context encoder's ``sim_ctx`` column encodes the query)
    and then the context: the vector is taken from the first, and is the same as computed
    alone."""
    import ltr.text.featurizer as featurizer_module

    files, _ = with_context
    featurizer = TextFeaturizer.load(files.directory / "featurizer")
    encoded: list[tuple[int, list[str]]] = []
    encode = featurizer_module._encode

    def counting(lm, texts, progress=None):
        encoded.append((lm.model.config.d_model, list(texts)))
        return encode(lm, texts, progress)

    monkeypatch.setattr(featurizer_module, "_encode", counting)
    queries = ["the zorbax quillet", "grelbo tuvask"]
    featurizer.list_features(queries, [["a text", "another"], ["one more", "and", "last"]])

    def query_encodes() -> list[str]:  # the query texts the context encoder has encoded
        return sorted(
            t for dim, texts in encoded if dim == CONTEXT_DIM for t in texts if t in queries
        )

    assert query_encodes() == sorted(queries)  # for the sim_ctx column
    context = featurizer.query_context(queries)
    assert query_encodes() == sorted(queries)  # not again
    for query, vector in zip(queries, context, strict=True):
        np.testing.assert_allclose(vector, hand_context(context_encoder_dir, query), atol=2e-6)
    fresh = featurizer.query_context(["a query never met"])  # not kept: encoded now
    assert encoded[-1] == (CONTEXT_DIM, ["a query never met"])
    np.testing.assert_allclose(
        fresh[0], hand_context(context_encoder_dir, "a query never met"), atol=2e-6
    )
