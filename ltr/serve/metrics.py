"""Prometheus metrics of the server, served over HTTP on their own port.

Metric families (all in a registry of their own, so several servers can live in one process):

* ``ltr_request_latency_seconds{method}`` -- histogram of call latency inside the server;
* ``ltr_requests_total{method, code}`` -- calls by gRPC status code (errors by code);
* ``ltr_batch_lists`` / ``ltr_batch_candidates`` -- histograms of lists and candidates per forward
  pass;
* ``ltr_queue_depth`` -- lists waiting for a batch;
* ``ltr_model_info{name, version, backend}`` -- 1 for the model in use;
* ``ltr_model_reloads_total{outcome}`` -- reloads that swapped a model in or failed;
* ``ltr_text_documents_total{source}`` -- ``RerankText`` candidates whose rows came from the
  featurizer's document cache (``cache``), from the documents it computed lately and keeps
  (``recent``), or were computed (``computed``: tokenised, encoded);
* ``ltr_impressions_written_total`` / ``ltr_impressions_dropped_total{reason}`` -- rows of the
  impression log written to files, and left out (``queue_full``, ``write_error``);
* ``ltr_clicks_written_total`` -- clicks sent back with ``RecordClicks`` written to the click log;
* ``ltr_feature_psi{feature}`` / ``ltr_feature_out_of_range{feature}`` -- each feature's
  population stability index against the model's training profile, and the share of its values
  outside the training range, over the last ``ltr_drift_rows`` candidate rows
  (:mod:`ltr.serve.drift`);
* ``ltr_score_psi`` / ``ltr_score_out_of_range`` -- the same for the model's scores of those rows,
  against its scores of its training lists (NaN while there are none to compare).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ltr.drift import FeatureDrift
from ltr.serve.domain import ModelRef, ModelSpec

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
LIST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CANDIDATE_BUCKETS = (10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000)


class ServerMetrics:
    """The server's metrics; also a :class:`~ltr.serve.batching.BatchObserver`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "ltr_request_latency_seconds",
            "Latency of calls inside the server, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "ltr_requests", "Calls by method and gRPC status code.", ["method", "code"], registry=r
        )
        self.batch_lists = Histogram(
            "ltr_batch_lists", "Lists per forward pass.", buckets=LIST_BUCKETS, registry=r
        )
        self.batch_candidates = Histogram(
            "ltr_batch_candidates",
            "Candidates per forward pass.",
            buckets=CANDIDATE_BUCKETS,
            registry=r,
        )
        self.depth = Gauge("ltr_queue_depth", "Lists waiting for a batch.", registry=r)
        self.model = Gauge(
            "ltr_model_info", "The model in use (value 1).", ["name", "version", "backend"],
            registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            "ltr_model_reloads", "Model reload attempts by outcome.", ["outcome"], registry=r
        )
        self.text_documents = Counter(
            "ltr_text_documents",
            "RerankText candidates by where their rows came from (document cache, recent "
            "documents or computed).",
            ["source"],
            registry=r,
        )
        self.clicks = Counter(
            "ltr_clicks_written", "Clicks (RecordClicks) written to the click log.", registry=r
        )
        self.impressions = Counter(
            "ltr_impressions_written", "Impression log rows written to files.", registry=r
        )
        self.impressions_lost = Counter(
            "ltr_impressions_dropped",
            "Impression log rows left out, by reason (queue_full, write_error).",
            ["reason"],
            registry=r,
        )
        self.challenger = Gauge(
            "ltr_challenger_info", "The challenger interleaved with the model (value 1).",
            ["name", "version"], registry=r,
        )  # fmt: skip
        self.interleaved = Counter(
            "ltr_interleaved_lists",
            "Lists answered with the team-draft interleaving of the model and the challenger.",
            registry=r,
        )
        self.psi = Gauge(
            "ltr_feature_psi",
            "Population stability index of each feature over the last ltr_drift_rows candidate "
            "rows against the model's training data (above 0.25: a major shift).",
            ["feature"],
            registry=r,
        )
        self.out_of_range = Gauge(
            "ltr_feature_out_of_range",
            "Share of each feature's values over the last ltr_drift_rows candidate rows outside "
            "the training data's range.",
            ["feature"],
            registry=r,
        )
        self.score_psi = Gauge(
            "ltr_score_psi",
            "Population stability index of the model's scores of the last ltr_drift_rows "
            "candidate rows against its scores of its training lists (NaN when the model's "
            "profile has no scores, or too few lists came in).",
            registry=r,
        )
        self.score_out_of_range = Gauge(
            "ltr_score_out_of_range",
            "Share of the model's scores of the last ltr_drift_rows candidate rows outside the "
            "range of its scores of its training lists.",
            registry=r,
        )
        self.drift_rows = Gauge(
            "ltr_drift_rows", "Candidate rows behind ltr_feature_psi and ltr_score_psi.", registry=r
        )
        self._drift_features: tuple[str, ...] = ()
        self._http = None
        self._children: dict[tuple[str, str], tuple] = {}

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        children = self._children.get((method, code))
        if children is None:  # labels() lookups cost more than the observation itself
            children = self._children[(method, code)] = (
                self.latency.labels(method),
                self.requests.labels(method, code),
            )
        children[0].observe(seconds)
        children[1].inc()

    def queue_depth(self, depth: int) -> None:
        self.depth.set(depth)

    def batch_formed(self, items: int, candidates: int) -> None:
        self.batch_lists.observe(items)
        self.batch_candidates.observe(candidates)

    def model_in_use(self, spec: ModelSpec) -> None:
        self.model.clear()
        self.model.labels(spec.ref.name, spec.ref.version, spec.backend).set(1)

    def challenger_in_use(self, spec: ModelSpec) -> None:
        self.challenger.clear()
        self.challenger.labels(spec.ref.name, spec.ref.version).set(1)

    def lists_interleaved(self, count: int) -> None:
        self.interleaved.inc(count)

    def documents_featurized(self, by_source: dict[str, int]) -> None:
        for source, count in by_source.items():
            self.text_documents.labels(source).inc(count)

    def clicks_written(self, clicks: int) -> None:
        self.clicks.inc(clicks)

    def impressions_written(self, rows: int) -> None:
        self.impressions.inc(rows)

    def impressions_dropped(self, reason: str, rows: int) -> None:
        self.impressions_lost.labels(reason).inc(rows)

    def feature_drift(
        self,
        model: ModelRef,
        report: list[FeatureDrift],
        rows: int,
        score: FeatureDrift | None = None,
    ) -> None:
        """The drift gauges from a :class:`~ltr.serve.drift.DriftMonitor` report."""
        names = tuple(d.name for d in report)
        if names != self._drift_features:  # another model's features: no stale series
            self.psi.clear()
            self.out_of_range.clear()
            self._drift_features = names
        for d in report:
            self.psi.labels(d.name).set(d.psi)
            self.out_of_range.labels(d.name).set(d.out_of_range)
        if score is None:
            self._clear_score()
        else:
            self.score_psi.set(score.psi)
            self.score_out_of_range.set(score.out_of_range)
        self.drift_rows.set(rows)

    def _clear_score(self) -> None:
        """No score gauges (a model without scores in its profile, or too few lists)."""
        for gauge in (self.score_psi, self.score_out_of_range):
            gauge.set(float("nan"))

    def drift_waiting(self, rows: int) -> None:
        """Fewer lists than ``drift.min_lists`` so far (since start or the last model swap): no
        PSI gauges, only the rows held."""
        if self._drift_features:
            self.psi.clear()
            self.out_of_range.clear()
            self._drift_features = ()
        self._clear_score()
        self.drift_rows.set(rows)

    def reload(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def serve_http(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` from a background thread."""
        self._http = start_http_server(port, addr=host, registry=self.registry)

    def stop_http(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            thread.join(timeout=5)
            self._http = None
