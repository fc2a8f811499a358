"""Training against a real ``mlflow server`` process, read back through the MLflow client."""

from __future__ import annotations

import numpy as np
from mlflow import MlflowClient

from ltr.artifact import load_model
from ltr.data import load_dataset
from ltr.inference import score_lists
from ltr.train.run import train


def test_train_against_a_real_tracking_server(tiny_config, mlflow_server, mq2008_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    cfg = tiny_config(**{"tracking.tracking_uri": None, "tracking.registered_model": "served"})
    result = train(cfg, verbose=False)

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.batch_size"] == "64"
    assert len(client.get_metric_history(result.run_id, "val/ndcg_at_10")) == 2
    assert "test/empty0/ndcg_at_10" in run.data.metrics
    version = client.get_model_version_by_alias("served", "candidate")
    assert version.run_id == result.run_id

    # Artifacts went through the server (proxied), and load back to the same model.
    loaded = load_model("models:/served@candidate")
    test = load_dataset(mq2008_dir / "S5.txt.xz")
    expected = score_lists(load_model(result.artifact_dir).model, test)
    np.testing.assert_array_equal(score_lists(loaded.model, test), expected)
    assert loaded.manifest.version == str(version.version)
