"""Where a served call's time goes: a ladder of servers, each adding one piece of ``ltr serve``.

Every rung is a real ``ltr serve`` process (:class:`ltr.serve.server.RerankServer`: same gRPC
options, health and reflection services, metrics, GIL switch interval) in which one part is
replaced, driven by ``h2load`` (nghttp2's C load generator: one HTTP/2 connection, ``concurrency``
concurrent ``Rerank`` calls with one pre-serialised request):

1. ``grpc``: the servicer returns a prebuilt response as long as the request's list; gRPC and
   protobuf only.
2. ``decode``: + decoding, validation, ranking and the response, inline, scores all zero (no
   model), with the per-call metrics of the real servicer.
3. ``batcher``: the real servicer and dynamic batcher (compute thread), a model that costs
   nothing (returns zeros).
4. ``on``: the real server, ONNX Runtime model, batching on.
5. ``off``: the real server, ONNX Runtime model, batching off (``--no-batching``: each list is
   its own forward pass on the compute thread).
6. ``inline``: no batcher and no compute thread: each call is scored on the event loop, the
   simplest server without batching.

For each rung: lists/s, CPU milliseconds per call of the server's main thread (event loop),
its other threads (compute thread, gRPC I/O threads, metrics) and the client, read from
``/proc`` and ``wait4`` over the measured seconds, and the mean lists per forward pass (from the
server's Prometheus metrics; rungs without the batcher have none). On this 2-core machine, CPU
per call bounds what any design can reach: lists/s <= 2 cores / (CPU ms per call).

Run: ``python -m benchmarks.serving_overhead`` (``--no-write`` to only print; see ``--help``).
Server mode (used by the benchmark itself): ``--serve RUNG --model DIR --port P``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._report import DEFAULT_CONFIG, markdown_table, write_section
from benchmarks.serving_latency import (
    BATCH_SIZES,
    ServerProcess,
    build_model,
    compute_by_batch,
    free_port,
    h2load_run,
    make_requests,
)

RUNGS = {
    "grpc": "gRPC + protobuf only (prebuilt response)",
    "decode": "+ decode, validate, rank, respond (no model)",
    "batcher": "+ dynamic batcher, zero-cost model",
    "on": "ONNX Runtime model, batching on",
    "off": "ONNX Runtime model, batching off",
    "inline": "ONNX Runtime model, inline on the event loop",
}
TICK = os.sysconf("SC_CLK_TCK")
HEADERS = [
    "rung", "candidates", "lists/s", "ms per call", "main thread CPU ms", "other threads CPU ms",
    "client CPU ms", "total CPU ms", "cores busy", "lists per pass",
]  # fmt: skip


# ---------------------------------------------------------------- server side (one rung)


def _serve(rung: str, model: str, port: int, metrics_port: int, max_candidates: int) -> int:
    """Run one rung's server until SIGTERM (this is a subprocess of the benchmark)."""
    from ltr.serve import convert, server
    from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
    from ltr.serve.config import load_serve_config
    from ltr.serve.scoring import rank, score_batch
    from ltr.serve.servicer import RerankerServicer
    from ltr.serve.validation import validate

    class Zero:
        """A predictor that costs nothing: every score 0."""

        def __init__(self, real) -> None:
            self.backend, self.loaded = real.backend, real.loaded

        def predict(self, features, mask, initial_rank=None, context=None):
            return np.zeros(mask.shape, dtype=np.float32)

    if rung in ("decode", "batcher"):
        real_load = server.load_served_model

        def load_zero(*args, **kwargs):
            served = real_load(*args, **kwargs)
            return dataclasses.replace(served, predictor=Zero(served.predictor))

        server.load_served_model = load_zero

    class Ladder(RerankerServicer):
        async def Rerank(self, request, context):
            if rung == "grpc":
                return fixed(len(request.candidates))
            if rung not in ("decode", "inline"):
                return await super().Rerank(request, context)

            async def work(deadline):
                current = self.service.holder.current
                query = validate(
                    convert.query_from_proto(request), current.spec, max_candidates=max_candidates
                )
                if rung == "decode":
                    ranked = rank(query, np.zeros(len(query), np.float32), current.spec.ref)
                else:
                    [ranked] = score_batch(current.predictor, current.spec.ref, [query])
                    if isinstance(ranked, Exception):
                        raise ranked
                return convert.ranked_to_proto(ranked)

            return await self._call("Rerank", context, work)

    responses: dict[int, pb.RerankResponse] = {}

    def fixed(n: int) -> pb.RerankResponse:
        """A prebuilt response as long as the request's list (so every rung sends as much)."""
        if n not in responses:
            response = pb.RerankResponse(query_id="q", model=pb.ModelRef(name="m", version="1"))
            for i in range(n):
                response.candidates.add(id=f"c{i}", score=0.5, request_index=i)
            responses[n] = response
        return responses[n]

    server.RerankerServicer = Ladder
    config = load_serve_config(
        overrides={
            "model": model,
            "backend": "onnx",
            "host": "127.0.0.1",
            "port": port,
            "metrics_host": "127.0.0.1",
            "metrics_port": metrics_port,
            "threads": 1,
            "max_candidates": max_candidates,
            "export_on_load": False,
            "log_level": "WARNING",
            "batching.enabled": rung != "off",
        }
    )
    return server.run(config)


# ---------------------------------------------------------------- client side


def matmul_mflop(model: Path, lengths: list[int]) -> dict[int, float]:
    """MFLOP of the matrix products of one forward pass over one list, per length
    (:func:`ltr.inference.matmul_mflop`)."""
    from ltr.artifact import load_model
    from ltr.inference import matmul_mflop as mflop

    loaded = load_model(str(model))
    return {n: mflop(loaded.model, loaded.manifest, n) for n in lengths}


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) CPU seconds of process ``pid`` so far."""
    main = other = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        raise RuntimeError(f"server process {pid} has exited") from None
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


@dataclasses.dataclass
class Sample:
    rate: float  # lists/s
    main_ms: float  # server main thread CPU ms per call
    other_ms: float  # server's other threads
    client_ms: float  # h2load
    per_pass: float  # mean lists per forward pass of the batcher (nan: no batcher in this rung)


class RungServer(ServerProcess):
    """One rung's server (this script in ``--serve`` mode)."""

    def __init__(self, rung: str, model: Path, max_candidates: int, log_dir: Path) -> None:
        self.rung = rung
        self.port, self.metrics_port = free_port(), free_port()
        argv = [sys.executable, "-m", "benchmarks.serving_overhead", "--serve", rung]
        argv += ["--model", str(model), "--port", str(self.port)]
        argv += ["--metrics-port", str(self.metrics_port)]
        argv += ["--max-candidates", str(max_candidates)]
        self.label = f"rung {rung}"
        self.launch(argv, log_dir / f"overhead-{rung}.log")

    def measure(
        self, payload: bytes, concurrency: int, seconds: float, warmup: float, work: Path
    ) -> Sample:
        """One h2load burst, with the server's CPU read over the measured seconds."""
        marks: dict[str, tuple[float, float, float, float]] = {}

        def sample() -> None:
            time.sleep(warmup)
            marks["start"] = (*thread_cpu(self.proc.pid), *self.batch_counts())
            time.sleep(seconds)
            marks["end"] = (*thread_cpu(self.proc.pid), *self.batch_counts())

        reader = threading.Thread(target=sample)
        reader.start()
        calls, client_cpu = h2load_run(self.port, payload, concurrency, seconds, work, warmup)
        reader.join()
        if "end" not in marks:  # the reader failed (its error is printed above)
            raise RuntimeError(f"{self.label}: could not read the server's CPU time")
        end, start = marks["end"], marks["start"]
        main, other, lists, passes = (e - s for e, s in zip(end, start, strict=True))
        per_call = 1e3 / calls
        client = client_cpu * seconds / (seconds + warmup)  # h2load's CPU, warm-up excluded
        per_pass = lists / passes if passes else float("nan")
        return Sample(
            calls / seconds, main * per_call, other * per_call, client * per_call, per_pass
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100])
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rungs", nargs="+", default=list(RUNGS), choices=list(RUNGS))
    p.add_argument("--seconds", type=int, default=3, help="measured seconds per burst")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured seconds per burst")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    p.add_argument("--serve", choices=list(RUNGS), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--metrics-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-candidates", type=int, default=1000, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.model, args.port, args.metrics_port, args.max_candidates)
    if shutil.which("h2load") is None:
        p.error("h2load (nghttp2-client) is needed: apt-get install nghttp2-client")

    root = Path(tempfile.mkdtemp(prefix="ltr-bench-overhead-"))
    model = build_model(root)
    payloads = make_requests(args.lengths)
    servers = [RungServer(r, model, max(args.lengths), root) for r in args.rungs]
    samples: dict[tuple[str, int], list[Sample]] = {}
    try:
        for server in servers:
            server.wait_ready()
        for rep in range(args.reps):
            for n in args.lengths:
                for server in servers if rep % 2 == 0 else servers[::-1]:
                    s = server.measure(
                        payloads[n], args.concurrency, args.seconds, args.warmup, root
                    )
                    samples.setdefault((server.rung, n), []).append(s)
                    print(
                        f"rep {rep} {server.rung:<8} n={n:<4} {s.rate:8.1f} lists/s  CPU ms/call: "
                        f"main {s.main_ms:.3f} other {s.other_ms:.3f} client {s.client_ms:.3f}"
                        f"  lists per pass {s.per_pass:.1f}",
                        flush=True,
                    )
        for server in servers:
            server.stop()
        servers = []
        # the model alone, in this process: per-list cost of one pass over 1 and over 32 lists
        by_batch = compute_by_batch(model, "onnx", args.lengths, 1, budget=2.0)
        mflop = matmul_mflop(model, args.lengths)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    names = [f.name for f in dataclasses.fields(Sample)]
    med = {
        key: Sample(*(statistics.median(getattr(s, name) for s in got) for name in names))
        for key, got in samples.items()
    }
    rows = []
    for n in args.lengths:
        for rung in args.rungs:
            s = med[(rung, n)]
            total = s.main_ms + s.other_ms + s.client_ms
            rows.append([
                RUNGS[rung], n, f"{s.rate:,.0f}", f"{1e3 / s.rate:.3f}", f"{s.main_ms:.3f}",
                f"{s.other_ms:.3f}", f"{s.client_ms:.3f}", f"{total:.3f}",
                f"{total * s.rate / 1e3:.2f}",
                "–" if np.isnan(s.per_pass) else f"{s.per_pass:.1f}",
            ])  # fmt: skip
    findings = []
    for n in args.lengths:
        if not {"on", "off", "inline"} <= set(args.rungs):
            break
        on, off, inline = med[("on", n)], med[("off", n)], med[("inline", n)]

        def cpu(s: Sample) -> float:
            return s.main_ms + s.other_ms + s.client_ms

        findings.append(
            f"- {n} candidates: batching on / off = {on.rate / off.rate:.2f}×, on / inline = "
            f"{on.rate / inline.rate:.2f}×. CPU per call: on {cpu(on):.3f} ms, inline "
            f"{cpu(inline):.3f} ms, off {cpu(off):.3f} ms: a server without batching that kept "
            f"both cores busy at the inline cost would reach {2e3 / cpu(inline):,.0f} lists/s, "
            f"so batching can give at most {cpu(inline) / cpu(on):.2f}× over it here."
        )
    for n in args.lengths:
        if not {"decode", "batcher", "on"} <= set(args.rungs):
            break
        decode, batcher, on = med[("decode", n)], med[("batcher", n)], med[("on", n)]
        findings.append(
            f"- {n} candidates: the zero-cost batcher rung adds "
            f"{batcher.main_ms + batcher.other_ms - decode.main_ms - decode.other_ms:.3f} ms of "
            f"server CPU per call with passes of {batcher.per_pass:.1f} lists; the hand-over is "
            f"paid once per pass, and the ONNX rung's passes hold {on.per_pass:.1f} lists."
        )
    big = max(BATCH_SIZES)
    for n in args.lengths:
        one, many = by_batch[(n, 1)], by_batch[(n, big)]
        findings.append(
            f"- The model alone, {n} candidates: {one:.3f} ms per list in a pass of 1 list, "
            f"{many:.3f} ms in a pass of {big}: even if serving cost nothing, batching could "
            f"make ONNX Runtime at most {one / many:.2f}× faster. Its matrix products are "
            f"{mflop[n]:.1f} MFLOP per list, so a pass of {big} runs at "
            f"{mflop[n] / many:.0f} GFLOP/s on one core."
        )
    body = (
        f"Default SetRank (`{DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[1])}`, random "
        "weights, exported to ONNX), MQ2008 rows, one `ltr serve` process per rung with one part "
        "replaced (see the script's docstring), driven by `h2load` with "
        f"{args.concurrency} concurrent `Rerank` calls on one connection, {args.seconds:g} s after "
        f"{args.warmup:g} s warm-up, {args.reps} interleaved repetitions (median). CPU ms per "
        "call: server main thread (event loop), the server's other threads (compute thread, "
        "gRPC I/O threads), the client (h2load), from `/proc` and `wait4` over the measured "
        "seconds; cores busy = total CPU × lists/s (this machine has 2).\n\n"
        + markdown_table(HEADERS, rows)
        + "\n\n"
        + "\n".join(findings)
        + "\n"
    )
    print(body)
    if not args.no_write:
        command = "python -m benchmarks.serving_overhead" + (" " + " ".join(argv) if argv else "")
        write_section("serving_overhead", "gRPC serving: where a call's time goes", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
