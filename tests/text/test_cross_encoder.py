"""Cross-encoders: ``query [SEP] document`` read as one sequence, a linear head on the pooled
final hidden states.

Every score is checked against one computed here: each pair built by hand and run alone (no
padding, no batching) through the model, pooled by hand (the mean of a masked model's states,
the last state of a causal model's) and multiplied by the head's weights in float64. Then a
real ``ltr finetune`` run with ``architecture: cross`` on the synthetic collection (it learns,
its saved head reproduces its metrics, its registered pyfunc scores pairs), its ``cross_``
column in ``ltr text-features`` (written rows, the saved featurizer, a reranker trained on them,
cross-fitted training rows), and the errors.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from ltr.artifact import ArtifactError
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.lm.artifact import CROSS_HEAD, LM_MANIFEST, load_lm, save_lm
from ltr.text.collection import load_collection
from ltr.text.config import load_finetune_config
from ltr.text.cross import cross_scores, new_head, pair_row
from ltr.text.encoder import TokenizedTexts
from ltr.text.features import build_text_features
from ltr.text.featurizer import TextFeaturizer
from ltr.text.finetune import FinetuneModule, ListBatchCollator, TrainingLists, finetune
from ltr.text.rerank import TextReranker

from .conftest import (
    BLOCK,
    check_served_as_offline,
    hand_ndcg,
    offline_test_lists,
    tiny_lm,
    train_setrank,
)
from .test_finetune import finetune_overrides, split_lists


# ---------------------------------------------------------------------------- by hand
def hand_pair(query: list[int], doc: list[int], sep: int, block: int) -> list[int]:
    """The pair as the module docstring says: the query cut to half the block, [SEP], the
    document cut to what is left."""
    q = query[: block // 2]
    return [*q, sep, *doc][:block]


def hand_score(model, head, ids: list[int]) -> float:
    """One unpadded pair through the model alone; pooled and headed in float64."""
    with torch.no_grad():
        h = model.hidden(torch.tensor([ids]))[0].double().numpy()  # (T, d)
    pooled = h[-1] if model.is_causal else h.mean(axis=0)
    w = head.weight.detach().double().numpy()[0]
    return float(pooled @ w + head.bias.detach().double().item())


def hand_scores(loaded, query_texts, doc_texts, doc_index) -> np.ndarray:
    """``[Q, K]`` the cross-encoder's score of query ``q`` with ``doc_texts[doc_index[q, k]]``,
    every pair built from the tokenizer's ids and run alone."""
    tok, block = loaded.tokenizer, loaded.model.config.block_size
    out = np.zeros(np.shape(doc_index))
    for q, query in enumerate(query_texts):
        query_ids = tok.encode(query)[:block] or [tok.sep_id]
        for k, d in enumerate(doc_index[q]):
            doc_ids = tok.encode(doc_texts[d])[:block] or [tok.sep_id]
            out[q, k] = hand_score(
                loaded.model, loaded.head, hand_pair(query_ids, doc_ids, tok.sep_id, block)
            )
    return out


def test_pair_rows_cut_the_query_to_half_the_block_and_the_document_to_the_rest():
    q, d = np.arange(1, 8), np.arange(100, 120)
    assert pair_row(q[:3], d[:2], 0, 10).tolist() == [1, 2, 3, 0, 100, 101]
    assert pair_row(q, d, 0, 10).tolist() == [1, 2, 3, 4, 5, 0, 100, 101, 102, 103]
    assert pair_row(q[:2], d, 0, 10).tolist() == [1, 2, 0, *range(100, 107)]
    assert pair_row(q[:1], d[:0], 0, 4).tolist() == [1, 0]


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_cross_scores_by_hand_whatever_the_batch(kind, encoder_dir, synthetic):
    tok = load_lm(encoder_dir).tokenizer
    model = tiny_lm(tok.vocab_size, seed=3, kind=kind)
    head = new_head(model.config.d_model, seed=5)
    with torch.no_grad():
        head.bias.fill_(0.25)
    collection = load_collection(synthetic.root)
    queries = ["the zorbax quillet", "grelbo", "a much longer query " * 6]
    rows = [np.asarray(tok.encode(t)[:BLOCK], dtype=np.int64) for t in queries]
    docs = [np.asarray(tok.encode(t)[:BLOCK], dtype=np.int64) for t in collection.doc_texts]
    index = np.array([[0, 5, 9, 2], [3, 3, 7, 0], [1, 4, 6, 8]])
    got = cross_scores(
        model, head, rows, docs, index, sep_id=tok.sep_id, pad_id=tok.pad_id, batch_size=5
    )
    want = np.array(
        [
            [
                hand_score(
                    model, head, hand_pair(rows[q].tolist(), docs[d].tolist(), tok.sep_id, BLOCK)
                )
                for d in index[q]
            ]
            for q in range(3)
        ]
    )
    assert len(rows[2]) > BLOCK // 2  # the long query is cut
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(want) > 1e-3  # the pairs score differently
    assert got[1, 0] == got[1, 1]  # the same pair twice


def test_cross_scores_run_in_eval_mode_and_give_training_mode_back(encoder_dir):
    """Dropout is off while scoring (the same pair twice scores the same), and a model and head
    that were training are training again afterwards."""
    tok = load_lm(encoder_dir).tokenizer
    model = tiny_lm(tok.vocab_size, seed=4, dropout=0.5).train()
    head = new_head(model.config.d_model, seed=1).train()
    rows = [np.asarray(tok.encode("the zorbax quillet"), dtype=np.int64)]
    docs = [np.asarray(tok.encode("zorbax data model"), dtype=np.int64)]
    got = cross_scores(
        model, head, rows, docs, np.zeros((1, 3), dtype=np.int64), sep_id=tok.sep_id,
        pad_id=tok.pad_id, batch_size=1,
    )  # fmt: skip
    assert model.training and head.training
    model.eval()
    want = hand_score(model, head, hand_pair(rows[0].tolist(), docs[0].tolist(), tok.sep_id, BLOCK))
    np.testing.assert_allclose(got[0], [want] * 3, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:You are trying to")  # self.log() outside a Trainer
def test_training_step_of_a_cross_encoder_is_softmax_cross_entropy_of_pair_scores(
    encoder_dir, synthetic
):
    loaded = load_lm(encoder_dir)
    tok = loaded.tokenizer
    collection = load_collection(synthetic.root)
    lists = split_lists(synthetic, "train")
    texts = TokenizedTexts.build(tok, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK)
    ds = TrainingLists(lists, list_size=5, seed=0)
    items = [ds[i] for i in range(3)]
    batch = ListBatchCollator(texts, lists, cross=True, block_size=BLOCK)(items)
    assert batch["pairs"].shape[0] == 15 and batch["pairs"].shape[1] <= BLOCK
    model = tiny_lm(tok.vocab_size, seed=1)
    head = new_head(model.config.d_model, seed=2)
    loaded.model, loaded.head = model, head
    per_list = []
    for row, docs, labels in items:
        s = hand_scores(loaded, [lists.query_texts[row]], collection.doc_texts, docs[None])[0]
        log_p = s - s.max() - np.log(np.exp(s - s.max()).sum())
        per_list.append(-(labels / labels.sum() * log_p).sum())
    config = load_finetune_config(
        None, {"encoder": "unused", "architecture": "cross", "lm_weight": 0.0}
    )
    module = FinetuneModule(model, config, None, head)
    with torch.no_grad():
        got = float(module.training_step({"task": batch}, 0))
    assert got == pytest.approx(float(np.mean(per_list)), rel=1e-5)


# ---------------------------------------------------------------------------- a real run
EPOCHS = 12


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory, synthetic, encoder_dir):
    tmp = tmp_path_factory.mktemp("cross")
    options = finetune_overrides(
        tmp,
        synthetic,
        encoder_dir,
        architecture="cross",
        lm_weight=0.0,
        **{"trainer.max_epochs": EPOCHS, "tracking.registered_model": "text-tests-cross"},
    )
    config = load_finetune_config(None, options)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        return config, finetune(config, verbose=False)


def test_a_cross_encoder_learns_and_its_saved_head_reproduces_its_metrics(
    cross_run, synthetic, encoder_dir
):
    config, result = cross_run
    loaded = load_lm(result.artifact_dir)
    assert loaded.is_cross and (result.artifact_dir / CROSS_HEAD).exists()
    assert loaded.training["architecture"] == "cross"
    # a new head's scores mean nothing: no pretrained metric is reported
    assert not any("pretrained" in key for key in result.metrics)
    collection = load_collection(synthetic.root)
    untrained = load_lm(encoder_dir)
    untrained.head = new_head(untrained.model.config.d_model, config.trainer.seed)
    for part in ("valid", "test"):
        lists = split_lists(synthetic, part)
        scores = hand_scores(loaded, lists.query_texts, collection.doc_texts, lists.doc_index)
        assert result.metrics[f"{part}/finetuned_ndcg@10"] == pytest.approx(
            hand_ndcg(scores, lists.labels), abs=1e-6
        )
        start = hand_scores(untrained, lists.query_texts, collection.doc_texts, lists.doc_index)
        assert hand_ndcg(scores, lists.labels) > hand_ndcg(start, lists.labels) + 0.1


def test_the_registered_cross_encoder_scores_pairs_through_mlflow(cross_run, synthetic):
    config, result = cross_run
    assert result.alias_uri == "models:/text-tests-cross@candidate"
    mlflow.set_tracking_uri(config.tracking.tracking_uri)
    model = mlflow.pyfunc.load_model(result.alias_uri)
    texts = [synthetic.docs[0]["text"], synthetic.docs[4]["text"], ""]
    queries = ["the zorbax quillet", "grelbo tuvask", "the zorbax quillet"]
    got = model.predict(pd.DataFrame({"query": queries, "text": texts}))
    loaded = load_lm(result.artifact_dir)
    want = hand_scores(loaded, queries, texts, np.arange(3)[:, None])[:, 0]
    np.testing.assert_allclose(got["score"].to_numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"missing inputs \['query'\]"):
        model.predict(pd.DataFrame({"text": texts}))


@pytest.fixture(scope="module")
def cross_features(cross_run, tmp_path_factory):
    config, result = cross_run
    out = tmp_path_factory.mktemp("cross_features")
    return build_text_features(config.data, {"ce": str(result.artifact_dir)}, out)


def test_text_features_write_the_cross_encoder_column(cross_run, cross_features, synthetic):
    _, result = cross_run
    assert cross_features.feature_names[-1] == "cross_ce"
    assert cross_features.encoder_columns == {"ce": "cross_ce"}
    loaded = load_lm(result.artifact_dir)
    collection = load_collection(synthetic.root)
    row_of = {d: i for i, d in enumerate(collection.doc_ids)}
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    for part in ("train", "valid", "test"):
        chunk, names = read_parquet(cross_features.files[part])
        qids = [str(q) for q in chunk.qids]
        want = hand_scores(
            loaded,
            [query_of[q] for q in qids],
            collection.doc_texts,
            np.array([[row_of[str(d)]] for d in chunk.doc_ids]),
        )[:, 0]
        np.testing.assert_allclose(chunk.features[:, names.index("cross_ce")], want, atol=2e-6)


def test_the_saved_featurizer_scores_new_texts_with_the_cross_encoder(cross_features, cross_run):
    _, result = cross_run
    featurizer = TextFeaturizer.load(cross_features.directory / "featurizer")
    assert featurizer.feature_names == cross_features.feature_names
    assert featurizer.encoders["ce"].is_cross and featurizer.bi_encoders == {}
    assert featurizer.cache is not None  # the lexical part of the collection is still cached
    texts = ["zorbax quillet and something new", "", "grelbo"]
    got = featurizer.features(["the zorbax"], texts, np.array([[0, 1, 2]]))[0, :, -1]
    want = hand_scores(load_lm(result.artifact_dir), ["the zorbax"], texts, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(got, want[0], atol=2e-6)


@pytest.fixture(scope="module")
def cross_ranker(cross_features, tmp_path_factory) -> Path:
    """The default SetRank trained for one epoch on the files with the ``cross_ce`` column
    (``ltr train`` bundles their featurizer, cross-encoder included, into the model)."""
    output = tmp_path_factory.mktemp("cross_setrank") / "setrank"
    return train_setrank(cross_features.files, output, epochs=1)


def test_a_reranker_on_cross_encoder_features_gives_its_offline_scores(
    cross_features, cross_ranker, synthetic
):
    reranker = TextReranker.load(cross_ranker, backend="torch")
    assert reranker.featurizer.encoders["ce"].is_cross
    for query, ids, texts, offline in offline_test_lists(
        cross_features.files["test"], cross_ranker, synthetic
    ):
        got = {h.id: h.score for h in reranker.rerank(query, texts, ids)}
        np.testing.assert_allclose([got[d] for d in ids], offline, rtol=1e-5, atol=1e-6)


def test_rerank_text_over_grpc_with_a_cross_encoder(
    cross_features, cross_ranker, synthetic, tmp_path
):
    """A real ``ltr serve`` process (ONNX Runtime, exported on load) runs the cross-encoder of
    the featurizer the model carries on every text call."""
    spec = check_served_as_offline(tmp_path, cross_ranker, cross_features.files["test"], synthetic)
    assert spec.feature_names[-1] == "cross_ce"


def test_crossfitted_cross_encoders_score_the_training_rows(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    options = finetune_overrides(
        tmp_path,
        synthetic,
        encoder_dir,
        architecture="cross",
        crossfit_folds=2,
        lm_weight=0.0,
        **{"trainer.max_epochs": 2, "tracking.enabled": False},
    )
    config = load_finetune_config(None, options)
    monkeypatch.chdir(tmp_path)
    result = finetune(config, verbose=False)
    files = build_text_features(
        config.data, {"ce": str(result.artifact_dir)}, tmp_path / "features"
    )
    assert files.crossfit == {"ce": 2}
    collection = load_collection(synthetic.root)
    row_of = {d: i for i, d in enumerate(collection.doc_ids)}
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    chunk, names = read_parquet(files.files["train"])
    qids = [str(q) for q in chunk.qids]
    column = chunk.features[:, names.index("cross_ce")]
    for fold in result.folds:
        fold_lm = load_lm(result.artifact_dir / "crossfit" / f"fold{fold.fold}")
        assert fold_lm.is_cross
        rows = [i for i, q in enumerate(qids) if q in set(fold.held_out)]
        want = hand_scores(
            fold_lm,
            [query_of[qids[i]] for i in rows],
            collection.doc_texts,
            np.array([[row_of[str(chunk.doc_ids[i])]] for i in rows]),
        )[:, 0]
        np.testing.assert_allclose(column[rows], want, atol=2e-6)


# ---------------------------------------------------------------------------- errors
def test_architecture_must_be_bi_or_cross():
    with pytest.raises(ConfigError, match="architecture must be one of bi, cross"):
        load_finetune_config(None, {"architecture": "poly"})


def test_a_bi_encoder_run_refuses_a_cross_encoder(cross_run, synthetic, tmp_path):
    _, result = cross_run
    options = finetune_overrides(tmp_path, synthetic, result.artifact_dir)
    with pytest.raises(
        ConfigError, match=r"is a cross-encoder \(it scores .*\); set architecture: cross"
    ):
        finetune(load_finetune_config(None, options), verbose=False)


def test_broken_cross_encoder_artifacts_are_named(cross_run, tmp_path):
    import json
    import shutil

    _, result = cross_run
    no_head = tmp_path / "no_head"
    shutil.copytree(result.artifact_dir, no_head)
    (no_head / CROSS_HEAD).unlink()
    with pytest.raises(ArtifactError, match=r"is a cross-encoder but has no cross_head\.pt"):
        load_lm(no_head)
    other = tmp_path / "other"
    shutil.copytree(result.artifact_dir, other)
    manifest = json.loads((other / LM_MANIFEST).read_text())
    manifest["architecture"] = "poly"
    (other / LM_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unknown architecture 'poly'"):
        load_lm(other)


def test_saving_a_language_model_over_a_cross_encoder_drops_its_head(cross_run, tmp_path):
    import shutil

    _, result = cross_run
    target = tmp_path / "model"
    shutil.copytree(result.artifact_dir, target)
    loaded = load_lm(target)
    save_lm(loaded.model, loaded.tokenizer, target)
    assert not (target / CROSS_HEAD).exists() and not load_lm(target).is_cross


def test_cli_finetune_a_cross_encoder_then_text_features(tmp_path, synthetic, encoder_dir, capsys):
    from ltr.cli import main

    args = ["finetune", "--encoder", str(encoder_dir), "--architecture", "cross", "--quiet"]
    args += ["--data.collection", str(synthetic.root), "--data.candidates", "6"]
    args += ["--data.list_size", "4", "--lm_weight", "0", "--trainer.max_epochs", "1"]
    args += ["--trainer.accelerator", "cpu", "--tracking.enabled", "false"]
    args += ["--output_dir", str(tmp_path / "ft")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "  valid" in out and "—" in out  # no pretrained score for a new head
    model = tmp_path / "ft" / "model"
    assert load_lm(model).is_cross
    features = ["text-features", "--data.collection", str(synthetic.root)]
    features += ["--data.candidates", "6", "--out", str(tmp_path / "f"), "--encoder"]
    assert main([*features, f"ce={model}"]) == 0
    captured = capsys.readouterr()
    assert "cross_ce" in captured.out and "NDCG@10 of cross_ce alone" in captured.out
    assert "train: pairs (ce)" in captured.err  # a progress bar over the pairs it scores
    _, names = read_parquet(tmp_path / "f" / "test.parquet")
    assert names[-1] == "cross_ce"


@pytest.mark.slow
def test_a_cross_encoder_run_resumes_after_sigkill_to_the_uninterrupted_head(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    """The head is part of the resume state: killed after its first epoch and resumed, a
    cross-encoder run ends with the weights, head and metrics of an uninterrupted one."""
    from tests.train.test_train_resume import assert_same_weights, run_and_kill

    from .test_finetune import uninterrupted_run

    extra = {"architecture": "cross", "trainer.max_epochs": 4, "tracking.enabled": False}
    whole, options, cut_dir = uninterrupted_run(
        tmp_path, synthetic, encoder_dir, monkeypatch, **extra
    )
    run_and_kill("finetune", options, cut_dir / "out", cwd=cut_dir)
    monkeypatch.chdir(cut_dir)
    resumed = finetune(load_finetune_config(None, options), verbose=False, resume=True)
    assert resumed.epochs == whole.epochs == 4
    assert resumed.best_epoch == whole.best_epoch and resumed.metrics == whole.metrics
    for name in ("model.pt", CROSS_HEAD):
        assert_same_weights(
            torch.load(resumed.artifact_dir / name), torch.load(whole.artifact_dir / name)
        )


def test_fine_tuning_a_cross_encoder_further_starts_from_its_head(cross_run, synthetic, tmp_path):
    """Given a cross-encoder, a cross run starts from its model and head: the run's
    "pretrained" NDCG is the given model's fine-tuned NDCG."""
    _, result = cross_run
    options = finetune_overrides(
        tmp_path,
        synthetic,
        result.artifact_dir,
        architecture="cross",
        **{"trainer.max_epochs": 1, "tracking.enabled": False},
    )
    again = finetune(load_finetune_config(None, options), verbose=False)
    for part in ("valid", "test"):
        assert again.metrics[f"{part}/pretrained_ndcg@10"] == pytest.approx(
            result.metrics[f"{part}/finetuned_ndcg@10"], abs=1e-6
        )
