"""Helpers for the serving tests: tiny model artifacts and real ``ltr serve`` processes."""

from __future__ import annotations

import itertools
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from ltr.artifact import Manifest, build_model, save_model
from ltr.data.dataset import ListDataset
from ltr.drift import PSI_FLOOR

LTR = Path(sys.executable).with_name("ltr")
TINY = {"d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_artifact(
    directory: Path,
    train: ListDataset,
    *,
    seed: int,
    data: dict[str, list[str]] | None = None,
    **config,
) -> Path:
    """A SetRank artifact with seeded random weights and a normaliser fitted on ``train``."""
    torch.manual_seed(seed)
    manifest = Manifest(
        architecture="setrank",
        model_config={"num_features": train.num_features, **TINY, **config},
        feature_names=list(train.feature_names),
        normalizer={"enabled": True, "log1p": True},
        training={"run_id": f"run-seed{seed}", "data": data or {}},
    )
    model = build_model(manifest)
    model.normalizer.fit(train.features)
    return save_model(model.eval(), manifest, directory)


def list_by_list_scores(model: torch.nn.Module, data: ListDataset) -> np.ndarray:
    """``model``'s score of every row of ``data``, each list scored alone by its own forward
    pass (no batching, padding or reordering of lists), initial ranks in file order."""
    out = np.empty(data.num_rows, dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            n = len(item.rows)
            scores = model(
                torch.from_numpy(item.features)[None],
                torch.ones(1, n, dtype=torch.bool),
                torch.from_numpy(item.ranks())[None],
                None,
            )
            out[item.rows] = scores[0].numpy()
    return out


def hand_stats(values: np.ndarray) -> dict:
    """A profile's statistics of ``values``, by hand: the distinct deciles (values of the data,
    ``inverted_cdf``) as edges, the share at or below each edge and above the last, and the
    moments."""
    x = np.sort(values.astype(np.float64))
    cuts = [x[int(np.ceil(q * len(x))) - 1] for q in np.arange(1, 10) / 10]  # inverted CDF
    edges = sorted(set(cuts))
    below = [np.mean(x <= e) for e in edges] + [1.0]
    return {
        "edges": edges,
        "shares": np.diff([0.0, *below]),
        "mean": x.mean(),
        "std": x.std(),
        "minimum": x[0],
        "maximum": x[-1],
    }


def hand_psi(stats, x: np.ndarray) -> float:
    """PSI over the profile's bins, shares counted bin by bin with comparisons."""
    bounds = [-np.inf, *stats.edges, np.inf]
    shares = [np.mean((x > lo) & (x <= hi)) for lo, hi in itertools.pairwise(bounds)]
    total = 0.0
    for e, a in zip([*stats.shares, stats.missing], [*shares, 0.0], strict=True):
        e, a = max(e, PSI_FLOOR), max(a, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the Prometheus endpoint as ``{(name, sorted labels): value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(samples: dict, family: str, **labels: str) -> float:
    return samples.get((family, tuple(sorted(labels.items()))), 0.0)


class ServerProcess:
    """``ltr serve`` as a subprocess on loopback; ``wait_ready`` polls the gRPC health service.

    Its ports are free when chosen but not held: another process (a worker's server, or a
    client's outgoing connection, which takes its port from the same range) may bind one
    before the server does. ``wait_ready`` then starts it again on other ports, twice at most.
    """

    def __init__(
        self,
        tmp: Path,
        model: str | Path,
        *args: str,
        env: dict[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metrics_host: str | None = "127.0.0.1",
    ) -> None:
        self.credentials = credentials
        self._launch = (tmp, model, args, env, metrics_host)
        self._start()

    def _start(self) -> None:
        tmp, model, args, env, metrics_host = self._launch
        self.port, self.metrics_port = free_port(), free_port()
        self.log_path = tmp / f"serve-{self.port}.log"
        argv = [
            str(LTR), "serve", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(self.port), "--metrics-port", str(self.metrics_port),
            *(() if metrics_host is None else ("--metrics_host", metrics_host)), *args,
        ]  # fmt: skip
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=tmp,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, **options) -> grpc.Channel:
        opts = list(options.items())
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=opts)
        return grpc.secure_channel(self.target, self.credentials, options=opts)

    def wait_ready(self, timeout: float = 180.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        restarts = 2
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log()
                taken = "is the port in use?" in log or "Address already in use" in log
                if self.proc.returncode == 2 and taken and restarts:
                    restarts -= 1
                    self._log.close()
                    self._start()
                    continue
                raise RuntimeError(f"ltr serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                with self.channel() as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return self
            except grpc.RpcError:
                pass
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"ltr serve was not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def scrape(self) -> dict:
        return scrape(self.metrics_port)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def offline_scores(model, dataset: ListDataset) -> np.ndarray:
    """Scores of ``ltr evaluate``'s offline path for every row of ``dataset``."""
    from ltr.inference import score_lists

    return score_lists(model, dataset)
