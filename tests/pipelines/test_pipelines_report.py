"""``ltr report`` end to end: a model, an `ltr score` output, external scores and LightGBM."""

from __future__ import annotations

import json
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pytest
from mlflow import MlflowClient
from scipy import stats as scipy_stats

from ltr.cli import main
from ltr.data import load_dataset
from ltr.metrics import evaluate_grouped_per_query
from pipelines.scoring import ScoreOptions, score_to_parquet
from tests.pipelines.helpers import LTR, ONE_THREAD

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(model_dir, mq2008_dir, tmp_path_factory, mlflow_server):
    tmp = tmp_path_factory.mktemp("report")
    data = mq2008_dir / "S5.txt.xz"
    s5 = load_dataset(data)
    oracle = tmp / "oracle.txt"
    rng = np.random.default_rng(0)
    np.savetxt(oracle, s5.labels + rng.normal(0, 1.0, s5.num_rows), fmt="%.17g")
    scored = tmp / "scored"  # the same model through `ltr score`
    score_to_parquet(model_dir, data, scored, ScoreOptions(progress=False))
    uri = mlflow_server
    out = tmp / "out"
    command = [
        *(LTR, "report", "--data", str(data), "--output", str(out)),
        *("--model", f"setrank={model_dir}", "--scores", f"oracle={oracle}"),
        *("--scores", f"ltrscore={scored}", "--lightgbm-baseline"),
        *("--train", str(mq2008_dir / "S1.txt.xz"), "--lightgbm-rounds", "50"),
        *("--lightgbm-threads", "1"),
        *("--bootstrap", "300", "--permutations", "2000", "--tracking-uri", uri),
        *("--experiment", "pipelines-report", "--top-queries", "5"),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=ONE_THREAD, cwd=tmp
    )
    assert proc.returncode == 0, proc.stderr
    return {
        "out": out,
        "json": json.loads((out / "metrics.json").read_text()),
        "stdout": proc.stdout,
        "uri": uri,
        "s5": s5,
        "oracle": oracle,
        "data": data,
    }


def test_means_equal_ltr_evaluate_and_intervals_contain_them(report, capsys):
    metrics = report["json"]["metrics"]
    assert report["json"]["baseline"] == "lightgbm"
    assert set(metrics) == {"empty=1", "empty=0", "dropped"}
    argv = ["evaluate", "--scores", str(report["oracle"]), "--data", str(report["data"])]
    assert main([*argv, "--format", "json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for conv, values in evaluated.items():
        for metric, value in values.items():
            assert metrics[conv]["oracle"][metric]["mean"] == pytest.approx(value, abs=1e-9)
    for by_system in metrics.values():
        assert set(by_system) == {"setrank", "oracle", "ltrscore", "lightgbm"}
        for values in by_system.values():
            for ci in values.values():
                assert ci["low"] <= ci["mean"] <= ci["high"]
    # `ltr score`'s output scores the same lists as the model itself
    for metric, ci in metrics["dropped"]["setrank"].items():
        assert metrics["dropped"]["ltrscore"][metric]["mean"] == pytest.approx(ci["mean"], abs=1e-9)


def test_significance_against_the_baseline(report):
    sig = report["json"]["significance"]["empty=1"]
    assert set(sig) == {"setrank", "oracle", "ltrscore"}
    random_model = sig["setrank"]["ndcg@10"]  # random weights against trained LightGBM
    assert random_model["delta"] < 0 and random_model["p_randomization"] < 0.01
    assert random_model["delta_low"] <= random_model["delta"] <= random_model["delta_high"]
    # the t-test p-value is scipy's on the per-query values
    s5 = report["s5"]
    oracle = np.loadtxt(report["oracle"])

    def per_query(scores):
        return evaluate_grouped_per_query(
            scores, s5.labels, s5.offsets, metrics=["ndcg@10"], empty="one"
        )["ndcg@10"]

    import lightgbm as lgb

    train = load_dataset(report["data"].parent / "S1.txt.xz")
    params = {
        "objective": "lambdarank",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lgb.train(
        params, lgb.Dataset(train.features, train.labels, group=train.list_lengths), 50
    )
    ref = scipy_stats.ttest_rel(per_query(oracle), per_query(booster.predict(s5.features)))
    assert sig["oracle"]["ndcg@10"]["p_ttest"] == pytest.approx(ref.pvalue, rel=1e-6)
    gained = report["json"]["queries"]["oracle"]["gained"]
    assert 0 < len(gained) <= 5
    assert [g["delta"] for g in gained] == sorted((g["delta"] for g in gained), reverse=True)


def test_plots_and_markdown(report):
    out = report["out"]
    md = (out / "report.md").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "delta_ndcg10_ltrscore.png",
        "delta_ndcg10_oracle.png",
        "delta_ndcg10_setrank.png",
        "ndcg_at_k.png",
    ]
    for name in pngs:
        assert f"]({name})" in md
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = mpimg.imread(out / name).shape
        assert (height, width) == (450, 700)
    assert len(report["json"]["ndcg_curve"]["empty=1"]["oracle"]) == 20
    assert "| oracle |" in md and "p (randomisation)" in md


def test_logged_to_mlflow_as_an_evaluation_run(report):
    client = MlflowClient(tracking_uri=report["uri"])
    experiment = client.get_experiment_by_name("pipelines-report")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["ltr.run_type"] == "evaluation"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/metrics.json", "report/ndcg_at_k.png"} <= artifacts
    logged = run.data.metrics["oracle/empty1/ndcg_at_10"]
    want = report["json"]["metrics"]["empty=1"]["oracle"]["ndcg@10"]["mean"]
    assert logged == pytest.approx(want)
    assert f"MLflow evaluation run: {run.info.run_id}" in report["stdout"]


def test_system_names_from_arguments():
    from ltr.cli.report import parse_named
    from ltr.errors import ConfigError

    assert parse_named("setrank=runs/x/model", need_name=False) == ("setrank", "runs/x/model")
    assert parse_named("runs/x/model/", need_name=False) == ("model", "runs/x/model/")
    assert parse_named("models:/ranker@prod", need_name=False) == (
        "ranker@prod",
        "models:/ranker@prod",
    )
    assert parse_named("runs:/abc123/model", need_name=False)[0] == "abc123/model"
    with pytest.raises(ConfigError, match="NAME=FILE"):
        parse_named("scores.txt", need_name=True)
