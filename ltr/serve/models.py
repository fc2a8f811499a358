"""The served model and its updates: load the new version beside the old, swap atomically.

A :class:`ModelHolder` owns the :class:`ServedModel` in use. :meth:`ModelHolder.reload` loads the
source again (for ``models:/name@alias``: the version the alias points to now) while the old model
keeps serving; only a model that loaded completely replaces it, in one reference assignment, so a
batch sees either the old model or the new one, never a mix. A load that fails leaves the old
model in place. :meth:`ModelHolder.poll` reloads only when the alias has moved.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltr.artifact import ArtifactError, LoadedModel, is_mlflow_uri
from ltr.drift import FeatureProfile
from ltr.predictor import Predictor
from ltr.serve.domain import Backend, ModelRef, ModelSpec

if TYPE_CHECKING:
    from ltr.text.featurizer import TextFeaturizer

log = logging.getLogger("ltr.serve")

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")


@dataclass(frozen=True)
class ServedModel:
    """A predictor with what requests need to know about it, and scratch folders to clean up.

    ``featurizer`` (text models) turns ``RerankText`` lists into this model's feature rows; it is
    loaded, checked and swapped together with the model, so a batch never mixes versions.
    """

    predictor: Predictor
    spec: ModelSpec
    scratch: tuple[Path, ...] = field(default=())
    featurizer: TextFeaturizer | None = None
    profile: FeatureProfile | None = None
    """The training features' profile the artifact carries (:mod:`ltr.drift`), if any."""

    def retire(self) -> None:
        """Delete temporary folders (downloads, exported graphs) once the model is replaced."""
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)


def parse_alias(source: str) -> tuple[str, str] | None:
    """``(name, alias)`` for ``models:/name@alias``, else None."""
    match = _ALIAS.match(source)
    return (match["name"], match["alias"]) if match else None


def model_spec(loaded: LoadedModel, backend: Backend, *, accepts_text: bool = False) -> ModelSpec:
    """The spec of a loaded artifact; version = registry version, else training run id."""
    manifest = loaded.manifest
    return ModelSpec(
        ref=ModelRef(name=loaded.served_name, version=loaded.served_version),
        feature_names=tuple(manifest.feature_names),
        uses_initial_rank=manifest.uses_initial_rank,
        context_dim=manifest.context_dim,
        backend=backend,
        context_columns=tuple(manifest.training.get("context_columns") or ()),
        accepts_text=accepts_text,
    )


def _scratch_folders(loaded: LoadedModel, predictor: Predictor) -> tuple[Path, ...]:
    temp = Path(tempfile.gettempdir()).resolve()
    found = []
    candidates = [loaded.path, getattr(predictor, "onnx_path", None)]
    for path in candidates:
        if path is None:
            continue
        for parent in Path(path).resolve().parents:
            if parent.parent == temp and parent.name.startswith(("ltr-model-", "ltr-onnx-")):
                found.append(parent)
                break
    # Only folders this process created: downloads of registry models and exports on load.
    if not is_mlflow_uri(loaded.source):
        found = [p for p in found if p.name.startswith("ltr-onnx-")]
    return tuple(found)


def load_served_model(
    source: str,
    *,
    backend: Backend = "onnx",
    threads: int = 1,
    device: str = "cpu",
    export_on_load: bool = True,
    parity_data: tuple[str, ...] = (),
    featurizer: str | None = None,
    featurizer_device: str | None = None,
    featurizer_recent_documents: int = 0,
    featurizer_prefetch: bool = False,
) -> ServedModel:
    """Load ``source`` (artifact folder or MLflow URI) for serving on ``backend``, with its text
    featurizer when it has one (see :func:`ltr.text.rerank.featurizer_for`), its encoders on
    ``featurizer_device`` (default ``device``), keeping ``featurizer_recent_documents`` of the
    documents its cache lacks in memory once computed, and with ``featurizer_prefetch`` reading
    its document cache's files into the page cache in the background."""
    from ltr.artifact import load_model
    from ltr.predictor import load_predictor
    from ltr.text.rerank import featurizer_for

    loaded = load_model(source)
    text = featurizer_for(loaded, featurizer)  # before the export: a mismatch fails fast
    if text is not None:
        text.to(featurizer_device or device)
        text.keep_recent(featurizer_recent_documents)
        if featurizer_prefetch and text.cache is not None:
            text.cache.prefetch()
    predictor = load_predictor(
        loaded,
        backend,
        threads=threads,
        device=device,
        export_missing_onnx=export_on_load,
        parity_data=parity_data,
    )
    spec = model_spec(loaded, backend, accepts_text=text is not None)
    warm_up(predictor, spec)
    if text is not None:
        text.list_features(["warm up"], [["warm up the text featurizer"]])
    profile = _profile(loaded, spec)
    return ServedModel(predictor, spec, _scratch_folders(loaded, predictor), text, profile)


def _profile(loaded: LoadedModel, spec: ModelSpec) -> FeatureProfile | None:
    """The artifact's feature profile; one that cannot be read only costs the drift gauges."""
    try:
        return FeatureProfile.load(loaded.path, spec.feature_names)
    except ArtifactError as exc:
        log.error("feature drift is not monitored: %s", exc)
        return None


def warm_up(predictor: Predictor, spec: ModelSpec, lengths: tuple[int, ...] = (1, 16)) -> None:
    """Run a few forward passes so that the first real call does not pay for lazy set-up."""
    for n in lengths:
        features = np.zeros((1, n, spec.num_features), dtype=np.float32)  # (1, n, F)
        mask = np.ones((1, n), dtype=bool)  # (1, n)
        ranks = np.arange(1, n + 1, dtype=np.int64)[None] if spec.uses_initial_rank else None
        context = np.zeros((1, spec.context_dim), np.float32) if spec.context_dim else None
        predictor.predict(features, mask, ranks, context)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``swapped`` to ``version``, or kept the old model (``error`` says why)."""

    swapped: bool
    version: str
    error: str | None = None


class ModelHolder:
    """Holds the model in use and replaces it when asked.

    Args:
        source: what to load: an artifact folder or an MLflow URI; for ``models:/name@alias`` the
            alias is resolved on every reload and ``models:/name/<version>`` is loaded.
        load: ``uri -> ServedModel`` (e.g. :func:`load_served_model` with the server's options).
        resolve_alias: ``(name, alias) -> version`` (default :func:`ltr.tracking.resolve_alias`).
        on_reload: called with every :class:`ReloadResult` (metrics, logs).
    """

    def __init__(
        self,
        source: str,
        load: Callable[[str], ServedModel],
        *,
        resolve_alias: Callable[[str, str], str] | None = None,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        self.source = source
        self.alias = parse_alias(source)
        self._load = load
        self._resolve = resolve_alias
        self._on_reload = on_reload or (lambda result: None)
        self._current: ServedModel | None = None
        self._failed_version: str | None = None  # polling does not retry a version that failed
        self._lock = threading.Lock()  # one load at a time

    @property
    def loaded(self) -> bool:
        """Whether a model has been loaded (:meth:`load_initial` succeeded)."""
        return self._current is not None

    @property
    def current(self) -> ServedModel:
        """The model in use (a consistent snapshot: read it once per batch)."""
        if self._current is None:
            raise RuntimeError("no model loaded yet; call load_initial() first")
        return self._current

    def _resolve_version(self) -> str:
        assert self.alias is not None
        if self._resolve is None:
            from ltr.tracking import resolve_alias

            self._resolve = resolve_alias
        return str(self._resolve(*self.alias))

    def _target(self) -> tuple[str, str | None]:
        """The URI to load now and, for aliases, the version it names."""
        if self.alias is None:
            return self.source, None
        version = self._resolve_version()
        return f"models:/{self.alias[0]}/{version}", version

    def load_initial(self) -> ServedModel:
        """Load the first model; errors propagate (the server cannot start without one)."""
        with self._lock:
            uri, _ = self._target()
            self._current = self._load(uri)
            return self._current

    def reload(self, *, only_if_moved: bool = False) -> ReloadResult:
        """Load the source again beside the current model and swap it in if that worked.

        With ``only_if_moved`` (polling), nothing is loaded unless the alias names a version
        other than the one in use and other than one that already failed to load (a forced
        reload, e.g. on SIGHUP, tries again).
        """
        with self._lock:
            old = self.current
            version: str | None = None
            try:
                uri, version = self._target()
                if only_if_moved and version in (None, old.spec.ref.version, self._failed_version):
                    return ReloadResult(False, old.spec.ref.version)
                new = self._load(uri)
            except Exception as exc:  # keep serving the old model whatever went wrong
                self._failed_version = version  # None if the alias could not be resolved
                result = ReloadResult(False, old.spec.ref.version, f"{type(exc).__name__}: {exc}")
                log.error(
                    "loading %s failed; still serving %s version %s: %s",
                    self.source,
                    old.spec.ref.name,
                    old.spec.ref.version,
                    result.error,
                )
                self._on_reload(result)
                return result
            self._current = new  # the atomic swap
            old.retire()
            result = ReloadResult(True, new.spec.ref.version)
            log.info(
                "now serving %s version %s (was %s)",
                new.spec.ref.name,
                new.spec.ref.version,
                old.spec.ref.version,
            )
            self._on_reload(result)
            return result

    def poll(self) -> ReloadResult:
        """Reload if the registry alias has moved (no-op for other sources)."""
        return self.reload(only_if_moved=True)
