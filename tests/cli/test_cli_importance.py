"""``ltr importance`` on a saved model: ignored features score 0, the baseline is ``ltr
evaluate``'s, and bad requests are refused with a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.artifact import Manifest, save_model
from ltr.cli import main
from ltr.data import FeatureNormalizer, load_dataset
from ltr.models import RankingModel, build_scorer

IGNORED = (4, 10)  # input columns whose weights are zeroed: features f5 and f11


@pytest.fixture(scope="module")
def model_dir(mq2008_dir, tmp_path_factory):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    torch.manual_seed(0)
    scorer = build_scorer("setrank", {"num_features": 46, "d_model": 16, "num_heads": 2})
    with torch.no_grad():
        scorer.input_proj.weight[:, list(IGNORED)] = 0.0
    model = RankingModel(scorer, FeatureNormalizer(46).fit(s1.features)).eval()
    path = tmp_path_factory.mktemp("importance") / "model"
    save_model(model, Manifest("setrank", scorer.config.__dict__, list(s1.feature_names)), path)
    return path


def test_importance_json_zero_for_ignored_features_and_evaluates_baseline(
    model_dir, mq2008_dir, tmp_path, capsys
) -> None:
    data = str(mq2008_dir / "S5.txt.xz")
    assert main(["evaluate", "--model", str(model_dir), "--data", data, "--format", "json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)["empty=1"]["ndcg@10"]
    out = tmp_path / "importance.json"
    argv = [
        "importance", "--model", str(model_dir), "--data", data, "--features", "f5", "f11",
        "f1", "f40", "--group", "ignored=f5,f11", "--group", "used=f1,f40", "--repeats", "2",
        "--format", "json", "--quiet", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["baseline"] == pytest.approx(evaluated, abs=1e-6)
    drops = {f["name"]: np.array(f["drops"]) for f in printed["features"]}
    assert set(drops) == {"f5", "f11", "f1", "f40", "ignored", "used"}
    assert np.all(drops["f5"] == 0) and np.all(drops["f11"] == 0) and np.all(drops["ignored"] == 0)
    indices = {f["name"]: f["indices"] for f in printed["features"]}
    assert indices["used"] == [0, 39] and indices["f40"] == [39]
    assert any(np.any(drops[name] != 0) for name in ("f1", "f40"))  # used features move it


def test_table_lists_the_top_features(model_dir, mq2008_dir, capsys) -> None:
    argv = [
        "importance", "--model", str(model_dir), "--data", str(mq2008_dir / "S5.txt.xz"),
        "--features", "f5", "f1", "f40", "f7", "--repeats", "2", "--top", "1", "--shuffle",
        "lists",
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "shuffled within each list, mean ± sd of 2, seed 0:" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("1 ")]
    assert len(rows) == 1 and "f5" not in rows[0]  # an ignored feature is never the top one
    assert "(3 more; --top to show them)" in out
    # f7 holds one value on every row of MQ2008 (f5 does not, though the model ignores it)
    assert out.rstrip().endswith("constant in this data, so 0 by construction: f7")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--features", "f99"], "the model has no feature\\(s\\) f99; its features are f1"),
        (["--metric", "ndgc@10"], "unknown metric 'ndgc@10'"),
        (["--top", "0"], "--top must be at least 1"),
        (["--group", "bm25"], "--group 'bm25': write NAME=FEATURE,FEATURE,..."),
        (["--group", "g=f1,f99"], "no feature\\(s\\) f99"),
        (["--repeats", "0"], "repeats must be at least 1"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    model_dir, mq2008_dir, capsys, extra, message
) -> None:
    argv = ["importance", "--model", str(model_dir), "--data", str(mq2008_dir / "S5.txt.xz")]
    assert main([*argv, "--quiet", *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_groups_alone_measure_only_the_groups(model_dir, mq2008_dir, capsys) -> None:
    argv = [
        "importance", "--model", str(model_dir), "--data", str(mq2008_dir / "S5.txt.xz"),
        "--group", "used=f1,f40", "--repeats", "1", "--format", "json", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    assert [f["name"] for f in json.loads(capsys.readouterr().out)["features"]] == ["used"]


def test_mlflow_logs_the_result_and_a_chart_to_the_models_training_run(
    model_dir, mq2008_dir, tmp_path, capsys
) -> None:
    from mlflow import MlflowClient

    from ltr.artifact import load_model
    from ltr.tracking import start_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_run(experiment="importance-tests", tracking_uri=uri) as tracker:
        run_id = tracker.run_id
    loaded = load_model(str(model_dir))
    loaded.manifest.training["run_id"] = run_id
    tracked = tmp_path / "tracked"
    save_model(loaded.model, loaded.manifest, tracked)
    argv = [
        "importance", "--model", str(tracked), "--data", str(mq2008_dir / "S5.txt.xz"),
        "--features", "f1", "f5", "--repeats", "1", "--quiet", "--format", "json",
    ]  # fmt: skip
    assert main([*argv, "--mlflow", "--tracking-uri", uri]) == 0
    printed = json.loads(capsys.readouterr().out)  # the note goes to stderr, JSON stays whole
    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(run_id, "importance")}
    assert logged == {"importance/ndcg_10-all.json", "importance/ndcg_10-all.png"}
    local = client.download_artifacts(run_id, "importance", str(tmp_path / "down"))
    assert json.loads((Path(local) / "ndcg_10-all.json").read_text()) == printed
    assert (Path(local) / "ndcg_10-all.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a store without the run, or a model without one, is refused before any scoring
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main([*argv, "--mlflow", "--tracking-uri", other]) == 2
    assert f"there is no MLflow tracking store at {other}" in capsys.readouterr().err
    assert not (tmp_path / "other.db").exists()  # not created by looking
    MlflowClient(other).search_experiments()  # now there is one, without the run
    assert main([*argv, "--mlflow", "--tracking-uri", other]) == 2
    assert f"cannot log to MLflow run {run_id}" in capsys.readouterr().err
    assert main([*argv[:-2], "--mlflow", "--model", str(model_dir)]) == 2
    assert "records no training run" in capsys.readouterr().err
    assert main([*argv, "--tracking-uri", uri]) == 2
    assert "--tracking-uri is for --mlflow" in capsys.readouterr().err
