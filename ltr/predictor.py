"""Predictors: score padded candidate lists with a loaded model, on a chosen backend.

The gRPC server, batch scoring and reports all score through a :class:`Predictor` obtained from
:func:`load_predictor`, which loads the artifact with :func:`ltr.artifact.load_model` (the one
loader). Backends:

* ``torch`` -- the PyTorch module in eval mode (always available);
* ``onnx``  -- the artifact's ``model.onnx`` run by ONNX Runtime (written by ``ltr export``).

Every predictor maps ``features [B, L, F]`` float32 and ``mask [B, L]`` bool (True = real
candidate) to ``scores [B, L]`` float32; scores at padded slots are undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from ltr.artifact import LoadedModel, load_model
from ltr.config import asks_for_gpu
from ltr.errors import ConfigError

Backend = Literal["torch", "onnx", "auto"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "auto")
"""``auto`` = ``onnx`` when the artifact holds ``model.onnx`` (written by ``ltr export``; for a
registry version or run, exported into its model-cache folder on first use), else ``torch``."""


def resolve_backend(loaded: LoadedModel, backend: str, device: str = "cpu") -> str:
    """``backend``, with ``auto`` resolved for ``loaded`` on ``device`` (see :data:`BACKENDS`):
    a GPU device means torch, the only backend that runs there."""
    if backend != "auto":
        return backend
    if asks_for_gpu(device):
        return "torch"
    return "onnx" if loaded.onnx_path is not None else "torch"


@runtime_checkable
class Predictor(Protocol):
    """Scores padded lists. ``loaded`` carries the manifest (feature names, name, version)."""

    backend: str
    loaded: LoadedModel

    def predict(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        initial_rank: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> np.ndarray: ...


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) as a torch device; a CUDA
    device that is not there is a :class:`ConfigError`, not a crash at the first request."""
    name = device.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or auto")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {device!r} asked for, but PyTorch sees no CUDA device here; "
                "use --device cpu (or auto)"
            )
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"device {device!r} asked for, but only {count} CUDA device(s)")
    return resolved


class TorchPredictor:
    """The PyTorch model itself, in eval mode under ``torch.inference_mode``, on ``device``
    (inputs are copied there and scores back to host memory)."""

    backend = "torch"

    def __init__(self, loaded: LoadedModel, device: str = "cpu"):
        self.loaded = loaded
        self.device = resolve_device(device)
        self.model = loaded.model.eval().to(self.device)

    @torch.inference_mode()
    def predict(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        initial_rank: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> np.ndarray:
        dev = self.device
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(dev)  # (B, L, F)
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)).to(dev)  # (B, L)
        r = None
        if initial_rank is not None:
            r = torch.from_numpy(np.asarray(initial_rank, np.int64)).to(dev)  # (B, L)
        c = None if context is None else torch.from_numpy(np.asarray(context, np.float32)).to(dev)
        return self.model(x, m, r, c).float().cpu().numpy()  # (B, L)


def load_predictor(
    source: str | LoadedModel,
    backend: Backend | str = "torch",
    *,
    threads: int | None = None,
    device: str = "cpu",
    export_missing_onnx: bool | None = None,
    parity_data: Sequence[str | Path] = (),
) -> Predictor:
    """Load a model (directory, MLflow URI or an already loaded model) on ``backend``.

    Args:
        source: artifact directory, MLflow URI or :class:`~ltr.artifact.LoadedModel`.
        backend: ``torch``, ``onnx`` or ``auto`` (ONNX Runtime when the artifact has
            ``model.onnx``, else PyTorch). A registry version or run without one gets it
            exported (with the parity check) into its folder in the model cache on first use,
            see :func:`ltr.export.onnx.export_into_cache`; for ``auto`` a failed export means
            PyTorch.
        threads: ONNX Runtime intra-op threads (default 1). PyTorch's thread count is
            process-wide; set it with ``torch.set_num_threads``.
        device: for ``torch``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. ONNX Runtime runs on
            the CPU (the CPU build is the dependency); asking it for another device is an error.
        export_missing_onnx: for ``onnx``, export (with the parity check) when the artifact
            has no ``model.onnx``, instead of raising: a registry version or run into its
            model-cache folder, a local artifact into a temporary folder. None (default): only
            a registry version or run; False: never (a missing graph is an error).
        parity_data: LETOR/Parquet files for that parity check (default: the data recorded in
            the manifest, else synthetic lists; see :func:`ltr.export.onnx.ensure_onnx`).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "onnx" and asks_for_gpu(device):
        raise ConfigError(
            f"the onnx backend runs on the CPU; for device {device!r} use the torch backend"
        )
    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    if backend in ("auto", "onnx") and not asks_for_gpu(device) and export_missing_onnx is None:
        from ltr.export.onnx import export_into_cache

        export_into_cache(loaded, parity_data, required=backend == "onnx")
    backend = resolve_backend(loaded, backend, device)
    if backend == "torch":
        return TorchPredictor(loaded, device)
    from ltr.export.onnx_predictor import OnnxPredictor  # written with `ltr export`

    onnx_path = None
    if export_missing_onnx:
        from ltr.export.onnx import ensure_onnx

        onnx_path = ensure_onnx(loaded, parity_data)
    return OnnxPredictor(loaded, onnx_path=onnx_path, threads=1 if threads is None else threads)
