"""Server configuration: typed dataclasses that ``configs/serve/*.yaml`` mirror.

Sources, later ones winning: the defaults here, the YAML file (``--config``), environment
variables, then command-line options. An environment variable ``LTR_SERVE_<KEY>`` sets a
top-level key and ``LTR_SERVE_<SECTION>__<KEY>`` a key in a section (values parsed as YAML), e.g.
``LTR_SERVE_PORT=50052`` or ``LTR_SERVE_BATCHING__MAX_DELAY_MS=1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ltr.config import apply_overrides, asks_for_gpu, from_dict, load_yaml
from ltr.errors import ConfigError

ENV_PREFIX = "LTR_SERVE_"


@dataclass
class BatchingConfig:
    """Dynamic batching (see :mod:`ltr.serve.batching`)."""

    enabled: bool = True
    """Off = one forward pass per list."""
    max_batch_size: int = 32
    """Most lists per forward pass."""
    max_delay_ms: float = 0.0
    """How long the oldest waiting list may wait for others to join its batch. 0 = no added
    wait: each forward pass takes every list that arrived while the previous one ran (with one
    compute thread, waiting only adds latency at low load; under load batches form anyway)."""
    max_batch_candidates: int = 4096
    """Most padded slots (lists x longest list) per forward pass. Per-list compute rises once a
    pass outgrows the CPU caches (``benchmarks/serving_latency.py`` measures it by batch size)."""
    queue_capacity: int = 256
    """Most lists waiting for a batch; more are refused with RESOURCE_EXHAUSTED at once."""
    workers: int = 1
    """Forward passes computed at once, each on its own compute thread (with ``threads``
    intra-op threads each). More than 1 lets long lists, whose passes the model's arithmetic
    dominates, use more cores; the next pass forms while the others compute."""

    def __post_init__(self) -> None:
        if (
            self.max_batch_size < 1
            or self.queue_capacity < 1
            or self.max_batch_candidates < 1
            or self.workers < 1
        ):
            raise ConfigError(
                "batching.max_batch_size, batching.queue_capacity, "
                "batching.max_batch_candidates and batching.workers must be at least 1"
            )
        if self.max_delay_ms < 0:
            raise ConfigError(f"batching.max_delay_ms must be >= 0, got {self.max_delay_ms}")


@dataclass
class TlsConfig:
    """TLS from PEM files. With ``cert`` and ``key`` the port speaks TLS only; adding
    ``client_ca`` requires every client to present a certificate signed by it (mutual TLS)."""

    cert: str | None = None
    """Server certificate chain (PEM)."""
    key: str | None = None
    """Server private key (PEM)."""
    client_ca: str | None = None
    """CA bundle (PEM) that client certificates must chain to; set = mutual TLS."""

    @property
    def enabled(self) -> bool:
        return self.cert is not None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("tls.cert and tls.key must be given together")
        if self.client_ca is not None and self.cert is None:
            raise ConfigError("tls.client_ca (mutual TLS) also needs tls.cert and tls.key")


@dataclass
class ImpressionsConfig:
    """The impression log (:mod:`ltr.serve.impressions`): every answered feature list, its
    returned candidates, positions, scores and features, as Parquet files."""

    directory: str | None = None
    """Folder for the files (None = no log)."""
    rows_per_file: int = 100_000
    """Close a file once it holds this many rows (a list is never split between files)."""
    flush_seconds: float = 10.0
    """Close a file at least this often while lists arrive: the most a crash can lose."""
    max_queued_rows: int = 1_000_000
    """Most rows waiting to be written; lists beyond are left out of the log and counted."""
    sample: float = 1.0
    """Share of answered lists logged, drawn at random per list (the others get no
    ``impression_id``); below 1 to log a slice of heavy traffic."""

    def __post_init__(self) -> None:
        if self.rows_per_file < 1 or self.max_queued_rows < 1:
            raise ConfigError("impressions.rows_per_file and max_queued_rows must be at least 1")
        if not 0 < self.sample <= 1:
            raise ConfigError(f"impressions.sample must be in (0, 1], got {self.sample}")
        if self.flush_seconds <= 0:
            raise ConfigError(f"impressions.flush_seconds must be > 0, got {self.flush_seconds}")


@dataclass
class InterleavingConfig:
    """Online comparison with a challenger (:mod:`ltr.serve.interleaving`): lists are answered
    with the team-draft interleaving of the model's ranking and the challenger's."""

    challenger: str | None = None
    """The model to compare with (artifact folder or MLflow URI, like ``model``; an alias is
    polled and reloaded the same way). Feature lists are interleaved when it reads the same
    features as the model; text lists when both carry a text featurizer (each model scores the
    rows its own featurizer computes, so a challenger may read other text features). A
    challenger that can interleave neither is refused. None = no interleaving."""
    share: float = 1.0
    """Share of lists interleaved, drawn at random per list; the others are answered by the
    model alone."""

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ConfigError(f"interleaving.share must be in (0, 1], got {self.share}")


@dataclass
class DriftConfig:
    """Feature and score drift (:mod:`ltr.serve.drift`): the features of the lists answered
    lately, and the model's scores of them, against the model's training profile
    (``feature_profile.json``, written by ``ltr train``)."""

    window_rows: int = 20_000
    """Compare the last this many candidate rows (0 = do not monitor)."""
    min_lists: int = 100
    """Publish nothing (no PSI gauges, no warnings) until this many lists came in (since start
    or the last model swap): a few queries' rows differ from the training data by chance
    (``benchmarks/drift.py``). The window should hold at least this many lists."""
    seconds: float = 30.0
    """How often to compare them and update the gauges."""
    warn_psi: float = 0.25
    """Log a warning when a feature's PSI, or the model's scores', passes this (0.25: a major
    shift)."""
    warn_out_of_range: float = 0.01
    """... or when more than this share of a feature's values fall outside its training range
    (what a rescaled feature trips first: ``benchmarks/drift.py``)."""

    def __post_init__(self) -> None:
        if self.window_rows < 0:
            raise ConfigError(f"drift.window_rows must be >= 0, got {self.window_rows}")
        if self.min_lists < 1:
            raise ConfigError(f"drift.min_lists must be at least 1, got {self.min_lists}")
        if self.seconds <= 0:
            raise ConfigError(f"drift.seconds must be > 0, got {self.seconds}")
        if self.warn_psi <= 0:
            raise ConfigError(f"drift.warn_psi must be > 0, got {self.warn_psi}")
        if not 0 <= self.warn_out_of_range <= 1:
            raise ConfigError(
                f"drift.warn_out_of_range must be in [0, 1], got {self.warn_out_of_range}"
            )


@dataclass
class ReloadConfig:
    """Model updates."""

    poll_seconds: float = 30.0
    """How often to check whether a ``models:/name@alias`` alias moved (0 = never; SIGHUP
    always reloads)."""


@dataclass
class ServeConfig:
    """Everything ``ltr serve`` needs."""

    model: str | None = None
    """Artifact folder, ``runs:/<id>/model``, ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>`` (polled for moves)."""
    backend: Literal["onnx", "torch"] = "onnx"
    """``onnx`` runs model.onnx on ONNX Runtime; ``torch`` runs the PyTorch module."""
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_host: str | None = None
    """Address of the metrics endpoint (None = ``host``: a server told to listen on loopback
    keeps its metrics there too)."""
    metrics_port: int = 9090
    """Prometheus metrics on http://metrics_host:metrics_port/metrics (0 = off). Every server
    on one machine needs its own."""
    max_candidates: int = 1000
    """Most candidates per list."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request (and response) message, in bytes."""
    threads: int = 1
    """Compute threads per forward pass (ONNX Runtime intra-op / torch). One leaves a core to
    the gRPC event loop on small machines."""
    device: str = "cpu"
    """Where the torch backend computes: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when
    present). The onnx backend runs on the CPU only."""
    spinning: bool = False
    """Let idle ONNX Runtime threads spin (lower latency with threads > 1, burns idle CPU)."""
    switch_interval_ms: float = 0.5
    """Python's GIL switch interval (``sys.setswitchinterval``). The compute thread needs the GIL
    back after each forward pass while the event loop decodes requests; Python's default of 5 ms
    would then cap the server at ~200 forward passes per second under load."""
    export_on_load: bool = True
    """With the onnx backend, export (with the parity check) an artifact that has no model.onnx
    when it is loaded; false = refuse such artifacts (run ``ltr export`` first)."""
    parity_data: list[str] = field(default_factory=list)
    """LETOR/Parquet files for the parity check of an export on load (default: the data the
    manifest records, else synthetic lists)."""
    featurizer: str | None = None
    """Text featurizer folder (``ltr text-features``' ``OUT/featurizer``) for ``RerankText``;
    default: the one the model artifact carries, if any. Checked against the model at every
    load: a model not trained on its columns is refused."""
    featurizer_device: str | None = None
    """Where the featurizer's text encoders run: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``;
    default: ``device``. A GPU here suits the onnx backend too (the encoders are PyTorch)."""
    featurizer_recent_documents: int = 10_000
    """``RerankText`` candidates the featurizer's document cache lacks (documents indexed after
    ``ltr text-features`` ran) are tokenised and encoded when first met; this many of them, the
    most recently used, are kept in memory so that they are not computed again (about 2 KB each
    for a Cranfield abstract with one encoder of width 128). 0 = keep none."""
    featurizer_prefetch: bool = True
    """Read the featurizer's document cache files once in the background when a model version
    is loaded, so that on a machine that has not read them yet the first ``RerankText`` calls
    find their rows in the page cache instead of waiting on the disk row by row (the server
    answers meanwhile). false: read rows only as calls use them, for a collection much larger
    than the machine's memory."""
    drain_seconds: float = 30.0
    """On SIGTERM: how long calls in flight may take to complete before the process exits."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    impressions: ImpressionsConfig = field(default_factory=ImpressionsConfig)
    interleaving: InterleavingConfig = field(default_factory=InterleavingConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)

    @property
    def metrics_address_host(self) -> str:
        """The address the metrics endpoint listens on: ``metrics_host``, else ``host``."""
        return self.host if self.metrics_host is None else self.metrics_host

    def __post_init__(self) -> None:
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be a TCP port (0-65535), got {value}")
        if self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be at least 1, got {self.max_candidates}")
        if self.max_message_bytes < 1024:
            raise ConfigError(
                f"max_message_bytes must be at least 1024, got {self.max_message_bytes}"
            )
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = one per core), got {self.threads}")
        if self.featurizer_recent_documents < 0:
            raise ConfigError(
                "featurizer_recent_documents must be >= 0 (0 = keep none), got "
                f"{self.featurizer_recent_documents}"
            )
        if self.backend == "onnx" and asks_for_gpu(self.device):
            raise ConfigError(
                f"device {self.device!r} needs backend torch; the onnx backend runs on the CPU"
            )
        if self.switch_interval_ms <= 0:
            raise ConfigError(f"switch_interval_ms must be > 0, got {self.switch_interval_ms}")
        if self.drain_seconds < 0:
            raise ConfigError(f"drain_seconds must be >= 0, got {self.drain_seconds}")


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Dotted overrides from ``LTR_SERVE_*`` variables (``__`` separates a section)."""
    out: dict[str, Any] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        key = ".".join(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[key] = text
    return out


def load_serve_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServeConfig:
    """Defaults <- YAML file <- environment (``LTR_SERVE_*``) <- ``overrides`` (dotted keys)."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, env_overrides(os.environ if env is None else env))
    data = apply_overrides(data, dict(overrides or {}))
    return from_dict(ServeConfig, data, where="serve")
