"""A tiny, fast training configuration on bundled MQ2008 partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltr.train.config import load_train_config


def tiny_overrides(tmp_path: Path, mq2008_dir: Path, **extra) -> dict:
    base = {
        "model": {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32},
        "loss": "softmax",
        "data.train": [str(mq2008_dir / "S1.txt.xz")],
        "data.valid": [str(mq2008_dir / "S4.txt.xz")],
        "data.test": [str(mq2008_dir / "S5.txt.xz")],
        "data.batch_size": 64,
        "trainer.max_epochs": 2,
        "trainer.progress_bar": False,
        "optim.warmup_steps": 0,
        "tracking.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "tracking.experiment": "tests",
        "tracking.registered_model": "tiny",
        "tracking.alias": "candidate",
        "output_dir": str(tmp_path / "out"),
    }
    base.update(extra)
    return base


@pytest.fixture
def tiny_config(tmp_path, mq2008_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the embedded MLflow artifact folder lands in tmp_path

    def make(**extra):
        return load_train_config(None, tiny_overrides(tmp_path, mq2008_dir, **extra))

    return make
