"""``ltr lightgbm-model``: a LambdaMART trained with LightGBM becomes an artifact that
``ltr evaluate`` rates exactly as it rates LightGBM's own predictions, and that registers behind
an alias on a real ``mlflow server``."""

from __future__ import annotations

import json

import lightgbm
import numpy as np
import pytest

from ltr.artifact import load_model, save_linear_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.inference import score_lists


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
    # without --like: the booster's own feature names (LightGBM's Column_0...)
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "own")]) == 0
    assert load_model(tmp_path / "own").manifest.feature_names[:2] == ["Column_0", "Column_1"]


def test_bad_input_is_refused_in_one_line(tmp_path, mq2008_lambdamart, capsys):
    assert main(["lightgbm-model", str(tmp_path / "none.txt"), str(tmp_path / "a")]) == 2
    assert "no LightGBM model file at" in capsys.readouterr().err
    like = save_linear_model(tmp_path / "two-features", ["a", "b"], {"a": 1.0})
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "b"),
                 "--like", str(like)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "46 unnamed features (Column_0...) but 2 features were given" in err
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "c"),
                 "--alias", "champion"]) == 2  # fmt: skip
    assert "--alias needs --register NAME" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


def test_register_serves_the_lambdamart_as_champion_from_the_registry(
    tmp_path, mlflow_server, mq2008_dir, mq2008_lambdamart, monkeypatch, capsys
):
    from mlflow import MlflowClient

    name = "lightgbm-cli-lambdamart"
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "lm"),
                 "--like", str(mq2008_dir / "S1.txt.xz"), "--register", name,
                 "--alias", "champion", "--tracking-uri", mlflow_server]) == 0  # fmt: skip
    assert f"registered {name} version 1: models:/{name}@champion" in capsys.readouterr().out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    loaded = load_model(f"models:/{name}@champion")
    assert loaded.manifest.version == "1" and loaded.manifest.architecture == "gbdt"
    predicted = lightgbm.Booster(model_file=str(mq2008_lambdamart)).predict(s1.features)
    np.testing.assert_allclose(score_lists(loaded.model, s1), predicted, rtol=1e-6, atol=1e-6)
    version = MlflowClient(tracking_uri=mlflow_server).get_model_version(name, "1")
    run = MlflowClient(tracking_uri=mlflow_server).get_run(version.run_id)
    assert run.data.params["trees"] == "40"
    assert run.data.tags["ltr.run_type"] == "lightgbm-model"
