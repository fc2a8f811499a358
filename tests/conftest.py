"""Shared fixtures: paths to bundled data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MQ2008 = REPO / "data" / "mq2008"
SHAKESPEARE = REPO / "data" / "tinyshakespeare" / "input.txt.xz"
LIGHTGBM_EXAMPLE = REPO / "tests" / "data" / "lightgbm-example"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Test workloads are tiny: a second intra-op thread only adds spin-waiting, and it competes
    with the server and Spark processes the tests start."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """Downloaded models go to a per-session cache, not ~/.cache (children inherit it)."""
    import os

    os.environ["LTR_CACHE_DIR"] = str(tmp_path_factory.mktemp("ltr-cache"))


@pytest.fixture(scope="session")
def mq2008_dir() -> Path:
    return MQ2008


@pytest.fixture(scope="session")
def lightgbm_example_dir() -> Path:
    return LIGHTGBM_EXAMPLE


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` process on loopback (SQLite backend, proxied artifacts)."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def shakespeare_30k(tmp_path_factory) -> Path:
    """The first 30,000 characters of the bundled Tiny Shakespeare as a plain text file."""
    import lzma

    path = tmp_path_factory.mktemp("corpus") / "shakespeare-30k.txt"
    with lzma.open(SHAKESPEARE, "rt", encoding="utf-8") as f:
        path.write_text(f.read(30_000))
    return path


@pytest.fixture(scope="session")
def mq2008_lambdamart(tmp_path_factory) -> Path:
    """A LightGBM LambdaMART (40 trees of up to 15 leaves) trained on MQ2008's S1, saved as a
    LightGBM model file: the ranker a user brings to ``ltr lightgbm-model``."""
    import lightgbm
    import numpy as np

    from ltr.data import load_dataset

    s1 = load_dataset(MQ2008 / "S1.txt.xz")
    data = lightgbm.Dataset(s1.features, s1.labels, group=np.diff(s1.offsets))
    params = {"objective": "lambdarank", "num_leaves": 15, "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, data, num_boost_round=40)
    path = tmp_path_factory.mktemp("lambdamart") / "lambdamart.txt"
    booster.save_model(str(path))
    return path
