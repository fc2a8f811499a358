"""What the impression log costs a server: ``impressions.directory`` set and unset, side by side.

``ltr serve`` processes of the default SetRank on ONNX Runtime with batching on (the model,
requests and client of ``benchmarks.serving_latency``): one without the log, and one per
``--sample`` rate logging that share of the answered lists (``--impressions DIR``, default file
size and flush interval). Bursts alternate between them in every repetition, so that they see the
same machine. Reported: p50/p99 latency and lists/s per cell, the throughput ratio logged / not
logged, and what each log holds: rows written (after the server's SIGTERM drain), rows dropped,
files, and bytes on disk per row. Where the time goes: each server thread's CPU (``/proc``) per
list served over every burst (warm-up included, lists from the server's metrics), by thread:
the event loop (the main thread), the compute thread, the impression log's writer, and the
rest (gRPC's own threads).

Run: ``python -m benchmarks.serving_impressions`` (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import urllib.request
from pathlib import Path

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.serving_latency import (
    Server,
    Setup,
    build_model,
    default_server_args,
    interleaved_bursts,
    make_requests,
    ms,
)
from benchmarks.serving_workers import _ratio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--sample", type=float, nargs="+", default=[1.0, 0.1], help="logged shares")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per burst")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per burst")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument(
        "--log-arg",
        action="append",
        default=[],
        help="extra `ltr serve` options for the logging servers, e.g. "
        "'--impressions.flush_seconds 1' (repeatable)",
    )
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    base = default_server_args(args.lengths)
    root = Path(tempfile.mkdtemp(prefix="ltr-bench-impressions-"))
    model = build_model(root)
    payloads = make_requests(args.lengths)
    keys = [None, *args.sample]  # None: no log; else the logged share
    servers = {}
    for key in keys:
        server_args = copy.copy(base)
        logs = root / ("plain" if key is None else f"sample-{key:g}")
        logs.mkdir()
        if key is not None:
            server_args.serve_arg = [
                f"--impressions {logs / 'impressions'} --impressions.sample {key:g}",
                *args.log_arg,
            ]
        servers[key] = Server(Setup("onnx", True), model, server_args, logs)
    dropped = dict.fromkeys(args.sample, 0.0)
    try:
        for server in servers.values():
            server.wait_ready()
        cells = interleaved_bursts(
            servers, args, payloads, lambda key: f"{label(key):>20}", probe=cpu_and_lists
        )
    finally:
        for key, server in servers.items():
            if key is not None and server.proc.poll() is None:
                dropped[key] = dropped_rows(server.metrics_port)
            server.stop()  # SIGTERM: a logging server writes its queue out first
    import pyarrow.parquet as pq

    held = {}
    for key in args.sample:
        files = sorted((root / f"sample-{key:g}" / "impressions").glob("impressions-*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        held[key] = (rows, len(files), sum(f.stat().st_size for f in files), dropped[key])
    body = report(args, keys, cells, held, record_microseconds(args.lengths))
    print(body)
    if not args.no_write:
        write_section(
            "serving-impressions",
            "gRPC serving: the cost of the impression log",
            command_line("serving_impressions", argv),
            body,
        )
    return 0


THREADS = ("event loop", "compute", "impression log", "other")
TICK = os.sysconf("SC_CLK_TCK")


def thread_group(pid: int, task: Path) -> str:
    """Which of :data:`THREADS` a thread of server ``pid`` is, by its id and name."""
    if int(task.name) == pid:
        return "event loop"
    name = (task / "comm").read_text().strip()
    if name.startswith("ltr-compute"):
        return "compute"
    if name == "ltr-impressions":
        return "impression log"
    return "other"


def cpu_and_lists(server) -> tuple[dict[str, float], float]:
    """The server's CPU seconds so far by thread group, and the lists it has served."""
    pid = server.proc.pid
    cpu = dict.fromkeys(THREADS, 0.0)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            cpu[thread_group(pid, task)] += (int(fields[11]) + int(fields[12])) / TICK
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return cpu, server.batch_counts()[0]


def cpu_per_list(cell) -> dict[str, float]:
    """CPU milliseconds per list served, by thread group, over the cell's bursts."""
    spent = dict.fromkeys(THREADS, 0.0)
    lists = 0.0
    for (cpu0, lists0), (cpu1, lists1) in cell.probes:
        for group in THREADS:
            spent[group] += cpu1[group] - cpu0[group]
        lists += lists1 - lists0
    return {group: 1000 * spent[group] / max(lists, 1.0) for group in THREADS}


def record_microseconds(lengths: list[int], calls: int = 20_000) -> dict[int, float]:
    """Microseconds per list of what the log adds to the event loop's own work, timed in this
    process: :meth:`ImpressionLog.record` and the response's copy that carries the id."""
    import time
    from dataclasses import replace

    import numpy as np

    from ltr.serve.domain import ModelRef, RankedList, ValidQuery
    from ltr.serve.impressions import ImpressionLog

    out = {}
    names = tuple(f"f{i + 1}" for i in range(46))
    for n in lengths:
        ids = [f"d{i}" for i in range(n)]
        query = ValidQuery("q", ids, np.ones((n, 46), np.float32), None, None, None)
        ranked = RankedList("q", ids, np.zeros(n, np.float32), np.arange(n), ModelRef("m", "1"))
        with tempfile.TemporaryDirectory() as folder:
            log = ImpressionLog(folder, flush_seconds=3600, max_queued_rows=calls * n + 1)
            started = time.perf_counter()
            for _ in range(calls):
                replace(ranked, impression_id=log.record(query, ranked, names))
            out[n] = 1e6 * (time.perf_counter() - started) / calls
            log.close()
    return out


def label(key: float | None) -> str:
    return "no log" if key is None else f"log {key:.0%} of lists"


def dropped_rows(port: int) -> float:
    """``ltr_impressions_dropped_total`` over every reason, from a server's metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ltr_impressions_dropped_total"
    )


def report(args, keys, cells, held, recorded: dict[int, float]) -> str:
    rows = []
    for key in keys:
        for n in args.lengths:
            for c in args.concurrency:
                cell = cells[(key, n, c)]
                rows.append(
                    [
                        label(key),
                        f"{n:,}",
                        c,
                        f"{ms(cell.latencies, 50):.2f}",
                        f"{ms(cell.latencies, 99):.2f}",
                        f"{cell.calls / cell.seconds:,.0f}",
                    ]
                )
    ratios = [
        [f"{n:,}", c, *(_ratio(cells[(k, n, c)], cells[(None, n, c)]) for k in args.sample)]
        for n in args.lengths
        for c in args.concurrency
    ]
    cpu = []
    for n in args.lengths:
        for c in args.concurrency:
            for key in keys:
                per = cpu_per_list(cells[(key, n, c)])
                cpu.append(
                    [f"{n:,}", c, label(key), *(f"{per[g]:.3f}" for g in THREADS),
                     f"{sum(per.values()):.3f}"]
                )  # fmt: skip
    logs = [
        [label(k), f"{rows:,}", files, f"{size / max(rows, 1):.0f}", f"{lost:,.0f}"]
        for k, (rows, files, size, lost) in held.items()
    ]
    return "\n".join(
        [
            "The default SetRank on ONNX Runtime with batching on (as in *gRPC serving latency "
            "and throughput*), 1 compute thread; one `ltr serve` process without the impression "
            "log and one per logged share (`--impressions DIR --impressions.sample S`, default "
            "`rows_per_file` and `flush_seconds`), bursts alternating between them in each of "
            f"{args.reps} repetitions of {args.seconds:g} s (after {args.warmup:g} s warm-up), "
            "latencies pooled; Python `grpc.aio` client on the same machine.",
            "",
            markdown_table(
                ["server", "candidates", "concurrency", "p50 ms", "p99 ms", "lists/s"], rows
            ),
            "",
            "Throughput with the log / without it (pooled; range over repetitions):",
            "",
            markdown_table(
                ["candidates", "concurrency", *(f"{label(k)} / no log" for k in args.sample)],
                ratios,
            ),
            "",
            "Where the time goes: each server thread's CPU milliseconds per list served, over "
            "all bursts of a cell (warm-up included), from `/proc`; the main thread runs the "
            "event loop (gRPC calls, decoding, validation, the log's `record`), the compute "
            "thread the model, the writer turns queued lists into Parquet:",
            "",
            markdown_table(
                ["candidates", "concurrency", "server", *(f"{g} ms" for g in THREADS), "total ms"],
                cpu,
            ),
            "",
            "The log's own work on the event loop (`record` and the response's copy with its id), "
            "timed alone in the benchmark process: "
            + ", ".join(f"{us:.1f} µs per list of {n:,}" for n, us in recorded.items())
            + ".",
            "",
            "What the logs hold after the servers' SIGTERM drain (every returned candidate of "
            "the logged lists, warm-up bursts included). Every request of a length repeats the "
            "same candidates, so Parquet compresses these files far better than real traffic "
            "(46 float32 features are 184 bytes a row uncompressed):",
            "",
            markdown_table(["server", "rows", "files", "bytes per row", "rows dropped"], logs),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
