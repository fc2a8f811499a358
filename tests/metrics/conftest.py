"""Fixtures for the metric tests: MQ2008 partitions read with scikit-learn's SVMlight reader."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

MQ2008 = Path(__file__).resolve().parents[2] / "data" / "mq2008"


def _load_partition(name: str) -> dict[str, np.ndarray]:
    with lzma.open(MQ2008 / f"{name}.txt.xz", "rb") as f:
        x, y, qid = load_svmlight_file(f, n_features=46, query_id=True)
    return {"x": np.asarray(x.todense(), dtype=np.float64), "y": y, "qid": qid}


@pytest.fixture(scope="session")
def mq2008() -> dict[str, dict[str, np.ndarray]]:
    """``{"S1": {"x": [N, 46], "y": [N], "qid": [N]}, ..., "S5": ...}`` (independent reader)."""
    return {name: _load_partition(name) for name in ("S1", "S2", "S3", "S4", "S5")}
