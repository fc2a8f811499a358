"""``ltr demo`` end to end (one epoch) through the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ltr.cli import main


def test_demo_converts_trains_evaluates_and_registers(tmp_path, monkeypatch, capsys):
    ltr = Path(sys.executable).with_name("ltr")
    proc = subprocess.run(
        [str(ltr), "demo", "--quiet", "--trainer.max_epochs", "1", "--model.num_blocks", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "471 queries" in out and "9,630 rows" in out  # Fold1 training partitions S1-S3
    assert "ndcg@10" in out and "empty=1" in out
    assert "registered model    models:/ltr-mq2008-setrank@candidate (version 1)" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    assert (tmp_path / "mlflow.db").exists()
    assert (tmp_path / "runs" / "demo" / "data" / "test.parquet").exists()
    assert (tmp_path / "runs" / "demo" / "model_run" / "model" / "ltr_model.json").exists()
    assert "Warning" not in proc.stderr

    # the `ltr info` it suggests reads the registered version from the embedded store
    assert "ltr info models:/ltr-mq2008-setrank@candidate" in out
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["info", "models:/ltr-mq2008-setrank@candidate"]) == 0
    info = " ".join(capsys.readouterr().out.split())
    assert "served as ltr-mq2008-setrank, version 1" in info
    assert "num_blocks=1" in info and "of 9,630 training rows" in info
