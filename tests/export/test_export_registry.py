"""A registry version gets its ONNX graph once, in its folder of the model cache, and keeps it.

A real MLflow store (SQLite, artifacts beside it) holds a registered model without model.onnx;
``ltr export``, ``load_predictor`` (``ltr score``'s backends) and the server's export on load
all put the checked graph into that version's cache folder, where later loads find it.
"""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from ltr.artifact import ONNX, ArtifactError, load_model
from ltr.cli import main
from ltr.export.onnx import REFUSED, ParityError, export_into_cache
from ltr.export.onnx_predictor import OnnxPredictor
from ltr.predictor import TorchPredictor, load_predictor
from ltr.serve.models import load_served_model
from ltr.tracking import cached_download, start_run
from tests.serve._helpers import make_artifact

NAME = "export-registry-ranker"
URI = f"models:/{NAME}@candidate"


@pytest.fixture(scope="module")
def store(tmp_path_factory, s1_data):
    """A SQLite store with version 1 of NAME (no model.onnx), alias candidate -> 1."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    folder = make_artifact(root / "model", s1_data, seed=41)
    with start_run(experiment="export-registry", tracking_uri=uri) as run:
        logged = run.log_model(folder, feature_names=list(s1_data.feature_names),
                               registered_name=NAME)  # fmt: skip
    MlflowClient(tracking_uri=uri).set_registered_model_alias(NAME, "candidate", "1")
    assert logged.registered_version == "1"
    return uri


@pytest.fixture
def registry(store, tmp_path, monkeypatch):
    """The store named by the environment, and an empty model cache of this test's own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("LTR_CACHE_DIR", str(tmp_path / "cache"))
    return store


def _lists(data, count: int = 5) -> tuple[np.ndarray, np.ndarray]:
    lists = [data[i].features for i in range(count)]
    longest = max(len(x) for x in lists)
    features = np.zeros((count, longest, lists[0].shape[1]), np.float32)  # (B, L, F)
    mask = np.zeros((count, longest), bool)  # (B, L)
    for b, x in enumerate(lists):
        features[b, : len(x)], mask[b, : len(x)] = x, True
    return features, mask


def test_backend_auto_exports_a_registry_version_once_into_its_cache_folder(registry, s5_data):
    loaded = load_model(URI)
    assert loaded.onnx_path is None  # the registry copy has no graph
    predictor = load_predictor(loaded, "auto")
    assert isinstance(predictor, OnnxPredictor)
    graph = predictor.onnx_path
    assert graph.name == ONNX and cached_download(graph) is not None
    assert [p.name for p in graph.parent.iterdir() if p.name.endswith(".tmp")] == []
    features, mask = _lists(s5_data)
    want = TorchPredictor(loaded).predict(features, mask)  # (B, L)
    np.testing.assert_allclose(predictor.predict(features, mask)[mask], want[mask], atol=1e-5)

    stamp = graph.stat().st_mtime_ns
    again = load_predictor(URI, "auto")  # a later process: the cached graph, not a new export
    assert isinstance(again, OnnxPredictor) and again.onnx_path == graph
    assert graph.stat().st_mtime_ns == stamp
    assert load_predictor(URI, "onnx").onnx_path == graph


def test_the_server_exports_on_load_into_the_cache_too(registry, mq2008_dir):
    with pytest.raises(ArtifactError) as refused:  # export_on_load: false
        load_served_model(URI, backend="onnx", export_on_load=False)
    assert str(refused.value) == (
        f"{URI} has no model.onnx; run `ltr export --model {URI}` first or use the torch backend"
    )
    served = load_served_model(URI, backend="onnx")
    graph = served.predictor.onnx_path
    assert cached_download(graph) is not None and graph.parent == load_model(URI).path
    assert load_model(URI).onnx_path == graph  # the next load (score, serve) finds it
    again = load_served_model(URI, backend="onnx", export_on_load=False)
    assert again.predictor.onnx_path == graph


def test_ltr_export_of_a_registry_uri_writes_into_the_cache(registry, mq2008_dir, capsys):
    data = mq2008_dir / "S5.txt.xz"
    assert main(["export", "--model", URI, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    graph = load_model(URI).onnx_path
    assert graph is not None and cached_download(graph) is not None
    assert out.startswith(
        f"wrote {graph} (the model cache's copy of version 1 of {NAME}: ltr score and ltr serve "
        "on this machine run it on ONNX Runtime): ONNX Runtime matches PyTorch on 64 lists"
    )
    assert isinstance(load_predictor(URI, "auto"), OnnxPredictor)


def test_a_failed_export_leaves_auto_on_pytorch_and_onnx_says_why(registry, caplog):
    loaded = load_model(URI)
    with pytest.raises(ParityError, match=r"so model\.onnx was not written"):
        export_into_cache(loaded, atol=0.0)  # no two engines agree to 0: the check refuses
    assert export_into_cache(loaded, atol=0.0, required=False) is None
    assert (loaded.path / REFUSED).is_file() and loaded.onnx_path is None
    assert "runs on PyTorch: ONNX Runtime and PyTorch differ" in caplog.text
    assert isinstance(load_predictor(URI, "auto"), TorchPredictor)  # not tried again
    assert isinstance(load_predictor(URI, "onnx"), OnnxPredictor)  # tried, at the usual atol
