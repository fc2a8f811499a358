"""Cross-fitted encoder features: ``ltr finetune`` with ``crossfit_folds`` trains K more
encoders, each without one K-th of the training queries, and ``ltr text-features`` gives every
training query the similarities of the encoder that never saw it (docs/TEXT.md, "Fine-tuned
encoders and leakage").

What must hold, each checked against something computed here: the folds partition the training
queries; a fold encoder's training lists never hold a query it leaves out; the encoder trained
on all the training queries is the one a run without cross-fitting gives; every training row's
``sim_`` value is the cosine of the vectors of the fold encoder that left the query out, every
validation and test row the full encoder's; and a run killed inside a fold goes on to the
weights of an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from mlflow import MlflowClient

from ltr.cli import main
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm
from ltr.lm.encode import encode_texts
from ltr.text import finetune as finetune_module
from ltr.text.collection import load_collection, split_queries
from ltr.text.config import load_finetune_config
from ltr.text.features import build_text_features
from ltr.text.featurizer import TextFeaturizer
from ltr.text.finetune import TrainingLists, crossfit_assignment, finetune

from .conftest import hand_ndcg
from .test_finetune import finetune_overrides, split_lists, uninterrupted_run

FOLDS = 3


# ---------------------------------------------------------------------------- the folds
def test_crossfit_assignment_partitions_the_queries():
    ids = [f"q{i:02d}" for i in range(11)]
    parts = crossfit_assignment(ids, 3, seed=0)
    assert sorted(q for part in parts for q in part) == ids  # each id once
    assert sorted(len(p) for p in parts) == [3, 4, 4]
    for part in parts:
        assert part == sorted(part, key=ids.index)  # the ids' own order
    assert crossfit_assignment(ids, 3, seed=0) == parts
    assert crossfit_assignment(ids, 3, seed=1) != parts
    assert sorted(q for part in crossfit_assignment(ids, 11, seed=0) for q in part) == ids


@pytest.mark.parametrize(
    "folds, match", [(1, "at least 2 folds"), (12, "only 11 training queries")]
)
def test_crossfit_assignment_errors(folds, match):
    with pytest.raises(ConfigError, match=match):
        crossfit_assignment([f"q{i}" for i in range(11)], folds, seed=0)


@pytest.mark.parametrize("folds", [1, -2])
def test_crossfit_folds_config_must_be_zero_or_at_least_two(folds):
    with pytest.raises(ConfigError, match="crossfit_folds must be 0"):
        load_finetune_config(None, {"crossfit_folds": folds})


# ---------------------------------------------------------------------------- a real run
class SeenQueries:
    """Records, per training-list dataset in the order they are made, the query of every item
    a training step drew."""

    def __init__(self, monkeypatch):
        self.runs: list[set[str]] = []
        init, getitem = TrainingLists.__init__, TrainingLists.__getitem__
        runs = self.runs

        def spy_init(self, lists, *args, **kwargs):
            init(self, lists, *args, **kwargs)
            self._seen = set()
            runs.append(self._seen)

        def spy_getitem(self, index):
            row, docs, labels = getitem(self, index)
            self._seen.add(self.lists.query_ids[row])
            return row, docs, labels

        monkeypatch.setattr(TrainingLists, "__init__", spy_init)
        monkeypatch.setattr(TrainingLists, "__getitem__", spy_getitem)


@pytest.fixture(scope="module")
def crossfit_run(tmp_path_factory, synthetic, encoder_dir):
    tmp = tmp_path_factory.mktemp("crossfit")
    options = finetune_overrides(
        tmp, synthetic, encoder_dir, crossfit_folds=FOLDS, **{"trainer.max_epochs": 3}
    )
    config = load_finetune_config(None, options)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        seen = SeenQueries(mp)
        result = finetune(config, verbose=False)
    return config, result, seen.runs


def train_ids(synthetic) -> list[str]:
    return split_queries(load_collection(synthetic.root).query_ids)[0]


def test_each_fold_encoder_never_trains_on_the_queries_it_leaves_out(crossfit_run, synthetic):
    _, result, seen = crossfit_run
    train = train_ids(synthetic)
    assert len(result.folds) == FOLDS and len(seen) == FOLDS + 1  # K folds, then the full run
    held = [fold.held_out for fold in result.folds]
    assert sorted(q for part in held for q in part) == sorted(train)
    lists = split_lists(synthetic, "train")
    with_positive = {q for q, y in zip(lists.query_ids, lists.labels, strict=True) if y.max() > 0}
    for fold, drawn in zip(result.folds, seen, strict=False):
        assert drawn == with_positive - set(fold.held_out)  # all the others, none of its own
    assert seen[-1] == with_positive  # the full encoder trains on every training query


def test_fold_encoders_are_saved_inside_the_model_directory(crossfit_run, synthetic):
    _, result, _ = crossfit_run
    loaded = load_lm(result.artifact_dir)
    facts = loaded.training["crossfit"]
    assert facts["folds"] == FOLDS
    assert facts["held_out"] == [fold.held_out for fold in result.folds]
    full = loaded.model.state_dict()
    for fold in result.folds:
        fold_lm = load_lm(result.artifact_dir / "crossfit" / f"fold{fold.fold}")
        assert fold_lm.training["held_out"] == fold.held_out
        weights = fold_lm.model.state_dict()
        assert not all(torch.equal(full[k], weights[k]) for k in full)  # its own encoder
        # its NDCG@10 on the queries it left out, computed here from its vectors
        lists = split_lists(synthetic, "train")
        rows = [lists.query_ids.index(q) for q in fold.held_out]
        held = lists.take(rows)
        collection = load_collection(synthetic.root)
        docs = encode_texts(fold_lm.model, fold_lm.tokenizer, collection.doc_texts)
        queries = encode_texts(fold_lm.model, fold_lm.tokenizer, held.query_texts)
        scores = np.einsum("qd,qkd->qk", queries, docs[held.doc_index])
        assert fold.metrics["held_out/finetuned_ndcg@10"] == pytest.approx(
            hand_ndcg(scores, held.labels), abs=1e-6
        )


def test_the_full_encoder_is_the_one_a_run_without_crossfitting_gives(
    crossfit_run, tmp_path, synthetic, encoder_dir, monkeypatch
):
    _, result, _ = crossfit_run
    monkeypatch.chdir(tmp_path)
    options = finetune_overrides(tmp_path, synthetic, encoder_dir, **{"trainer.max_epochs": 3})
    options["tracking.enabled"] = False
    plain = finetune(load_finetune_config(None, options), verbose=False)
    assert plain.folds == [] and not (plain.artifact_dir / "crossfit").exists()
    a = torch.load(plain.artifact_dir / "model.pt")
    b = torch.load(result.artifact_dir / "model.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert plain.metrics == pytest.approx(result.metrics)


def test_fold_results_are_logged_with_the_run(crossfit_run):
    config, result, _ = crossfit_run
    client = MlflowClient(tracking_uri=config.tracking.tracking_uri)
    metrics = client.get_run(result.run_id).data.metrics
    for fold in result.folds:
        for key, value in fold.metrics.items():
            name = f"crossfit/fold{fold.fold}/{key}".replace("@", "_at_")
            assert metrics[name] == pytest.approx(value)
    runs = client.search_runs([client.get_run(result.run_id).info.experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]  # the folds open no run of their own


# ---------------------------------------------------------------------------- the features
def cosines(model_dir: Path, synthetic, query_ids: list[str], doc_ids: list[str]) -> np.ndarray:
    """Row-wise cosine of ``encode_texts`` vectors of each (query, document) pair."""
    loaded = load_lm(model_dir)
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.query_ids, collection.query_texts, strict=True))
    row_of = {d: i for i, d in enumerate(collection.doc_ids)}
    docs = encode_texts(loaded.model, loaded.tokenizer, collection.doc_texts)
    queries = encode_texts(loaded.model, loaded.tokenizer, [text_of[q] for q in query_ids])
    return np.einsum("nd,nd->n", queries, docs[[row_of[d] for d in doc_ids]])


@pytest.fixture(scope="module")
def feature_sets(crossfit_run, tmp_path_factory):
    config, result, _ = crossfit_run
    out = tmp_path_factory.mktemp("crossfit_features")
    encoders = {"ft": str(result.artifact_dir)}
    crossfit = build_text_features(config.data, encoders, out / "crossfit", context_encoder="ft")
    plain = build_text_features(
        config.data, encoders, out / "plain", crossfit=False, context_encoder="ft"
    )
    return crossfit, plain


def test_training_rows_come_from_the_fold_encoder_that_left_the_query_out(
    crossfit_run, feature_sets, synthetic
):
    _, result, _ = crossfit_run
    crossfit, plain = feature_sets
    assert crossfit.crossfit == {"ft": FOLDS} and plain.crossfit == {}
    fold_of = {q: fold.fold for fold in result.folds for q in fold.held_out}
    chunk, names = read_parquet(crossfit.files["train"])
    qids, doc_ids = [str(q) for q in chunk.qids], [str(d) for d in chunk.doc_ids]
    sim = chunk.features[:, names.index("sim_ft")]
    for k in range(FOLDS):
        rows = [i for i, q in enumerate(qids) if fold_of[q] == k]
        want = cosines(
            result.artifact_dir / "crossfit" / f"fold{k}",
            synthetic,
            [qids[i] for i in rows],
            [doc_ids[i] for i in rows],
        )
        np.testing.assert_allclose(sim[rows], want, atol=2e-6)
    full = cosines(result.artifact_dir, synthetic, qids, doc_ids)
    assert np.abs(sim - full).max() > 1e-3  # not the full encoder's
    plain_chunk, _ = read_parquet(plain.files["train"])
    np.testing.assert_allclose(plain_chunk.features[:, names.index("sim_ft")], full, atol=2e-6)
    # the other columns are the same in both files
    other = [j for j, n in enumerate(names) if n != "sim_ft"]
    np.testing.assert_array_equal(chunk.features[:, other], plain_chunk.features[:, other])


def test_validation_and_test_rows_and_the_featurizer_use_the_full_encoder(
    crossfit_run, feature_sets, synthetic
):
    _, result, _ = crossfit_run
    crossfit, _ = feature_sets
    for part in ("valid", "test"):
        chunk, names = read_parquet(crossfit.files[part])
        qids, doc_ids = [str(q) for q in chunk.qids], [str(d) for d in chunk.doc_ids]
        np.testing.assert_allclose(
            chunk.features[:, names.index("sim_ft")],
            cosines(result.artifact_dir, synthetic, qids, doc_ids),
            atol=2e-6,
        )
    featurizer = TextFeaturizer.load(crossfit.directory / "featurizer")
    served = featurizer.encoders["ft"]
    full = torch.load(result.artifact_dir / "model.pt")
    for key, value in served.model.state_dict().items():
        torch.testing.assert_close(value, full[key], rtol=0, atol=0)
    assert "crossfit" not in served.training  # its folds stay with the fine-tuning run
    facts = json.loads((crossfit.directory / "features.json").read_text())
    assert facts["crossfit"] == {"ft": FOLDS}


def test_query_context_is_cross_fitted_like_its_column(crossfit_run, feature_sets, synthetic):
    """With ``--context-encoder ft`` a training query's context vector is the fold encoder's
    that left it out; validation and test queries', and the no-crossfit file's, the full one's."""
    _, result, _ = crossfit_run
    crossfit, plain = feature_sets
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.query_ids, collection.query_texts, strict=True))
    fold_of = {q: fold.fold for fold in result.folds for q in fold.held_out}

    def vectors(model_dir: Path, qids: list[str]) -> np.ndarray:
        lm = load_lm(model_dir)
        return encode_texts(lm.model, lm.tokenizer, [text_of[q] for q in qids])

    for part in ("train", "valid", "test"):
        table = pq.read_table(crossfit.files[part])
        qids = [str(q) for q in table.column("qid").to_pylist()]
        context = np.asarray(table.column("context").to_pylist())
        full = vectors(result.artifact_dir, qids)
        if part != "train":
            np.testing.assert_allclose(context, full, atol=2e-6)
            continue
        for k in range(FOLDS):
            rows = [i for i, q in enumerate(qids) if fold_of[q] == k]
            fold_dir = result.artifact_dir / "crossfit" / f"fold{k}"
            np.testing.assert_allclose(
                context[rows], vectors(fold_dir, [qids[i] for i in rows]), atol=2e-6
            )
        assert np.abs(context - full).max() > 1e-3  # not the full encoder's
        plain_context = pq.read_table(plain.files[part]).column("context").to_pylist()
        np.testing.assert_allclose(np.asarray(plain_context), full, atol=2e-6)


def test_column_ndcg_of_crossfitted_training_rows(feature_sets):
    crossfit, _ = feature_sets
    chunk, names = read_parquet(crossfit.files["train"])
    q = len(dict.fromkeys(chunk.qids))
    want = hand_ndcg(
        chunk.features[:, names.index("sim_ft")].reshape(q, -1), chunk.labels.reshape(q, -1)
    )
    assert crossfit.column_ndcg["train"]["sim_ft"] == pytest.approx(want, abs=1e-6)


def test_fold_encoders_travel_with_the_registered_encoder(
    crossfit_run, feature_sets, tmp_path, monkeypatch
):
    """``models:/…@candidate`` (the registry's copy of the model directory) brings its fold
    encoders: the features built from it are the local directory's."""
    config, result, _ = crossfit_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config.tracking.tracking_uri)
    monkeypatch.setenv("LTR_CACHE_DIR", str(tmp_path / "cache"))
    files = build_text_features(config.data, {"ft": result.alias_uri}, tmp_path / "f")
    assert files.crossfit == {"ft": FOLDS}
    local, _ = feature_sets
    got, _ = read_parquet(files.files["train"])
    want, _ = read_parquet(local.files["train"])
    np.testing.assert_allclose(got.features, want.features, atol=1e-6)


def test_folds_made_for_another_split_are_refused(crossfit_run, tmp_path):
    config, result, _ = crossfit_run
    # a larger training share, same seed: the encoder saw none of the validation and test
    # queries, but its folds do not cover this split's training queries
    other = load_finetune_config(
        None, {"data.collection": config.data.collection, "data.query_fractions": [0.8, 0.1, 0.1]}
    )
    with pytest.raises(ConfigError, match="cross-fitted on another query split"):
        build_text_features(other.data, {"ft": str(result.artifact_dir)}, tmp_path / "f")
    # --no-crossfit takes the encoder as any other
    files = build_text_features(
        other.data, {"ft": str(result.artifact_dir)}, tmp_path / "g", crossfit=False
    )
    assert files.crossfit == {}


def test_no_crossfit_does_not_let_validation_queries_in(crossfit_run, tmp_path):
    """Another seed puts some of the encoder's training queries among the validation and test
    queries: refused, cross-fitted or not."""
    config, result, _ = crossfit_run
    other = load_finetune_config(
        None, {"data.collection": config.data.collection, "data.split_seed": 1}
    )
    for crossfit in (True, False):
        with pytest.raises(ConfigError, match=r"was fine-tuned on .* of this run's"):
            build_text_features(
                other.data, {"ft": str(result.artifact_dir)}, tmp_path / "f", crossfit=crossfit
            )


def test_missing_fold_encoders_are_named(crossfit_run, tmp_path):
    import shutil

    config, result, _ = crossfit_run
    copy = tmp_path / "model"
    shutil.copytree(result.artifact_dir, copy)
    shutil.rmtree(copy / "crossfit" / "fold1")
    with pytest.raises(ConfigError, match=r"lists 3 cross-fitted encoders but .*fold1 holds none"):
        build_text_features(config.data, {"ft": str(copy)}, tmp_path / "f")


# ---------------------------------------------------------------------------- the commands
def test_cli_finetune_crossfit_then_text_features(tmp_path, synthetic, encoder_dir, capsys):
    root = str(synthetic.root)
    common = ["--data.collection", root, "--data.candidates", "6", "--data.list_size", "4"]
    argv = ["finetune", "--encoder", str(encoder_dir), *common, "--lm_weight", "0"]
    argv += ["--trainer.max_epochs", "1", "--trainer.accelerator", "cpu"]
    argv += ["--tracking.enabled", "false", "--output_dir", str(tmp_path / "ft")]
    assert main([*argv, "--crossfit_folds", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    model = tmp_path / "ft" / "model"
    assert f"cross-fitted encoders (2, in {model / 'crossfit'}):" in out
    folds = load_lm(model).training["crossfit"]
    for k in range(2):
        line = next(x for x in out.splitlines() if x.startswith(f"  fold {k}: "))
        assert f"without {len(folds['held_out'][k])} training queries" in line
        assert line.endswith(f"{folds['metrics'][k]['held_out/finetuned_ndcg@10']:.4f}")
    features = ["text-features", *common, "--encoder", f"ft={model}", "--quiet"]
    assert main([*features, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "sim_ft on the training rows: cross-fitted, each query scored by the one of 2" in out
    assert main([*features, "--out", str(tmp_path / "b"), "--no-crossfit"]) == 0
    assert "cross-fitted" not in capsys.readouterr().out


# ---------------------------------------------------------------------------- resuming
@pytest.mark.slow
def test_crossfit_resumes_after_sigkill_inside_a_fold(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    """Killed once the second fold encoder's first epoch is saved, then resumed: the first fold
    is read back, not trained again, and every encoder ends as in an uninterrupted run."""
    from tests.train.test_train_resume import assert_same_weights, run_and_kill

    extra = {"trainer.max_epochs": 3, "crossfit_folds": FOLDS, "tracking.enabled": False}
    whole, options, cut_dir = uninterrupted_run(
        tmp_path, synthetic, encoder_dir, monkeypatch, **extra
    )
    run_and_kill("finetune", options, cut_dir / "out" / "crossfit" / "fold1", cwd=cut_dir)
    assert not (cut_dir / "out" / "model").exists()
    monkeypatch.chdir(cut_dir)
    fits = []
    real_fit = finetune_module._fit

    def counting_fit(config, *args, **kwargs):
        fits.append((Path(config.output_dir).name, kwargs["resume"]))
        return real_fit(config, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "_fit", counting_fit)
    resumed = finetune(load_finetune_config(None, options), verbose=False, resume=True)
    assert fits == [("fold1", True), ("fold2", False), ("out", False)]
    assert [f.held_out for f in resumed.folds] == [f.held_out for f in whole.folds]
    assert [f.metrics for f in resumed.folds] == [f.metrics for f in whole.folds]
    assert resumed.metrics == whole.metrics
    for part in ["model.pt", *(f"crossfit/fold{k}/model.pt" for k in range(FOLDS))]:
        assert_same_weights(
            torch.load(resumed.artifact_dir / part), torch.load(whole.artifact_dir / part)
        )


def test_resume_with_nothing_to_resume_says_so(tmp_path, synthetic, encoder_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = finetune_overrides(tmp_path, synthetic, encoder_dir, crossfit_folds=2)
    with pytest.raises(ConfigError, match="nothing to resume"):
        finetune(load_finetune_config(None, options), verbose=False, resume=True)


def test_candidate_lists_take(synthetic):
    lists = split_lists(synthetic, "train")
    part = lists.take([2, 0])
    assert part.query_ids == [lists.query_ids[2], lists.query_ids[0]]
    np.testing.assert_array_equal(part.doc_index, lists.doc_index[[2, 0]])
    np.testing.assert_array_equal(part.labels, lists.labels[[2, 0]])
    np.testing.assert_array_equal(part.relevant, lists.relevant[[2, 0]])
