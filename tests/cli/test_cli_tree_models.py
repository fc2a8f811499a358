"""``ltr lightgbm-model`` and ``ltr xgboost-model``: a LambdaMART trained with LightGBM or
XGBoost becomes an artifact that ``ltr evaluate`` rates exactly as it rates the library's own
predictions, and that registers behind an alias on a real ``mlflow server``, carrying the
feature profile of its training data."""

from __future__ import annotations

import itertools
import json

import lightgbm
import numpy as np
import pytest

from ltr.artifact import load_model, save_linear_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.drift import FeatureProfile
from ltr.inference import score_lists
from tests.serve._helpers import hand_stats


def _evaluate(capsys, *argv: str) -> dict:
    assert main(["evaluate", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_rates_the_artifact_as_it_rates_lightgbms_predictions(
    tmp_path, mq2008_dir, mq2008_lambdamart, capsys
):
    s5_path = mq2008_dir / "S5.txt.xz"
    s5 = load_dataset(s5_path)
    out = tmp_path / "lambdamart"
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(out), "--like", str(s5_path)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out}: 40 trees of up to 15 leaves" in said and "over 46 features" in said
    predicted = lightgbm.Booster(model_file=str(mq2008_lambdamart)).predict(s5.features)
    np.testing.assert_allclose(
        score_lists(load_model(out).model, s5), predicted, rtol=1e-6, atol=1e-6
    )
    scores = tmp_path / "lightgbm-scores.txt"
    scores.write_text("".join(f"{float(np.float32(p))!r}\n" for p in predicted))
    by_lightgbm = _evaluate(capsys, "--scores", str(scores), "--data", str(s5_path))
    by_artifact = _evaluate(capsys, "--model", str(out), "--data", str(s5_path))
    assert by_artifact.keys() == by_lightgbm.keys()
    for group, metrics in by_lightgbm.items():
        assert by_artifact[group] == pytest.approx(metrics, abs=1e-12), group


def test_evaluate_rates_an_xgboost_artifact_as_it_rates_xgboosts_predictions(
    tmp_path, mq2008_dir, capsys
):
    import xgboost

    s1_path, s5_path = mq2008_dir / "S1.txt.xz", mq2008_dir / "S5.txt.xz"
    s1, s5 = load_dataset(s1_path), load_dataset(s5_path)
    train = xgboost.DMatrix(s1.features, s1.labels, group=np.diff(s1.offsets))
    params = {"objective": "rank:ndcg", "max_depth": 5, "eta": 0.1, "nthread": 1}
    booster = xgboost.train(params, train, num_boost_round=40)
    model_file = tmp_path / "lambdamart.json"
    booster.save_model(str(model_file))
    out = tmp_path / "xgb"
    assert main(["xgboost-model", str(model_file), str(out), "--like", str(s5_path)]) == 0
    assert f"wrote {out}: 40 trees of up to" in capsys.readouterr().out
    predicted = booster.predict(xgboost.DMatrix(s5.features), output_margin=True)
    scores = tmp_path / "xgboost-scores.txt"
    scores.write_text("".join(f"{float(p)!r}\n" for p in predicted))  # float32 already
    by_xgboost = _evaluate(capsys, "--scores", str(scores), "--data", str(s5_path))
    by_artifact = _evaluate(capsys, "--model", str(out), "--data", str(s5_path))
    for group, metrics in by_xgboost.items():
        assert by_artifact[group] == pytest.approx(metrics, abs=1e-12), group
    assert main(["xgboost-model", str(s5_path), str(tmp_path / "bad")]) == 2
    assert "the XGBoost model is not JSON" in capsys.readouterr().err


def test_bad_input_is_refused_in_one_line(tmp_path, mq2008_lambdamart, capsys):
    assert main(["lightgbm-model", str(tmp_path / "none.txt"), str(tmp_path / "a")]) == 2
    assert "no LightGBM model file at" in capsys.readouterr().err
    like = save_linear_model(tmp_path / "two-features", ["a", "b"], {"a": 1.0})
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "b"),
                 "--like", str(like)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "the model reads 46 unnamed features but 2 features were given" in err
    # a booster trained on a bare array names no features: --like must
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "d")]) == 2
    assert "the model's features have no names: give the features it reads" in (
        capsys.readouterr().err
    )
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "c"),
                 "--alias", "champion"]) == 2  # fmt: skip
    assert "--alias needs --register NAME" in capsys.readouterr().err
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "a"),
                 "--profile-data", str(tmp_path / "train.txt")]) == 2  # fmt: skip
    assert "no such --profile-data file or folder" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_register_serves_the_lambdamart_as_champion_from_the_registry(
    tmp_path, mlflow_server, mq2008_dir, mq2008_lambdamart, monkeypatch, capsys
):
    from mlflow import MlflowClient

    name = "lightgbm-cli-lambdamart"
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    train = [str(mq2008_dir / f"S{i}.txt.xz") for i in (1, 2)]
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "lm"),
                 "--like", str(mq2008_dir / "S1.txt.xz"), "--register", name,
                 "--alias", "champion", "--tracking-uri", mlflow_server,
                 "--profile-data", *train]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert f"registered {name} version 1: models:/{name}@champion" in said
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    loaded = load_model(f"models:/{name}@champion")
    # the registered artifact carries the profile of S1 and S2's rows: shares counted by hand
    x = np.concatenate([load_dataset(f).features for f in train])
    profile = FeatureProfile.load(loaded.path)
    assert profile is not None and profile.rows == len(x) and f"{len(x):,} rows" in said
    for j in (0, 24):
        stats = profile.features[j]
        bounds = [-np.inf, *stats.edges, np.inf]
        hand = [np.mean((x[:, j] > lo) & (x[:, j] <= hi)) for lo, hi in itertools.pairwise(bounds)]
        assert stats.shares == pytest.approx(hand)
    # ...and of LightGBM's own predictions of those rows, as the scores the model gave them
    booster = lightgbm.Booster(model_file=str(mq2008_lambdamart))
    want = hand_stats(booster.predict(x))
    assert "and the model's scores of them" in said
    np.testing.assert_allclose(profile.score.edges, want["edges"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(profile.score.shares, want["shares"], atol=2 / len(x))
    assert profile.score.std == pytest.approx(want["std"], rel=1e-5)
    assert loaded.manifest.version == "1" and loaded.manifest.architecture == "gbdt"
    predicted = booster.predict(s1.features)
    np.testing.assert_allclose(score_lists(loaded.model, s1), predicted, rtol=1e-6, atol=1e-6)
    version = MlflowClient(tracking_uri=mlflow_server).get_model_version(name, "1")
    run = MlflowClient(tracking_uri=mlflow_server).get_run(version.run_id)
    assert run.data.params["trees"] == "40"
    assert run.data.tags["ltr.run_type"] == "lightgbm-model"
