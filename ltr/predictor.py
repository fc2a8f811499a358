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

from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from ltr.artifact import LoadedModel, load_model
from ltr.errors import ConfigError

Backend = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")


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


class TorchPredictor:
    """The PyTorch model itself, in eval mode under ``torch.inference_mode``."""

    backend = "torch"

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model.eval()

    @torch.inference_mode()
    def predict(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        initial_rank: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))  # (B, L, F)
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))  # (B, L)
        r = None if initial_rank is None else torch.from_numpy(np.asarray(initial_rank, np.int64))
        c = None if context is None else torch.from_numpy(np.asarray(context, np.float32))
        return self.model(x, m, r, c).float().numpy()  # (B, L)


def load_predictor(source: str | LoadedModel, backend: Backend | str = "torch") -> Predictor:
    """Load a model (directory, MLflow URI or an already loaded model) on ``backend``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    if backend == "torch":
        return TorchPredictor(loaded)
    from ltr.export.onnx_predictor import OnnxPredictor  # written with `ltr export`

    return OnnxPredictor(loaded)
