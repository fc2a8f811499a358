"""``ltr cv`` on bundled MQ2008: nested MLflow runs, mean and sd over folds."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from mlflow import MlflowClient

from ltr.errors import ConfigError
from ltr.train.config import load_train_config
from pipelines.cv import run_cv
from tests.pipelines.helpers import LTR, ONE_THREAD

pytestmark = pytest.mark.slow

TINY = "{name: setrank, d_model: 16, num_heads: 2, num_blocks: 1, d_ff: 32}"


def test_cv_nests_fold_runs_and_logs_mean_and_sd(mq2008_dir, mlflow_server, tmp_path):
    command = [
        *(LTR, "cv", "--folds", "1", "2", "--quiet"),
        *("--model", TINY, "--loss", "softmax", "--data.letor_root", str(mq2008_dir)),
        *("--data.batch_size", "64", "--trainer.max_epochs", "1"),
        *("--optim.warmup_steps", "0", "--tracking.tracking_uri", mlflow_server),
        *("--tracking.experiment", "pipelines-cv", "--output_dir", str(tmp_path / "out")),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=ONE_THREAD, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "2-fold cross-validation (folds 1, 2)" in proc.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("pipelines-cv")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: r.data.tags["mlflow.runName"],
    )
    assert [c.data.tags["mlflow.runName"] for c in children] == ["fold1", "fold2"]
    assert [c.data.params["data.fold"] for c in children] == ["1", "2"]
    assert parent.data.tags["ltr.run_type"] == "cross-validation"
    assert f"MLflow parent run: {parent.info.run_id} (2 fold runs)" in proc.stdout

    for key in ("empty1/ndcg_at_10", "empty0/map", "dropped/err_at_10"):
        values = np.array([c.data.metrics[f"test/{key}"] for c in children])
        assert parent.data.metrics[f"cv/{key}/mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert parent.data.metrics[f"cv/{key}/sd"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        history = client.get_metric_history(parent.info.run_id, f"test/{key}")
        assert sorted((m.step, m.value) for m in history) == [(1, values[0]), (2, values[1])]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"cv_results.json", "cv_results.md", "config.yaml"} <= artifacts
    local = client.download_artifacts(parent.info.run_id, "cv_results.json", str(tmp_path))
    with open(local) as fh:
        saved = json.load(fh)
    assert saved["folds"] == [1, 2] and len(saved["fold_metrics"]) == 2
    # fold models are kept on disk, not logged (no --log-models)
    assert (tmp_path / "out" / "fold2" / "model" / "ltr_model.json").exists()
    assert "model" not in {a.path for a in client.list_artifacts(children[0].info.run_id)}


def test_cv_needs_letor_partitions(tmp_path):
    config = load_train_config(None, {"data.train": ["a.txt"], "tracking.enabled": False})
    with pytest.raises(ConfigError, match="rotates LETOR partitions"):
        run_cv(config)
    config = load_train_config(None, {"data.letor_root": "x", "tracking.enabled": False})
    with pytest.raises(ConfigError, match=r"folds must be distinct numbers 1\.\.5"):
        run_cv(config, folds=[1, 1])


def test_cv_rotates_parquet_partitions_with_context_vectors(tmp_path, capsys):
    """S1..S5 as Parquet with a per-query context vector: each fold trains a context model, and
    its test metrics are what `ltr evaluate` gives for the saved fold model on its test part."""
    from ltr.artifact import load_model
    from ltr.cli import main
    from pipelines.synthetic import write_context_task

    for i in range(1, 6):
        write_context_task(tmp_path / f"S{i}.parquet", 30, list_length=10, seed=i)
    overrides = {
        "model": {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1,
                  "d_ff": 32, "context_dim": 2},
        "loss": "softmax", "data.letor_root": str(tmp_path), "data.batch_size": 16,
        "trainer.max_epochs": 2, "trainer.progress_bar": False, "optim.warmup_steps": 0,
        "tracking.enabled": False, "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    result = run_cv(load_train_config(None, overrides), folds=[2])
    model = tmp_path / "out" / "fold2" / "model"
    assert load_model(model).manifest.context_dim == 2
    # fold 2 tests on S1 (train S2 S3 S4, valid S5)
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "S1.parquet"),
                 "--format", "json"]) == 0  # fmt: skip
    evaluated = json.loads(capsys.readouterr().out)
    for convention, values in result.fold_metrics[0].items():
        assert values["ndcg@10"] == pytest.approx(evaluated[convention]["ndcg@10"], abs=1e-6)
