"""``ltr linear-model``: a hand-set linear scorer written as an artifact that scores the weighted
sum of the raw features (checked with numpy), its features taken from a data file, a model or a
text featurizer; malformed weights and unknown features are refused with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltr.artifact import BUNDLED_FEATURIZER, load_model, save_linear_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.errors import ConfigError
from ltr.inference import score_lists
from ltr.text.featurizer import LEXICAL_FEATURES, LexicalStats, TextFeaturizer
from tests.serve._helpers import make_artifact


def test_a_bm25_scorer_like_a_letor_file_scores_the_weighted_sum(tmp_path, mq2008_dir, capsys):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    out = tmp_path / "bm25"
    argv = ["linear-model", str(out), "--weight", "f25=1", "--weight", "f3=-0.5",
            "--like", str(mq2008_dir / "S1.txt.xz")]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "score = 1 x f25 + -0.5 x f3, over 46 features" in said
    loaded = load_model(out)
    assert loaded.manifest.feature_names == list(s1.feature_names)
    assert loaded.manifest.version == "bm25"  # the folder's name, as a run id would be
    want = s1.features[:, 24] - 0.5 * s1.features[:, 2]  # f25 and f3 (1-based names)
    np.testing.assert_allclose(score_lists(loaded.model, s1), want, rtol=1e-6, atol=1e-5)
    assert not (out / BUNDLED_FEATURIZER).exists()

    # like a model: its feature names
    model = make_artifact(tmp_path / "model", s1, seed=1)
    assert main(["linear-model", str(tmp_path / "b2"), "--weight", "f1=2", "--like",
                 str(model)]) == 0  # fmt: skip
    assert load_model(tmp_path / "b2").manifest.feature_names == list(s1.feature_names)

    # with its "training data" profiled, `ltr drift` can watch it: S1 against itself is still
    assert "carries no feature profile" in _drift_err(capsys, out, mq2008_dir / "S1.txt.xz")
    assert main(["linear-model", str(out), "--weight", "f25=1", "--like", str(model),
                 "--profile-data", str(mq2008_dir / "S1.txt.xz")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["drift", "--model", str(out), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--format", "json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == len(s1.features) and len(report["features"]) == 46
    assert max(f["psi"] for f in report["features"]) == 0.0


def _drift_err(capsys, model, data) -> str:
    capsys.readouterr()
    assert main(["drift", "--model", str(model), "--data", str(data)]) == 2
    return capsys.readouterr().err


def test_a_scorer_like_a_text_featurizer_carries_it(tmp_path):
    """``--like`` a featurizer folder, then ``--like`` the scorer written: the featurizer comes
    along each time, so the scorer reranks texts."""
    from ltr.text.rerank import TextReranker

    docs = ["the cat sat on the mat", "dogs bark at cats", "a mat of straw", "cats and mats"]
    TextFeaturizer(LexicalStats.fit(docs)).save(tmp_path / "featurizer")
    assert main(["linear-model", str(tmp_path / "a"), "--weight", "query_coverage=1",
                 "--like", str(tmp_path / "featurizer")]) == 0  # fmt: skip
    assert main(["linear-model", str(tmp_path / "b"), "--weight", "query_coverage=1",
                 "--like", str(tmp_path / "a")]) == 0  # fmt: skip
    for folder in ("a", "b"):
        reranker = TextReranker.load(tmp_path / folder, backend="torch")
        assert reranker.featurizer.feature_names == LEXICAL_FEATURES
        # coverage of {cat, mat}: "cat" and "mat" are whole words in the first document only
        scores = reranker.scores("cat mat", docs)
        np.testing.assert_allclose(scores, [1.0, 0.0, 0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "reason"),
    [
        (["f25"], "'f25' is not FEATURE=NUMBER"),
        (["f25=high"], "'f25=high' is not FEATURE=NUMBER"),
        (["=1"], "'=1' is not FEATURE=NUMBER"),
        (["f25=nan"], "'f25=nan' is not FEATURE=NUMBER"),
        (["f25=1", "f25=2"], "names 'f25' twice"),
        (["bm25=1"], "no feature 'bm25' among the 46 features"),
    ],
)
def test_bad_weights_are_refused_and_nothing_is_written(
    tmp_path, mq2008_dir, capsys, weights, reason
):
    argv = ["linear-model", str(tmp_path / "out"), "--like", str(mq2008_dir / "S1.txt.xz")]
    for w in weights:
        argv += ["--weight", w]
    assert main(argv) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_source_that_is_neither_data_model_nor_featurizer_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["linear-model", str(tmp_path / "out"), "--weight", "f1=1", "--like"]
    assert main([*argv, str(tmp_path / "empty")]) == 2
    assert "ltr linear-model: error:" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "nowhere.txt")]) == 2
    assert "nowhere.txt" in capsys.readouterr().err


def test_a_featurizer_of_other_features_is_refused(tmp_path):
    TextFeaturizer(LexicalStats.fit(["a cat", "a dog"])).save(tmp_path / "featurizer")
    with pytest.raises(ConfigError, match=r"writes .*'bm25'.*not the features given"):
        save_linear_model(tmp_path / "x", ["f1", "f2"], {"f1": 1.0}, tmp_path / "featurizer")
    assert not (tmp_path / "x").exists()


def test_register_puts_the_scorer_in_the_registry_behind_an_alias(
    tmp_path, mlflow_server, mq2008_dir, monkeypatch, capsys
):
    """``--register bm25 --alias champion`` against a real ``mlflow server``: the run logs the
    weights, ``models:/NAME@champion`` loads a scorer of the same weighted sum, whose version is
    the registry's, and ``ltr registry list`` shows it."""
    from mlflow import MlflowClient

    name = "linear-cli-bm25"
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    argv = ["linear-model", str(tmp_path / "bm25"), "--weight", "f25=1", "--like",
            str(mq2008_dir / "S1.txt.xz"), "--tracking-uri", mlflow_server]  # fmt: skip
    assert main([*argv, "--alias", "champion"]) == 2
    assert "--alias needs --register NAME" in capsys.readouterr().err
    assert main([*argv, "--register", name, "--alias", "champion"]) == 0
    said = capsys.readouterr().out
    assert f"registered {name} version 1: models:/{name}@champion" in said
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    loaded = load_model(f"models:/{name}@champion")
    assert loaded.manifest.version == "1"
    np.testing.assert_allclose(score_lists(loaded.model, s1), s1.features[:, 24], atol=1e-5)
    version = MlflowClient(tracking_uri=mlflow_server).get_model_version(name, "1")
    run = MlflowClient(tracking_uri=mlflow_server).get_run(version.run_id)
    assert run.data.params["weight.f25"] == "1.0"
    assert run.data.tags["ltr.run_type"] == "linear-model"
    assert load_model(tmp_path / "bm25").manifest.training["run_id"] == version.run_id
    assert main(["registry", "list", name, "--tracking-uri", mlflow_server]) == 0
    assert "champion" in capsys.readouterr().out
