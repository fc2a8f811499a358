"""Serving with more than one compute worker: ``batching.workers`` 1 against 2, side by side.

Four ``ltr serve`` processes of the default SetRank on ONNX Runtime (the model, requests and
client of ``benchmarks.serving_latency``): batching on and off, each with 1 and with 2 compute
workers (forward passes computed at once, each on its own thread with ``--threads`` intra-op
threads). Bursts are interleaved across the four servers in every repetition, so that they see
the same machine. Reported: p50/p99 latency, lists/s and lists per forward pass per cell, and
the ratios of throughput at the highest concurrency (2 workers / 1, and batching on / off).

Run: ``python -m benchmarks.serving_workers`` (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.serving_latency import (
    Cell,
    Server,
    Setup,
    build_model,
    default_server_args,
    interleaved_bursts,
    make_requests,
    ms,
)

WORKERS = (1, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per burst")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per burst")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    base = default_server_args(args.lengths, args.threads)
    root = Path(tempfile.mkdtemp(prefix="ltr-bench-workers-"))
    model = build_model(root)
    payloads = make_requests(args.lengths)
    keys = [(w, on) for w in WORKERS for on in (True, False)]
    servers = {}
    for w, on in keys:
        server_args = copy.copy(base)
        server_args.serve_arg = [f"--batching.workers {w}"]
        logs = root / f"workers-{w}"
        logs.mkdir(exist_ok=True)
        servers[(w, on)] = Server(Setup("onnx", on), model, server_args, logs)
    try:
        for server in servers.values():
            server.wait_ready()
        cells = interleaved_bursts(
            servers,
            args,
            payloads,
            lambda key: f"workers {key[0]} batching {'on ' if key[1] else 'off'}",
        )
    finally:
        for server in servers.values():
            server.stop()
    body = report(args, keys, cells)
    print(body)
    if not args.no_write:
        write_section(
            "serving-workers",
            "gRPC serving: one compute worker or two",
            command_line("serving_workers", argv),
            body,
        )
    return 0


def _ratio(a: Cell, b: Cell) -> str:
    """Throughput ratio pooled over repetitions, with the range of the per-repetition ratios."""
    pooled = (a.calls / a.seconds) / (b.calls / b.seconds)
    per = [x / y for x, y in zip(a.rates, b.rates, strict=True)]
    return f"{pooled:.2f}× ({min(per):.2f}–{max(per):.2f})"


def report(args, keys, cells) -> str:
    rows = []
    for w, on in keys:
        for n in args.lengths:
            for c in args.concurrency:
                cell = cells[((w, on), n, c)]
                rows.append(
                    [
                        w,
                        "on" if on else "off",
                        f"{n:,}",
                        c,
                        f"{ms(cell.latencies, 50):.2f}",
                        f"{ms(cell.latencies, 99):.2f}",
                        f"{cell.calls / cell.seconds:,.0f}",
                        f"{cell.lists / cell.batches:.1f}" if cell.batches else "—",
                    ]
                )
    top = max(args.concurrency)
    ratios = []
    for n in args.lengths:
        on1, off1 = cells[((1, True), n, top)], cells[((1, False), n, top)]
        on2, off2 = cells[((2, True), n, top)], cells[((2, False), n, top)]
        ratios.append(
            [
                f"{n:,}",
                _ratio(on2, on1),
                _ratio(off2, off1),
                _ratio(on1, off1),
                _ratio(on2, off2),
            ]
        )
    best = {
        n: max(keys, key=lambda k: cells[(k, n, top)].calls / cells[(k, n, top)].seconds)
        for n in args.lengths
    }
    fastest = ", ".join(
        f"{n:,}: {best[n][0]} worker{'s' if best[n][0] > 1 else ''}, batching "
        f"{'on' if best[n][1] else 'off'}"
        for n in args.lengths
    )
    return "\n".join(
        [
            "The default SetRank on ONNX Runtime (as in *gRPC serving latency and throughput*), "
            f"{args.threads} intra-op thread(s) per worker; four `ltr serve` processes "
            "(`--batching.workers` 1 and 2, batching on and off), bursts interleaved across them "
            f"in each of {args.reps} repetitions of {args.seconds:g} s (after {args.warmup:g} s "
            "warm-up), latencies pooled; Python `grpc.aio` client on the same machine.",
            "",
            markdown_table(
                [
                    "workers",
                    "batching",
                    "candidates",
                    "concurrency",
                    "p50 ms",
                    "p99 ms",
                    "lists/s",
                    "lists/pass",
                ],
                rows,
            ),
            "",
            f"Throughput ratios at concurrency {top} (pooled; range over repetitions):",
            "",
            markdown_table(
                [
                    "candidates",
                    "2 workers / 1, batching on",
                    "2 workers / 1, batching off",
                    "on / off, 1 worker",
                    "on / off, 2 workers",
                ],
                ratios,
            ),
            "",
            f"Fastest setup at concurrency {top} by candidates: {fastest}. Median per-repetition "
            "throughput of 2 workers with batching on: "
            + ", ".join(
                f"{n:,}: {statistics.median(cells[((2, True), n, top)].rates):,.0f} lists/s"
                for n in args.lengths
            )
            + ".",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
