"""Score padded lists with the artifact's ONNX graph on ONNX Runtime.

The graph (written by :func:`ltr.export.onnx.export_checked`, i.e. ``ltr export``) takes
``features [B, L, F]`` float32 and ``mask [B, L]`` bool, plus ``initial_rank [B, L]`` int64 when the
model uses initial ranks and ``context [B, C]`` float32 when it uses a context vector, and returns
``scores [B, L]`` float32. Batch and list dimensions are dynamic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltr.artifact import ONNX, ArtifactError, LoadedModel

SCORES = "scores"


def make_session(path: str | Path, *, threads: int = 1, spinning: bool = True):
    """An ONNX Runtime CPU session tuned for low-latency serving.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (one forward pass split over this many cores); ``0`` lets ONNX
            Runtime use one per physical core.
        spinning: let idle intra-op threads spin for new work (lower latency, more CPU burnt
            while idle; turn off on machines shared with other work).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable graphs
        raise ArtifactError(f"cannot load the ONNX graph {path}: {exc}") from None


class OnnxPredictor:
    """The artifact's ``model.onnx`` run by ONNX Runtime (see :mod:`ltr.predictor`).

    Args:
        loaded: the loaded artifact (its manifest names the model and its inputs).
        onnx_path: graph to run; default ``<artifact>/model.onnx``.
        threads: intra-op threads of the session.
        spinning: whether idle session threads spin (see :func:`make_session`).
    """

    backend = "onnx"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        onnx_path: str | Path | None = None,
        threads: int = 1,
        spinning: bool = True,
    ) -> None:
        path = Path(onnx_path) if onnx_path is not None else loaded.onnx_path
        if path is None or not path.exists():
            from ltr.artifact import is_mlflow_uri
            from ltr.export.onnx import cached_folder

            export = f"ltr export --model {loaded.source}"
            if is_mlflow_uri(loaded.source) and cached_folder(loaded) is None:
                export += " --output DIR` and use DIR"  # a temporary download: export elsewhere
            else:  # the artifact folder, or the version's folder in the model cache
                export += "` first"
            raise ArtifactError(
                f"{loaded.source} has no {ONNX}; run `{export} or use the torch backend"
            )
        self.loaded = loaded
        self.onnx_path = path
        self.session = make_session(path, threads=threads, spinning=spinning)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def predict(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        initial_rank: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> np.ndarray:
        """``features [B, L, F]``, ``mask [B, L]`` (+ optional inputs) -> ``scores [B, L]``."""
        given = {
            "features": np.ascontiguousarray(features, dtype=np.float32),  # (B, L, F)
            "mask": np.ascontiguousarray(mask, dtype=bool),  # (B, L)
            "initial_rank": initial_rank,
            "context": context,
        }
        feeds = {}
        for name in self.input_names:
            value = given[name]
            if value is None:
                raise ArtifactError(
                    f"{self.onnx_path} needs the input {name!r}, which was not given"
                )
            if name == "initial_rank":
                value = np.ascontiguousarray(value, dtype=np.int64)  # (B, L)
            elif name == "context":
                value = np.ascontiguousarray(value, dtype=np.float32)  # (B, C)
            feeds[name] = value
        return self.session.run([SCORES], feeds)[0]  # (B, L)
