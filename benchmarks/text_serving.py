"""Text serving: what a ``RerankText`` call costs next to ``Rerank`` with the features precomputed.

Cranfield (``../shared/data/cranfield``, not bundled): the featurizer is fitted on its 1,400
documents, either lexical only (5 columns) or with one encoder (the masked LM of
``configs/text/bert_cranfield.yaml``: d_model 128, 2 layers, block 128, a BPE tokenizer of 4,096
tokens trained on the documents; random weights, since speed does not depend on them). Each
call's documents are tokenised and encoded afresh (servers run with
``featurizer_recent_documents: 0``), found among the documents the server computed lately and
keeps (the default ``featurizer_recent_documents``: what documents outside the collection cost
when they come back, as new documents of a live index do), or looked up in the featurizer's
document cache of the collection, which ``ltr text-features`` fills by default. The model is
the default SetRank of ``configs/setrank_imsab.yaml`` for those columns (random weights, a
normaliser fitted on the lists' features), with the featurizer bundled, served by one
``ltr serve`` per featurizer (ONNX Runtime, batching on, defaults otherwise). Requests: one judged
query's BM25 top-n documents, as texts (``RerankText``) and as the featurizer's feature rows
(``Rerank``), sent to the same server. Bursts of every (server, method, length, concurrency) are
interleaved over the repetitions, as in ``benchmarks/serving_latency.py``.

Featurizer alone = ``TextFeaturizer.list_features`` on one list in this process (median, one
torch thread as in the server, timed after the servers stopped): the part of a text call's cost
that the server adds on its compute thread.

``--device cuda`` runs the encoders on a GPU (``ltr serve --featurizer-device cuda``; the ranking
model stays on ONNX Runtime) and writes its own section.

Run: ``python -m benchmarks.text_serving`` (``--no-write`` to only print; see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks._report import DEFAULT_CONFIG, markdown_table, write_section
from benchmarks.serving_latency import ServerProcess, burst, free_port, ms

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO.parent / "shared" / "data" / "cranfield"
ENCODER_CONFIG = REPO / "configs" / "text" / "bert_cranfield.yaml"
RERANK = "/ltr.reranker.v1.Reranker/Rerank"
RERANK_TEXT = "/ltr.reranker.v1.Reranker/RerankText"
FEATURIZERS = {
    "lexical": "lexical only (5 columns)",
    "encoder": "+ 1 encoder (6)",
    "recent": "+ 1 encoder, recent documents (6)",
    "cached": "+ 1 encoder, document cache (6)",
}
KEEP_NONE = ("lexical", "encoder")
"""Featurizers served with ``featurizer_recent_documents: 0``: every call computes its rows."""


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0


def build_featurizer(kind: str, docs: list[str], root: Path):
    """The featurizer of ``kind`` fitted on ``docs`` (an encoder with random weights)."""
    import torch
    import yaml

    from ltr.lm.artifact import save_lm
    from ltr.lm.model import LMConfig, TransformerLM
    from ltr.lm.tokenizer import train_tokenizer
    from ltr.text.featurizer import TextFeaturizer

    encoders = {}
    if kind == "encoder":
        config = yaml.safe_load(ENCODER_CONFIG.read_text())
        tokenizer = train_tokenizer(
            docs, kind=config["data"]["tokenizer_kind"], vocab_size=config["data"]["vocab_size"]
        )
        torch.manual_seed(0)
        lm_config = LMConfig(vocab_size=tokenizer.vocab_size, **config["model"])
        model = TransformerLM(lm_config).eval()
        encoders["enc"] = str(save_lm(model, tokenizer, root / "encoder"))
    return TextFeaturizer.fit(docs, encoders)


def build_model(featurizer, lists: list[np.ndarray], root: Path) -> Path:
    """The default SetRank for the featurizer's columns (random weights), featurizer bundled."""
    import torch
    import yaml

    from ltr.artifact import Manifest, build_model, save_model
    from ltr.text.featurizer import bundle_featurizer

    torch.manual_seed(0)
    preset = yaml.safe_load(DEFAULT_CONFIG.read_text())["model"]
    config = {k: v for k, v in preset.items() if k != "name"}
    names = featurizer.feature_names
    manifest = Manifest(
        architecture=preset["name"],
        model_config={"num_features": len(names), **config},
        feature_names=names,
        training={"run_id": "benchmark-random-weights"},
    )
    model = build_model(manifest)
    model.normalizer.fit(np.concatenate(lists).astype(np.float32))
    folder = save_model(model.eval(), manifest, root / "model")
    bundle_featurizer(featurizer.save(root / "featurizer"), folder)
    return folder


class TextServer(ServerProcess):
    def __init__(
        self,
        label: str,
        model: Path,
        max_candidates: int,
        log_dir: Path,
        device: str,
        *extra: str,
    ) -> None:
        self.label = label
        self.port, self.metrics_port = free_port(), free_port()
        argv = [
            str(Path(sys.executable).with_name("ltr")), "serve", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(self.port), "--metrics_host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port), "--max_candidates", str(max_candidates),
            "--log_level", "WARNING", "--featurizer-device", device, *extra,
        ]  # fmt: skip
        self.launch(argv, log_dir / f"{label}.log")


def featurizer_ms(featurizer, query: str, texts: list[str], reps: int) -> float:
    featurizer.list_features([query], [texts])
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        featurizer.list_features([query], [texts])
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--collection", type=Path, default=COLLECTION)
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per burst")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--device", default="cpu", help="where the encoders run (cpu, cuda)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)

    import torch

    from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
    from ltr.text.bm25 import BM25
    from ltr.text.collection import load_collection
    from ltr.text.featurizer import TextFeaturizer

    if not args.collection.is_dir():
        raise SystemExit(f"no collection at {args.collection}; pass --collection")
    collection = load_collection(args.collection)
    docs = collection.doc_texts
    query = collection.query_texts[0]
    top, _ = BM25(docs).top_k([query], max(args.lengths))  # (1, n) first-stage order
    texts = {n: [docs[i] for i in top[0, :n]] for n in args.lengths}
    ids = {n: [collection.doc_ids[i] for i in top[0, :n]] for n in args.lengths}
    work = Path(tempfile.mkdtemp(prefix="ltr-text-serving-"))
    servers, payloads, featurizers, gaps = {}, {}, {}, {}
    try:
        for kind in FEATURIZERS:
            if kind == "cached":  # the encoder featurizer, with the collection cached
                featurizer = TextFeaturizer.load(work / "encoder" / "featurizer").to(args.device)
                start = time.perf_counter()
                featurizer.cache_documents(docs)
                cache_seconds = time.perf_counter() - start
                kept_bytes = recent_bytes_per_document(featurizer)
            elif kind == "recent":  # the encoder featurizer, keeping what it computes
                featurizer = TextFeaturizer.load(work / "encoder" / "featurizer").to(args.device)
                featurizer.keep_recent(10_000)
            else:
                featurizer = build_featurizer(kind, docs, work / kind).to(args.device)
            rows = {n: featurizer.list_features([query], [texts[n]])[0] for n in args.lengths}
            if args.device != "cpu":  # the same rows as on the CPU?
                on_cpu = TextFeaturizer.load(featurizer.save(work / kind / "check")).to("cpu")
                for n in args.lengths:
                    want = on_cpu.list_features([query], [texts[n]])[0]
                    gaps[kind] = max(gaps.get(kind, 0.0), float(np.abs(rows[n] - want).max()))
            model = build_model(featurizer, list(rows.values()), work / kind)
            for n in args.lengths:
                pairs = zip(ids[n], texts[n], strict=True)
                text_request = pb.RerankTextRequest(
                    query_id="q",
                    query=query,
                    candidates=[pb.TextCandidate(id=i, text=t) for i, t in pairs],
                )
                feature_request = pb.RerankRequest(
                    query_id="q",
                    candidates=[
                        pb.Candidate(id=i, features=r.tolist())
                        for i, r in zip(ids[n], rows[n], strict=True)
                    ],
                )
                payloads[kind, RERANK_TEXT, n] = text_request.SerializeToString()
                payloads[kind, RERANK, n] = feature_request.SerializeToString()
            featurizers[kind] = featurizer
            keep = ("--featurizer_recent_documents", "0") if kind in KEEP_NONE else ()
            servers[kind] = TextServer(kind, model, max(args.lengths), work, args.device, *keep)
        for server in servers.values():
            server.wait_ready()
        cells: dict[tuple, Cell] = {}
        for rep in range(args.reps):
            for n in args.lengths:
                for c in args.concurrency:
                    for kind, server in servers.items():
                        for method in (RERANK, RERANK_TEXT):
                            lat, calls, secs = asyncio.run(
                                burst(server.port, payloads[kind, method, n], c,
                                      args.seconds, args.warmup, method)
                            )  # fmt: skip
                            cell = cells.setdefault((kind, method, n, c), Cell())
                            cell.latencies += lat
                            cell.calls += calls
                            cell.seconds += secs
            print(f"repetition {rep + 1}/{args.reps} done", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    torch.set_num_threads(1)  # as in the server (threads: 1), with the servers gone
    alone = {
        (kind, n): featurizer_ms(featurizer, query, texts[n], reps=10)
        for kind, featurizer in featurizers.items()
        for n in args.lengths
    }
    body = report(cells, alone, args, query, len(docs), cache_seconds, kept_bytes)
    if gaps:
        body += "\n\nLargest difference of a feature from the CPU's (same featurizer, same lists): "
        body += ", ".join(f"{FEATURIZERS[k]} {v:.1e}" for k, v in gaps.items()) + "."
    print(body)
    if not args.no_write:
        command = "python -m benchmarks.text_serving " + " ".join(argv or sys.argv[1:])
        gpu = args.device != "cpu"  # a GPU run keeps its own section beside the CPU one
        write_section(
            "text-serving_cuda" if gpu else "text-serving",
            "Text serving: RerankText against Rerank" + (" (encoders on a GPU)" if gpu else ""),
            command.strip(),
            body,
        )
    return 0


def recent_bytes_per_document(featurizer) -> float:
    """Bytes Python allocates per document kept among the recent documents (tracemalloc), for
    the collection's documents as the featurizer's cache holds them."""
    import tracemalloc

    from ltr.text.cache import RecentDocuments

    cache = featurizer.cache
    keys = [row.tobytes() for row in cache.keys]
    recent = RecentDocuments(len(keys))
    unknown = [frozenset()] * len(keys)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        recent.put(keys, cache.counts, cache.lengths, unknown, cache.vectors)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return grown / len(keys)


def report(
    cells: dict,
    alone: dict,
    args: argparse.Namespace,
    query: str,
    docs: int,
    cache_s: float,
    kept_bytes: float,
) -> str:
    rows = []
    for kind, label in FEATURIZERS.items():
        for n in args.lengths:
            for c in args.concurrency:
                feat, text = cells[kind, RERANK, n, c], cells[kind, RERANK_TEXT, n, c]
                feat_rate, text_rate = feat.calls / feat.seconds, text.calls / text.seconds
                rows.append([
                    label, n, c,
                    f"{ms(feat.latencies, 50):.2f} / {ms(feat.latencies, 99):.2f}",
                    f"{feat_rate:,.0f}",
                    f"{ms(text.latencies, 50):.2f} / {ms(text.latencies, 99):.2f}",
                    f"{text_rate:,.0f}",
                    f"{feat_rate / text_rate:.1f}x",
                    f"{alone[kind, n]:.2f}",
                ])  # fmt: skip
    table = markdown_table(
        ["featurizer", "candidates", "concurrency", "Rerank p50 / p99 ms", "Rerank lists/s",
         "RerankText p50 / p99 ms", "RerankText lists/s", "Rerank / RerankText throughput",
         "featurizer alone, ms per list"],
        rows,
    )  # fmt: skip
    return (
        f"One Cranfield query ({query[:60]!r}...) with its BM25 top n, sent as texts "
        "(`RerankText`) and as the featurizer's rows (`Rerank`) to the same `ltr serve` (ONNX "
        "Runtime, batching on), default SetRank with random weights. "
        f"{args.reps} interleaved bursts of {args.seconds:g} s per cell, latencies pooled. "
        "The featurizer runs on the server's compute thread, inside the batch; its encoder on "
        f"device `{args.device}`. Filling the document cache (all {docs:,} documents analysed and "
        "encoded "
        f"once, as `ltr text-features` does) took {cache_s:.1f} s. Servers of the first two "
        "featurizers keep no recent documents (`featurizer_recent_documents: 0`), so every call "
        "computes its documents; the recent-documents server has the default (10,000), so from "
        "the second call on the same documents come from memory, as new documents of a live "
        "index would when many queries retrieve them. A kept document costs "
        f"{kept_bytes:,.0f} bytes of memory (tracemalloc, the collection's documents with this "
        "encoder).\n\n" + table
    )


if __name__ == "__main__":
    raise SystemExit(main())
