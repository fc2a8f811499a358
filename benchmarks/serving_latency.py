"""Serving latency: p50/p99 and throughput of ``ltr serve`` over gRPC, client and server here.

The model is the default SetRank of ``configs/setrank_imsab.yaml`` (IMSAB with 20 inducing
points, d_model 64, 4 heads, 2 blocks) for MQ2008's 46 features, with random weights (speed does
not depend on the weights) and a feature normaliser fitted on MQ2008 S1; it is exported to ONNX
with the parity check (``ltr export``'s path). Candidate lists of each length are drawn from
MQ2008 S5 rows.

One ``ltr serve`` process per configuration (ONNX Runtime / PyTorch x batching on / off) runs for
the whole benchmark; this process is the client (``grpc.aio``, pre-serialised requests, replies not
decoded, a closed loop of ``concurrency`` callers). Configurations are measured interleaved: each
repetition runs a burst of every configuration for every (list length, concurrency) cell, and
latencies are pooled over repetitions. Throughput = completed calls / burst time.

Compute only = ``predictor.predict`` on one list in this process (same threads as the server),
the time the model itself needs; serving overhead = server p50 at concurrency 1 - compute p50.

Run: ``python -m benchmarks.serving_latency`` (add ``--no-write`` to only print; see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks._report import DEFAULT_CONFIG, command_line, markdown_table, write_section

REPO = Path(__file__).resolve().parents[1]
MQ2008 = REPO / "data" / "mq2008"
METHOD = "/ltr.reranker.v1.Reranker/Rerank"
ENGINES = {"onnx": "ONNX Runtime", "torch": "PyTorch"}


@dataclass(frozen=True)
class Setup:
    backend: str
    batching: bool

    @property
    def label(self) -> str:
        return f"{ENGINES[self.backend]}, batching {'on' if self.batching else 'off'}"


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0
    lists: float = 0.0
    batches: float = 0.0
    rates: list[float] = field(default_factory=list)  # lists/s of each repetition
    probes: list = field(default_factory=list)  # (before, after) of each burst, when probed


def build_model(root: Path) -> Path:
    """The default SetRank (random weights) with a fitted normaliser, exported with parity."""
    import torch
    import yaml

    from ltr.artifact import Manifest, build_model, load_model, save_model
    from ltr.data.dataset import load_dataset
    from ltr.export.onnx import export_checked, lists_from_files, parity_batches_from_lists

    torch.manual_seed(0)
    preset = yaml.safe_load(DEFAULT_CONFIG.read_text())["model"]
    train = load_dataset(MQ2008 / "S1.txt.xz")
    config = {k: v for k, v in preset.items() if k != "name"}
    manifest = Manifest(
        architecture=preset["name"],
        model_config={"num_features": train.num_features, **config},
        feature_names=list(train.feature_names),
        training={"run_id": "benchmark-random-weights"},
    )
    model = build_model(manifest)
    model.normalizer.fit(train.features)
    folder = save_model(model.eval(), manifest, root / "setrank-default")
    loaded = load_model(folder)
    lists, _ = lists_from_files([MQ2008 / "S5.txt.xz"], 32)
    report = export_checked(loaded, folder, parity_batches_from_lists(loaded, lists))
    print(f"exported {folder}: parity {report.max_abs_diff:.2g} on {report.lists} lists")
    return folder


def make_requests(lengths: list[int], seed: int = 0) -> dict[int, bytes]:
    """One serialised RerankRequest per list length, candidates drawn from MQ2008 S5 rows."""
    from ltr.data.dataset import load_dataset
    from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb

    rows = load_dataset(MQ2008 / "S5.txt.xz").features
    rng = np.random.default_rng(seed)
    out = {}
    for n in lengths:
        pick = rng.integers(0, len(rows), n)
        request = pb.RerankRequest(
            query_id=f"bench-{n}",
            candidates=[
                pb.Candidate(id=f"c{i}", features=rows[r].tolist()) for i, r in enumerate(pick)
            ],
        )
        out[n] = request.SerializeToString()
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server subprocess on ``self.port``, logging to ``log``: wait until it is SERVING (gRPC
    health), stop it with SIGTERM (the drain path)."""

    label: str
    port: int
    metrics_port: int

    def launch(self, argv: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_ready(self, timeout: float = 300) -> None:
        from ltr.serve.healthcheck import check

        deadline = time.monotonic() + timeout
        while check(f"127.0.0.1:{self.port}", timeout=1) != "SERVING":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {self.label} did not start; see {self.log.name}")
            time.sleep(0.5)

    def batch_counts(self) -> tuple[float, float]:
        """(lists, forward passes) so far, from the Prometheus endpoint."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith(("ltr_batch_lists_sum", "ltr_batch_lists_count")):
                name, value = line.split()
                values[name] = float(value)
        return values.get("ltr_batch_lists_sum", 0.0), values.get("ltr_batch_lists_count", 0.0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Server(ServerProcess):
    """One ``ltr serve`` process."""

    def __init__(self, setup: Setup, model: Path, args: argparse.Namespace, log_dir: Path):
        self.setup = setup
        self.port, self.metrics_port = free_port(), free_port()
        argv = [
            str(Path(sys.executable).with_name("ltr")), "serve", "--model", str(model),
            "--backend", setup.backend, "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics_host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
            "--threads", str(args.threads), "--max_candidates", str(max(args.lengths)),
            "--device", args.device if setup.backend == "torch" else "cpu",
            "--export_on_load", "false", "--log_level", "WARNING",
            "--batching.max_delay_ms", str(args.max_delay_ms),
            "--batching.max_batch_size", str(args.max_batch_size),
        ]  # fmt: skip
        if not setup.batching:
            argv.append("--no-batching")
        for extra in args.serve_arg:
            argv += extra.split()
        self.label = setup.label
        self.launch(argv, log_dir / f"{setup.backend}-{setup.batching}.log")

    def failed_calls(self) -> tuple[float, float]:
        """(calls that failed, calls cancelled by the client) so far (Prometheus endpoint)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            lines = r.read().decode().splitlines()
        failed = cancelled = 0.0
        for line in lines:
            if not line.startswith("ltr_requests_total{") or 'code="OK"' in line:
                continue
            if 'code="CANCELLED"' in line:
                cancelled += float(line.split()[-1])
            else:
                failed += float(line.split()[-1])
        return failed, cancelled

    def settled_calls(self, timeout: float = 30.0) -> tuple[float, float]:
        """:meth:`failed_calls` once the counts stop moving: calls that the last burst's client
        cancelled are counted when the server gets to them, which can be after the burst."""
        last, deadline = self.failed_calls(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.failed_calls()
            if now == last:
                return now
            last = now
        return last


async def burst(
    port: int,
    payload: bytes,
    concurrency: int,
    seconds: float,
    warmup: float,
    method: str = METHOD,
):
    """Closed loop: ``concurrency`` callers of ``method`` for ``warmup + seconds``; latencies
    after warm-up."""
    import grpc

    options = [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out: no client-side (de)coding
        await call(payload, timeout=60)
        latencies: list[float] = []
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def caller() -> int:
            done = 0
            while (now := time.perf_counter()) < stop_at:
                await call(payload, timeout=60)
                end = time.perf_counter()
                if now >= measure_from:
                    latencies.append(end - now)
                    done += 1
            return done

        counts = await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    return latencies, sum(counts), elapsed


def measure(
    server: ServerProcess,
    cell: Cell,
    payload: bytes,
    concurrency: int,
    seconds: float,
    warmup: float,
) -> list[float]:
    """One closed-loop burst against ``server`` added to ``cell`` (latencies, calls, lists/s,
    lists per forward pass from the server's metrics); returns the burst's latencies."""
    before = server.batch_counts()
    lat, calls, secs = asyncio.run(burst(server.port, payload, concurrency, seconds, warmup))
    after = server.batch_counts()
    cell.latencies += lat
    cell.calls += calls
    cell.seconds += secs
    cell.rates.append(calls / secs)
    cell.lists += after[0] - before[0]
    cell.batches += after[1] - before[1]
    return lat


def default_server_args(lengths: list[int], threads: int = 1) -> argparse.Namespace:
    """The :class:`Server` options of a server with the default batching settings (what the
    side-by-side benchmarks start, before their own ``serve_arg``)."""
    from ltr.serve.config import BatchingConfig

    defaults = BatchingConfig()
    return argparse.Namespace(
        threads=threads,
        lengths=lengths,
        device="cpu",
        max_delay_ms=defaults.max_delay_ms,
        max_batch_size=defaults.max_batch_size,
        serve_arg=[],
    )


def interleaved_bursts(
    servers: dict, args, payloads: dict[int, bytes], describe, probe=None
) -> dict:
    """``{(key, length, concurrency): Cell}`` for servers side by side: in every repetition
    each length and concurrency is measured on every server in turn, the order reversed every
    other repetition, so that they all see the same machine. ``describe(key)`` names a server
    in the progress lines; ``probe(server)``, when given, is read before and after each burst
    into the cell's ``probes``."""
    keys = list(servers)
    cells = {(k, n, c): Cell() for k in keys for n in args.lengths for c in args.concurrency}
    for rep in range(args.reps):
        order = keys if rep % 2 == 0 else keys[::-1]
        for n in args.lengths:
            for c in args.concurrency:
                for key in order:
                    cell = cells[(key, n, c)]
                    before = probe(servers[key]) if probe is not None else None
                    measure(servers[key], cell, payloads[n], c, args.seconds, args.warmup)
                    if probe is not None:
                        cell.probes.append((before, probe(servers[key])))
                    print(
                        f"rep {rep} {describe(key)} n={n:<5} c={c:<3} "
                        f"{cell.rates[-1]:8.1f} lists/s",
                        flush=True,
                    )
    return cells


def h2load_run(
    port: int, payload: bytes, concurrency: int, seconds: float, work: Path, warmup: float = 1.0
) -> tuple[int, float]:
    """Run ``h2load`` (nghttp2's C load generator): one HTTP/2 connection with ``concurrency``
    concurrent gRPC calls for ``seconds`` after ``warmup`` seconds. Returns (calls completed in
    the measured seconds, CPU seconds h2load used over its whole run, warm-up included)."""
    import os
    import re

    if seconds != int(seconds) or warmup != int(warmup):
        raise ValueError(f"h2load takes whole seconds, got {seconds:g} s after {warmup:g} s")
    body = work / f"grpc-{len(payload)}.bin"
    body.write_bytes(b"\x00" + len(payload).to_bytes(4, "big") + payload)  # gRPC message frame
    cmd = ["h2load", "-c", "1", "-m", str(concurrency), "-D", f"{seconds:g}"]
    cmd += ["--warm-up-time", f"{warmup:g}", "-d", str(body)]
    cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    cmd += [f"http://127.0.0.1:{port}{METHOD}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"h2load exited with {proc.returncode}:\n{out}")
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if done is None or done.group(1) != done.group(2) or int(done.group(2)) == 0:
        raise RuntimeError(f"h2load calls failed:\n{out}")
    return int(done.group(2)), usage.ru_utime + usage.ru_stime


def h2load_burst(port: int, payload: bytes, concurrency: int, seconds: float, work: Path):
    """Lists/s from ``h2load`` at ``concurrency`` for ``seconds`` after 1 s of warm-up.

    A cross-check of the Python client: on 2 cores the client shares the CPU with the server, so
    a much cheaper client shows whether the client, rather than the server, limits throughput.
    """
    calls, _ = h2load_run(port, payload, concurrency, seconds, work)
    return calls / seconds


def compute_only(
    model: Path, backend: str, lengths: list[int], threads: int, reps: int, device: str = "cpu"
):
    """Median and p99 milliseconds of one forward pass of one list, per length."""
    import torch

    from ltr.data.dataset import load_dataset
    from ltr.predictor import load_predictor

    torch.set_num_threads(max(threads, 1))
    predictor = load_predictor(str(model), backend, threads=threads, device=device)
    rows = load_dataset(MQ2008 / "S5.txt.xz").features
    rng = np.random.default_rng(1)
    out = {}
    for n in lengths:
        x = rows[rng.integers(0, len(rows), n)][None]  # (1, n, F)
        mask = np.ones((1, n), dtype=bool)
        for _ in range(3):
            predictor.predict(x, mask)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            predictor.predict(x, mask)
            times.append(time.perf_counter() - t)
        out[n] = (1e3 * statistics.median(times), 1e3 * float(np.percentile(times, 99)))
    return out


BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def compute_by_batch(
    model: Path, backend: str, lengths: list[int], threads: int, budget: float, device: str = "cpu"
):
    """Milliseconds per list of one forward pass over B equal lists, per (length, B).

    Tells how many lists a forward pass should hold: per-list cost first falls as fixed per-call
    costs are shared, then rises again once the activations outgrow the CPU caches.
    """
    import torch

    from ltr.data.dataset import load_dataset
    from ltr.predictor import load_predictor

    torch.set_num_threads(max(threads, 1))
    predictor = load_predictor(str(model), backend, threads=threads, device=device)
    rows = load_dataset(MQ2008 / "S5.txt.xz").features
    rng = np.random.default_rng(2)
    out: dict[tuple[int, int], float] = {}
    for n in lengths:
        for b in BATCH_SIZES:
            x = rows[rng.integers(0, len(rows), b * n)].reshape(b, n, -1)
            mask = np.ones((b, n), dtype=bool)
            predictor.predict(x, mask)
            times: list[float] = []
            stop = time.perf_counter() + budget
            while len(times) < 5 or (time.perf_counter() < stop and len(times) < 200):
                t = time.perf_counter()
                predictor.predict(x, mask)
                times.append(time.perf_counter() - t)
            out[(n, b)] = 1e3 * statistics.median(times) / b
    return out


def _device(args: argparse.Namespace, backend: str) -> str:
    return args.device if backend == "torch" else "cpu"


def ms(values: list[float], q: float) -> float:
    return 1e3 * float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--backends", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per burst")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per burst")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=1, help="server compute threads")
    p.add_argument(
        "--max-delay-ms", type=float, default=None, help="batching window (default: server default)"
    )
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="extra `ltr serve` option for every server, e.g. --serve-arg '--switch_interval_ms 5'",
    )
    p.add_argument(
        "--h2load",
        choices=["auto", "on", "off"],
        default="auto",
        help="also measure throughput at the highest concurrency with h2load (auto = if on PATH)",
    )
    p.add_argument(
        "--device", default="cpu", help="where the torch backend computes (cpu, cuda, auto)"
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.h2load == "auto":
        args.h2load = "on" if shutil.which("h2load") else "off"
    from ltr.serve.config import BatchingConfig

    defaults = BatchingConfig()
    args.max_delay_ms = defaults.max_delay_ms if args.max_delay_ms is None else args.max_delay_ms
    args.max_batch_size = (
        defaults.max_batch_size if args.max_batch_size is None else args.max_batch_size
    )
    setups = [Setup(b, on) for b in args.backends for on in (True, False)]

    root = Path(tempfile.mkdtemp(prefix="ltr-bench-serving-"))
    model = build_model(root)
    payloads = make_requests(args.lengths)
    servers = [Server(s, model, args, root) for s in setups]
    try:
        for server in servers:
            server.wait_ready()
        cells = {
            (s.setup, n, c): Cell() for s in servers for n in args.lengths for c in args.concurrency
        }
        for rep in range(args.reps):
            for n in args.lengths:
                for c in args.concurrency:
                    for server in servers if rep % 2 == 0 else servers[::-1]:
                        cell = cells[(server.setup, n, c)]
                        lat = measure(server, cell, payloads[n], c, args.seconds, args.warmup)
                        print(
                            f"rep {rep} {server.setup.label:<32} n={n:<5} c={c:<3} "
                            f"p50 {ms(lat, 50):7.2f} ms  p99 {ms(lat, 99):7.2f} ms  "
                            f"{cell.rates[-1]:8.1f} lists/s",
                            flush=True,
                        )
        h2: dict[tuple[Setup, int], list[float]] = {}
        if args.h2load == "on":
            top = max(args.concurrency)
            for rep in range(args.reps):
                for n in args.lengths:
                    for server in servers if rep % 2 == 0 else servers[::-1]:
                        failed, cancelled = server.settled_calls()
                        rate = h2load_burst(server.port, payloads[n], top, args.seconds, root)
                        failed_after, cancelled_after = server.settled_calls()
                        # h2load cancels the calls still in flight when its time is up
                        if failed_after != failed or cancelled_after - cancelled > top:
                            raise RuntimeError(f"{server.setup.label}: calls failed under h2load")
                        h2.setdefault((server.setup, n), []).append(rate)
                        print(f"h2load rep {rep} {server.setup.label:<32} n={n:<5} c={top:<3} "
                              f"{rate:8.1f} lists/s", flush=True)  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    compute = {
        b: compute_only(model, b, args.lengths, args.threads, 200, _device(args, b))
        for b in args.backends
    }
    by_batch = {
        b: compute_by_batch(model, b, args.lengths, args.threads, 1.0, _device(args, b))
        for b in args.backends
    }
    shutil.rmtree(root, ignore_errors=True)
    body = report(args, setups, cells, compute, by_batch, h2)
    print(body)
    if not args.no_write:
        command = command_line("serving_latency", argv)
        # A GPU run keeps its own section beside the CPU one (measured where CI runs).
        gpu = args.device != "cpu"
        name = "serving_latency_cuda" if gpu else "serving_latency"
        title = "gRPC serving latency and throughput" + (" (GPU, PyTorch backend)" if gpu else "")
        write_section(name, title, command, body)
    return 0


def spread(on: list[float], off: list[float]) -> str:
    """The on/off ratio of each repetition (the two bursts of a repetition run back to back)."""
    ratios = [a / b for a, b in zip(on, off, strict=True) if b]
    if not ratios:
        return "no repetition to compare"
    return f"per repetition {min(ratios):.2f}× to {max(ratios):.2f}×"


def report(
    args: argparse.Namespace,
    setups: list[Setup],
    cells: dict,
    compute: dict,
    by_batch: dict,
    h2: dict,
) -> str:
    """The Markdown body: latency table, compute vs served, compute per batch size, goals."""
    rows = []
    for s in setups:
        for n in args.lengths:
            for c in args.concurrency:
                cell = cells[(s, n, c)]
                per_pass = cell.lists / cell.batches if cell.batches else float("nan")
                rate = f"{cell.calls / cell.seconds:,.0f}" if cell.seconds else "–"
                p50, p99 = ms(cell.latencies, 50), ms(cell.latencies, 99)
                rows.append(
                    [s.label, f"{n:,}", c, f"{p50:.2f}", f"{p99:.2f}", rate, f"{per_pass:.1f}"]
                )
    headers = ["setup", "candidates", "concurrency", "p50 ms", "p99 ms", "lists/s", "lists/pass"]
    overhead_rows = []
    for b in args.backends:
        for n in args.lengths:
            if 1 not in args.concurrency:
                continue
            p50, p99 = compute[b][n]
            served = ms(cells[(Setup(b, False), n, 1)].latencies, 50)
            overhead_rows.append(
                [
                    ENGINES[b],
                    f"{n:,}",
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                    f"{served:.2f}",
                    f"{served - p50:.2f}",
                ]
            )
    overhead_headers = [
        "backend", "candidates", "compute p50 ms", "compute p99 ms",
        "served p50 ms (c=1, batching off)", "serving overhead ms",
    ]  # fmt: skip
    batch_headers = ["backend", "candidates", *(f"B={b}" for b in BATCH_SIZES)]
    batch_rows = [
        [ENGINES[b], f"{n:,}", *(f"{by_batch[b][(n, k)]:.3f}" for k in BATCH_SIZES)]
        for b in args.backends
        for n in args.lengths
    ]
    goals = []
    if "onnx" in args.backends and 100 in args.lengths and 1 in args.concurrency:
        p99 = ms(cells[(Setup("onnx", True), 100, 1)].latencies, 99)
        verdict = "met" if p99 <= 10 else "not met"
        goals.append(
            f"- p99 for 100 candidates at concurrency 1 (ONNX Runtime, batching on): "
            f"{p99:.2f} ms (goal ≤ 10 ms: {verdict})."
        )
    if 64 in args.concurrency:
        for b in args.backends:
            for n in args.lengths:
                on, off = cells[(Setup(b, True), n, 64)], cells[(Setup(b, False), n, 64)]
                if on.seconds and off.seconds and off.calls:
                    ratio = (on.calls / on.seconds) / (off.calls / off.seconds)
                    verdict = "met" if ratio >= 2 else "not met"
                    goals.append(
                        f"- {ENGINES[b]}, {n:,} candidates, concurrency 64: throughput with "
                        f"batching / without = {ratio:.2f}× (goal ≥ 2×: {verdict}; "
                        f"{spread(on.rates, off.rates)})."
                    )
    h2_section = ""
    if h2:
        top = max(args.concurrency)
        h2_rows = []
        for b in args.backends:
            for n in args.lengths:
                on = statistics.median(h2[(Setup(b, True), n)])
                off = statistics.median(h2[(Setup(b, False), n)])
                h2_rows.append(
                    [ENGINES[b], f"{n:,}", f"{on:,.0f}", f"{off:,.0f}", f"{on / off:.2f}×"]
                )
                verdict = "met" if on / off >= 2 else "not met"
                goals.append(
                    f"- With h2load as the client: {ENGINES[b]}, {n:,} candidates, concurrency "
                    f"{top}: batching / without = {on / off:.2f}× (goal ≥ 2×: {verdict}; "
                    f"{spread(h2[(Setup(b, True), n)], h2[(Setup(b, False), n)])})."
                )
        h2_headers = ["backend", "candidates", "batching on lists/s", "batching off lists/s"]
        h2_headers.append("on / off")
        h2_section = (
            f"### Throughput at concurrency {top} with a C client (h2load)\n\n"
            "A cross-check of the Python client, which shares the 2 cores with the server: the "
            "same servers driven by `h2load` (nghttp2's C load generator, far less CPU per call). "
            "If the numbers are not higher than above, the server, not the client, is the limit. "
            f"One HTTP/2 connection, {top} concurrent `Rerank` calls with the same serialised "
            f"request, {args.seconds:g} s after 1 s warm-up, {args.reps} interleaved repetitions "
            "(median); every call ended with status OK (server metrics) but those h2load cancels "
            "when its time is up.\n\n"
            f"{markdown_table(h2_headers, h2_rows)}\n\n"
        )
    setup = (
        "Default SetRank (`configs/setrank_imsab.yaml` model: IMSAB with 20 inducing points, "
        "d_model 64, 4 heads, 2 blocks; "
        "**random weights**, normaliser fitted on MQ2008 S1), 46 features, candidates drawn from "
        f"MQ2008 S5 rows. One `ltr serve` process per setup (compute threads {args.threads}, "
        f"PyTorch on device `{args.device}`, "
        f"batching window {args.max_delay_ms:g} ms, at most {args.max_batch_size} lists per "
        "forward pass); the client is the benchmark process (`grpc.aio`, a closed loop of "
        "`concurrency` callers, pre-serialised requests), all on this machine. "
        f"{args.reps} interleaved repetitions of {args.seconds:g} s per cell (after "
        f"{args.warmup:g} s warm-up), latencies pooled. lists/pass = mean lists per forward pass "
        "(server metrics)."
    )
    return (
        f"{setup}\n\n{markdown_table(headers, rows)}\n\n### Compute alone vs served\n\n"
        "Compute = one forward pass of one list in the benchmark process (same threads), 200 "
        "repetitions; serving overhead = served p50 - compute p50 (gRPC, decoding, validation, "
        f"queueing, client).\n\n{markdown_table(overhead_headers, overhead_rows)}\n\n"
        "### Compute per list by lists per forward pass\n\n"
        "Median milliseconds per list of one forward pass over B lists of equal length (same "
        "threads as the server), in the benchmark process. Where it rises with B, bigger batches "
        "cost more per list (activations outgrow the CPU caches): the server's "
        "`batching.max_batch_candidates` caps a pass's padded slots accordingly.\n\n"
        f"{markdown_table(batch_headers, batch_rows)}\n\n{h2_section}"
        "### Goals\n\n" + "\n".join(goals)
    )


if __name__ == "__main__":
    sys.exit(main())
