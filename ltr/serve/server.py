"""``ltr serve``: the gRPC server process, from model load to graceful drain.

Start-up: load the model (exporting it to ONNX first if needed), then start ``grpc.aio`` with
the Reranker service, the standard health service and server reflection, on one port (TLS only
when configured), and Prometheus metrics on another. Then:

* SIGTERM / SIGINT: health turns NOT_SERVING, new calls are refused (``UNAVAILABLE``), calls in
  flight complete (up to ``drain_seconds``), and the process exits 0;
* SIGHUP: reload the model source now (a registry alias is resolved again);
* every ``reload.poll_seconds``: reload if the registry alias moved;
* every ``drift.seconds``: compare the features of the lists answered lately with the model's
  training profile (:mod:`ltr.serve.drift`).

A reload loads the new version beside the old one and swaps it in atomically; if it fails, the old
model keeps serving (see :mod:`ltr.serve.models`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ltr.errors import ConfigError
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.config import ServeConfig
from ltr.serve.drift import DriftMonitor
from ltr.serve.metrics import ServerMetrics
from ltr.serve.models import ModelHolder, ReloadResult, load_served_model
from ltr.serve.osthreads import name_native_thread
from ltr.serve.scoring import incompatibility
from ltr.serve.service import RerankService, make_batcher
from ltr.serve.servicer import RerankerServicer
from ltr.serve.tls import server_credentials

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Reranker"].full_name
log = logging.getLogger("ltr.serve")
T = TypeVar("T")


def address(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``fn`` on a daemon thread (a model load must not keep a draining process alive)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable, value: object) -> None:
        if not future.done():
            setter(value)

    def runner() -> None:
        try:
            value = fn()
        except BaseException as exc:
            setter, value = future.set_exception, exc
        else:
            setter = future.set_result
        with contextlib.suppress(RuntimeError):  # the loop closed while the load ran
            loop.call_soon_threadsafe(deliver, setter, value)

    threading.Thread(target=runner, name="ltr-reload", daemon=True).start()
    return future


class RerankServer:
    """One serving process: model holder, batcher, gRPC server, metrics and signals."""

    def __init__(self, config: ServeConfig) -> None:
        if not config.model:
            raise ConfigError(
                "no model to serve; pass --model DIR_OR_URI or set model in the config"
            )
        self.config = config
        self.metrics = ServerMetrics()
        load = partial(
            load_served_model,
            backend=config.backend,
            threads=config.threads,
            device=config.device,
            export_on_load=config.export_on_load,
            parity_data=tuple(config.parity_data),
            featurizer=config.featurizer,
            featurizer_device=config.featurizer_device,
            featurizer_recent_documents=config.featurizer_recent_documents,
            featurizer_prefetch=config.featurizer_prefetch,
        )
        self.holder = ModelHolder(config.model, load, on_reload=self._reloaded)
        challenger = config.interleaving.challenger
        self.challenger = (  # with the featurizer it carries, not the model's `featurizer`
            None
            if not challenger
            else ModelHolder(
                challenger, partial(load, featurizer=None), on_reload=self._challenger_reloaded
            )
        )
        self.compute = ThreadPoolExecutor(
            config.batching.workers,
            thread_name_prefix="ltr-compute",
            initializer=name_native_thread,  # named in top -H
        )
        self.stopping = asyncio.Event()
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self._tasks: list[asyncio.Task] = []

    def _reloaded(self, result: ReloadResult) -> None:
        outcome = "failed" if result.error else "swapped"
        self.metrics.reload(outcome)
        if result.swapped:
            self.metrics.model_in_use(self.holder.current.spec)

    def _challenger_reloaded(self, result: ReloadResult) -> None:
        if result.swapped and self.challenger is not None:
            self.metrics.challenger_in_use(self.challenger.current.spec)

    async def start(self) -> None:
        """Load the model and start serving (returns once the port is open). A start that fails
        part-way (a busy port, a challenger that does not load) leaves nothing behind: the
        models' temporary downloads and exported graphs are deleted, the metrics port closed."""
        try:
            await self._start()
        except BaseException:
            self.metrics.stop_http()
            self.compute.shutdown(wait=False)
            for holder in self._holders():
                if holder.loaded:
                    holder.current.retire()
            raise

    async def _start(self) -> None:
        cfg = self.config
        _set_torch_threads(cfg.threads)
        sys.setswitchinterval(cfg.switch_interval_ms / 1000.0)
        model = self.holder.load_initial()
        self.metrics.model_in_use(model.spec)
        if self.challenger is not None:
            rival = self.challenger.load_initial()
            why = incompatibility(model.spec, rival.spec)
            if why is not None and (model.featurizer is None or rival.featurizer is None):
                raise ConfigError(f"cannot interleave: {why}")
            if why is not None:  # two text models: each scores the features it computes
                log.warning("interleaving text lists only; feature lists: %s", why)
            self.metrics.challenger_in_use(rival.spec)
        self.drift = None
        if cfg.drift.window_rows:
            self.drift = DriftMonitor(
                cfg.drift.window_rows,
                min_lists=cfg.drift.min_lists,
                warn_psi=cfg.drift.warn_psi,
                warn_out_of_range=cfg.drift.warn_out_of_range,
                on_report=self.metrics.feature_drift,
                on_waiting=self.metrics.drift_waiting,
            )
            if model.profile is None:
                log.info(
                    "%s carries no feature profile: feature drift is not monitored (ltr drift "
                    "--save-profile writes one)",
                    cfg.model,
                )
        self.batcher = make_batcher(
            self.holder,
            cfg.batching,
            executor=self.compute,
            observer=self.metrics,
            on_documents=self.metrics.documents_featurized,
            challenger=self.challenger,
            interleave_share=cfg.interleaving.share,
            on_interleaved=self.metrics.lists_interleaved,
            on_rows=None if self.drift is None else self.drift.observe,
        )
        self.impressions = None
        self.clicks = None
        if cfg.impressions.directory:
            from ltr.serve.clicklog import FOLDER, ClickLog
            from ltr.serve.impressions import ImpressionLog

            self.clicks = ClickLog(
                Path(cfg.impressions.directory) / FOLDER,
                flush_seconds=cfg.impressions.flush_seconds,
                on_written=self.metrics.clicks_written,
            )

            self.impressions = ImpressionLog(
                cfg.impressions.directory,
                rows_per_file=cfg.impressions.rows_per_file,
                flush_seconds=cfg.impressions.flush_seconds,
                max_queued_rows=cfg.impressions.max_queued_rows,
                sample=cfg.impressions.sample,
                observer=self.metrics,
            )
        self.service = RerankService(
            self.holder,
            self.batcher,
            max_candidates=cfg.max_candidates,
            max_message_bytes=cfg.max_message_bytes,
            impressions=self.impressions,
            clicks=self.clicks,
            challenger=self.challenger,
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", cfg.max_message_bytes),
                ("grpc.max_send_message_length", cfg.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        pb_grpc.add_RerankerServicer_to_server(RerankerServicer(self.service, self.metrics), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        where = address(cfg.host, cfg.port)
        credentials = server_credentials(cfg.tls)
        try:
            if credentials is None:
                self.port = server.add_insecure_port(where)
            else:
                self.port = server.add_secure_port(where, credentials)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise ConfigError(f"cannot listen on {where}; is the port in use?")
        self.server = server
        if cfg.metrics_port:
            metrics_where = address(cfg.metrics_address_host, cfg.metrics_port)
            try:
                self.metrics.serve_http(cfg.metrics_address_host, cfg.metrics_port)
            except OSError as exc:  # in use (another server, Prometheus itself), or no such host
                raise ConfigError(
                    f"cannot serve metrics on {metrics_where} ({exc.strerror or exc}); give this "
                    "server a free port with --metrics-port PORT (every server on a machine "
                    "needs its own), or turn metrics off with --metrics-port 0"
                ) from None
        self.batcher.start()
        await server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if any(h.alias is not None for h in self._holders()) and cfg.reload.poll_seconds > 0:
            self._tasks.append(asyncio.create_task(self._poll(), name="alias-poll"))
        if self.drift is not None:
            self._tasks.append(asyncio.create_task(self._watch_drift(), name="drift"))

    def _holders(self) -> list[ModelHolder]:
        """The model's holder, and the challenger's when interleaving."""
        return [self.holder] + ([self.challenger] if self.challenger is not None else [])

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload.poll_seconds)
            for holder in self._holders():
                await _in_daemon_thread(holder.poll)

    async def _watch_drift(self) -> None:
        assert self.drift is not None
        while True:
            await asyncio.sleep(self.config.drift.seconds)
            try:
                await _in_daemon_thread(self.drift.publish)
            except Exception:  # a bug here must not stop serving, nor the next comparison
                log.exception("comparing the served features with the training profile failed")

    def request_reload(self) -> None:
        """Reload the model source now, and the challenger's (SIGHUP)."""
        log.info("reload requested")
        for holder in self._holders():
            _in_daemon_thread(holder.reload)

    def request_stop(self) -> None:
        """Begin draining (SIGTERM, SIGINT)."""
        self.stopping.set()

    async def drain(self) -> None:
        """Refuse new calls, let calls in flight finish (up to drain_seconds), then stop.

        The gRPC server keeps running until the accepted calls are answered, so a call that
        arrives meanwhile always gets our UNAVAILABLE ("retry on another replica"), never a
        transport-level cancellation from a server that is already stopping.
        """
        started = time.monotonic()
        self.service.close()
        log.info("draining: refusing new calls, finishing those in flight")
        await self.health.enter_graceful_shutdown()
        if not await self.service.wait_idle(self.config.drain_seconds):
            log.warning(
                "drain: %d calls still in flight after %g s; stopping anyway",
                self.service.in_flight,
                self.config.drain_seconds,
            )
        if self.server is not None:
            # grace for responses still being written (at least 1 s, within drain_seconds)
            left = self.config.drain_seconds - (time.monotonic() - started)
            await self.server.stop(max(left, 1.0))
        await self.batcher.close()
        if self.impressions is not None:  # every answered list is written before exiting
            await asyncio.to_thread(self.impressions.close)
        if self.clicks is not None:  # and every click received
            await asyncio.to_thread(self.clicks.close)
        for task in self._tasks:
            task.cancel()
        self.metrics.stop_http()
        self.compute.shutdown(wait=True)
        for holder in self._holders():  # temporary downloads and exports of the models in use
            if holder.loaded:
                holder.current.retire()
        log.info("stopped")

    def describe(self) -> str:
        """One line saying what is served where."""
        cfg, spec = self.config, self.holder.current.spec
        security = (
            " (mutual TLS)"
            if cfg.tls.client_ca
            else " (TLS)"
            if cfg.tls.enabled
            else " (plaintext)"
        )
        metrics = (
            f"; metrics on http://{address(cfg.metrics_address_host, cfg.metrics_port)}/metrics"
            if cfg.metrics_port
            else ""
        )
        impressions = (
            f"; impressions logged to {cfg.impressions.directory} (RecordClicks clicks to "
            f"{Path(cfg.impressions.directory) / 'clicks'})"
            if cfg.impressions.directory
            else ""
        )
        interleaving = ""
        if self.challenger is not None:
            rival = self.challenger.current.spec.ref
            share = cfg.interleaving.share
            interleaving = (
                f"; interleaved with {rival.name} version {rival.version}"
                f"{'' if share >= 1 else f' on {share:.0%} of lists'}"
            )
        drift = (
            f"; feature drift against the training data every {cfg.drift.seconds:g} s"
            if self.drift is not None and self.holder.current.profile is not None
            else ""
        )
        return (
            f"ltr serve: {spec.ref.name} version {spec.ref.version} on {spec.backend}, "
            f"listening on {address(cfg.host, self.port)}{security}{metrics}{impressions}"
            f"{interleaving}{drift}"
        )


def _set_torch_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work already ran
        torch.set_num_interop_threads(1)


async def serve(config: ServeConfig) -> int:
    """Run a server until SIGTERM/SIGINT, then drain and return 0."""
    server = RerankServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, server.request_stop)
    loop.add_signal_handler(signal.SIGINT, server.request_stop)
    loop.add_signal_handler(signal.SIGHUP, server.request_reload)
    print(server.describe(), flush=True)
    await server.stopping.wait()
    await server.drain()
    return 0


def run(config: ServeConfig) -> int:
    """Configure logging and run :func:`serve` in a fresh event loop."""
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(config))
