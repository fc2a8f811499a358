"""Where the PyTorch predictor computes: device names, ``auto``, and clear errors for a device
that is not there or a backend that cannot use it. (CI has no GPU: the CUDA branch of ``auto``
is checked with PyTorch's CUDA probes patched; the GPU itself is exercised on a GPU machine by
``python -m benchmarks.serving_latency --backends torch --serve-arg '--device cuda'``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.artifact import LoadedModel, Manifest, build_model
from ltr.errors import ConfigError
from ltr.predictor import load_predictor, resolve_device
from ltr.serve.config import ServeConfig


def _no_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _one_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_picks_cuda_only_when_present(monkeypatch) -> None:
    _no_cuda(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    _one_cuda(monkeypatch)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device(" CUDA:0 ") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("device", "match"),
    [("cuda", "no CUDA device"), ("cuda:0", "no CUDA device"), ("banana", "unknown device")],
)
def test_unavailable_or_unknown_device_is_a_config_error(monkeypatch, device, match) -> None:
    _no_cuda(monkeypatch)
    with pytest.raises(ConfigError, match=match):
        resolve_device(device)


def test_cuda_index_beyond_the_devices_present(monkeypatch) -> None:
    _one_cuda(monkeypatch)
    with pytest.raises(ConfigError, match="only 1 CUDA device"):
        resolve_device("cuda:3")


def test_onnx_backend_refuses_a_gpu_device() -> None:
    with pytest.raises(ConfigError, match="onnx backend runs on the CPU"):
        load_predictor("/nonexistent-artifact", "onnx", device="cuda")
    with pytest.raises(ConfigError, match="needs backend torch"):
        ServeConfig(model="m", backend="onnx", device="cuda")
    assert ServeConfig(model="m", backend="torch", device="cuda").device == "cuda"


def test_cpu_predictor_scores_equal_the_module() -> None:
    torch.manual_seed(0)
    manifest = Manifest(
        architecture="setrank",
        model_config={"num_features": 5, "d_model": 16, "num_heads": 2, "num_blocks": 1},
        feature_names=[f"f{i}" for i in range(5)],
    )
    model = build_model(manifest).eval()
    loaded = LoadedModel(model=model, manifest=manifest, path=Path("."), source="memory")
    predictor = load_predictor(loaded, "torch", device="cpu")
    x = np.random.default_rng(0).normal(size=(3, 7, 5)).astype(np.float32)
    mask = np.ones((3, 7), dtype=bool)
    mask[1, 4:] = False
    got = predictor.predict(x, mask)
    with torch.no_grad():
        want = model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 7)
    np.testing.assert_allclose(got[mask], want[mask], rtol=0, atol=1e-6)


def test_auto_backend_is_onnx_exactly_when_the_artifact_has_a_graph(tmp_path) -> None:
    from ltr.predictor import resolve_backend

    loaded = LoadedModel(model=torch.nn.Identity(), manifest=None, path=tmp_path, source="x")
    assert resolve_backend(loaded, "auto") == "torch"
    (tmp_path / "model.onnx").write_bytes(b"graph")
    assert resolve_backend(loaded, "auto") == "onnx"
    assert resolve_backend(loaded, "torch") == "torch"  # an explicit choice is kept
    assert resolve_backend(loaded, "auto", "cuda:0") == "torch"  # only torch runs on a GPU


def test_ltr_score_refuses_a_missing_gpu_before_writing(tmp_path, monkeypatch) -> None:
    from pipelines.scoring import ScoreOptions, score_to_parquet
    from pipelines.synthetic import write_synthetic
    from tests.pipelines.helpers import NUM_FEATURES, make_model

    _no_cuda(monkeypatch)
    model = make_model(tmp_path / "model")
    data = tmp_path / "in.parquet"
    write_synthetic(data, 200, num_features=NUM_FEATURES, seed=0)
    out = tmp_path / "scored"
    with pytest.raises(ConfigError, match="no CUDA device"):
        score_to_parquet(model, data, out, ScoreOptions(backend="auto", device="cuda"))
    assert not out.exists()
