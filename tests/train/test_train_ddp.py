"""Distributed data parallel: two CPU processes through the real ``ltr train`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.train.conftest import tiny_overrides


def _flags(overrides: dict) -> list[str]:
    flags = []
    for key, value in overrides.items():
        flags += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return flags


def _train_on_two_processes(tmp_path: Path, overrides: dict, timeout: float):
    """``ltr train --quiet`` with ``overrides`` as DDP on two CPU processes; it must succeed."""
    overrides.update(
        {"trainer.strategy": "ddp", "trainer.devices": 2, "trainer.accelerator": "cpu"}
    )
    ltr = Path(sys.executable).with_name("ltr")
    proc = subprocess.run(
        [str(ltr), "train", "--quiet", *_flags(overrides)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_on_two_cpu_processes(tmp_path, mq2008_dir):
    overrides = tiny_overrides(tmp_path, mq2008_dir)
    proc = _train_on_two_processes(tmp_path, overrides, timeout=600)
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


def test_ddp_validation_with_a_process_whose_lists_are_all_dropped(tmp_path, mq2008_dir):
    # Two validation lists, one per process: the second has no relevant document, so with
    # eval.empty=drop its process adds nothing to the metric meters. It must still join their
    # reduction (a process that skipped it left the other waiting for ever), and the epoch's
    # NDCG@10 is then the first list's alone, as offline evaluation of the saved model finds.
    import numpy as np

    from ltr.artifact import load_model
    from ltr.data.dataset import load_dataset
    from ltr.inference import score_lists
    from ltr.metrics import evaluate_grouped

    rng = np.random.default_rng(0)
    rows = []
    for qid, labels in (("kept", [2, 0, 1, 0]), ("dropped", [0, 0, 0])):
        for i, label in enumerate(labels):
            values = " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(rng.random(46)))
            rows.append(f"{label} qid:{qid} {values} #docid = {qid}-{i}")
    valid = tmp_path / "valid.txt"
    valid.write_text("\n".join(rows) + "\n")
    overrides = tiny_overrides(tmp_path, mq2008_dir)
    overrides.update(
        {
            "trainer.max_epochs": 1,
            "data.valid": [str(valid)],
            "data.eval_batch_size": 1,
            "eval.empty": "drop",
        }
    )
    _train_on_two_processes(tmp_path, overrides, timeout=180)
    client = MlflowClient(tracking_uri=overrides["tracking.tracking_uri"])
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    (logged,) = client.get_metric_history(run.info.run_id, "val/ndcg_at_10")
    data = load_dataset(valid)
    scores = score_lists(load_model(tmp_path / "out" / "model").model, data)
    offline = evaluate_grouped(
        scores.astype(np.float64), data.labels, data.offsets, metrics=["ndcg@10"], empty="drop"
    )
    assert logged.value == pytest.approx(offline["ndcg@10"], abs=1e-5)
