"""Distributed data parallel: two CPU processes through the real ``ltr train`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from tests.train.conftest import tiny_overrides


def _flags(overrides: dict) -> list[str]:
    flags = []
    for key, value in overrides.items():
        flags += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return flags


def test_ddp_on_two_cpu_processes(tmp_path, mq2008_dir):
    overrides = tiny_overrides(tmp_path, mq2008_dir)
    overrides.update(
        {"trainer.strategy": "ddp", "trainer.devices": 2, "trainer.accelerator": "cpu"}
    )
    ltr = Path(sys.executable).with_name("ltr")
    proc = subprocess.run(
        [str(ltr), "train", "--quiet", *_flags(overrides)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The epoch's values come from meters that compute() reduces over both processes, so
    # Lightning's advice to log them with sync_dist=True is silenced (a second reduction would
    # only average equal numbers); nothing else about logging may be said.
    assert "sync_dist" not in proc.stderr, proc.stderr[-3000:]
    assert (tmp_path / "out" / "model" / "ltr_model.json").exists()
    client = MlflowClient(tracking_uri=overrides["tracking.tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 1, "only global rank 0 may create an MLflow run"
    run = runs[0]
    assert run.data.params["world_size"] == "2"
    history = client.get_metric_history(run.info.run_id, "val/ndcg_at_10")
    assert [m.step for m in history] == [0, 1]
    assert "registered model: models:/tiny@candidate" in proc.stdout
