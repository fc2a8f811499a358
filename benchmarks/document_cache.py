"""Document cache at scale: the memory-mapped folder against reading the whole cache into memory.

A synthetic collection of ``--documents`` documents (default 1,000,000: each with ``--terms``
distinct vocabulary terms out of ``--vocabulary``, a counted length, and one encoder's
``--dim``-wide float32 vector) is saved twice: as the folder :class:`ltr.text.cache.DocumentCache`
writes and loads memory-mapped, and as ltr 0.1's single ``documents.npz``, loaded the way 0.1
loaded it (every array read into memory, the counts as a float64 CSR matrix, a Python dict from
key to row built on the first lookup). Each is then loaded in its own fresh process, which
reports:

* the seconds to load, and to answer the first call (a call: look up the texts of 100 random
  cached documents, then gather their term counts, lengths and vectors, as
  ``TextFeaturizer.documents`` does);
* the median and p99 milliseconds of 500 such calls after it;
* its resident memory and the anonymous part of it (``Rss`` and ``Anonymous`` of
  ``/proc/self/smaps_rollup``) after loading and after the calls. Anonymous memory is the
  process's own: no other process can share it, and the kernel cannot drop it. The pages of a
  memory-mapped file that calls read are resident too, but they are the page cache's: every
  process mapping the same files (server workers, pods of one node) uses the one copy, and the
  kernel can drop them under memory pressure and read them again.

Each format is measured warm (its files in the page cache, as on a machine that already runs a
server of the same model) and cold (its files evicted from the page cache first with
``posix_fadvise(POSIX_FADV_DONTNEED)``, as on a fresh node: what is read then comes from the
disk); the mapped cache also cold with :meth:`DocumentCache.prefetch` started right after
loading, as ``ltr serve`` does by default (``featurizer_prefetch``): a background thread reads
the files front to back while the calls run. A mapped cache's resident set also counts the
page-cache pages its calls mapped (the kernel maps up to 64 KiB of already cached pages around
each one touched), which exist whether or not a process maps them. Run from the repository
root:
``python -m benchmarks.document_cache`` (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section

CALLS = 500
CASES = [
    ("memory", "warm"),
    ("memory", "cold"),
    ("mapped", "warm"),
    ("mapped", "cold"),
    ("mapped", "cold, prefetched"),
]
LIST = 100


def text_of(i: int) -> str:
    return f"document {i}"


def build(folder: Path, n: int, terms: int, vocabulary: int, dim: int, seed: int) -> None:
    """Write the synthetic cache as a folder (``folder/documents``) and as ltr 0.1's
    ``folder/documents.npz`` (rows in the texts' order, unsorted keys)."""
    from scipy import sparse

    from ltr.text.cache import DocumentCache, text_key

    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, vocabulary, size=(n, terms), dtype=np.int32), axis=1)
    counts = sparse.csr_matrix(
        (
            rng.integers(1, 4, size=n * terms).astype(np.int32),
            indices.ravel(),
            np.arange(0, n * terms + 1, terms, dtype=np.int64),
        ),
        shape=(n, vocabulary),
    )
    counts.sum_duplicates()
    del indices
    lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [text_of(i) for i in range(n)]
    DocumentCache.build(texts, counts, lengths, {"enc": vectors}).save(folder / "documents")
    keys = np.frombuffer(b"".join(map(text_key, texts)), dtype=np.uint8).reshape(n, 16)
    np.savez(
        folder / "documents.npz",
        keys=keys,
        lengths=lengths,
        counts_indptr=counts.indptr,
        counts_indices=counts.indices,
        counts_data=counts.data.astype(np.int32),
        vocabulary_size=np.array(vocabulary),
        vectors_enc=vectors,
    )


class InMemory:
    """How ltr 0.1 loaded and used ``documents.npz`` (the baseline)."""

    def __init__(self, path: Path) -> None:
        from scipy import sparse

        with np.load(path, allow_pickle=False) as data:
            n, v = len(data["keys"]), int(data["vocabulary_size"])
            self.counts = sparse.csr_matrix(
                (
                    data["counts_data"].astype(np.float64),
                    data["counts_indices"],
                    data["counts_indptr"],
                ),
                shape=(n, v),
            )
            self.vectors = data["vectors_enc"]
            self.keys, self.lengths = data["keys"], data["lengths"]
            assert np.isfinite(self.vectors).all()
        self._index: dict[bytes, int] | None = None

    def lookup(self, texts):
        from ltr.text.cache import text_key

        if self._index is None:
            self._index = {row.tobytes(): i for i, row in enumerate(self.keys)}
        index = self._index
        return np.fromiter((index.get(text_key(t), -1) for t in texts), np.int64, len(texts))

    def rows(self, rows):
        return self.counts[rows], self.lengths[rows], {"enc": self.vectors[rows]}


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache (they are clean: just written and synced)."""
    for path in paths:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def memory() -> dict[str, float]:
    """Resident and anonymous MiB of this process."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) / 1024
    return {
        "rss": fields["Rss"],
        "anonymous": fields["Anonymous"],
    }


def child(
    kind: str, state: str, folder: Path, n: int, vocabulary: int, dim: int, seed: int
) -> dict:
    """Load one format in this (fresh) process and time its calls."""
    from ltr.text.cache import DocumentCache

    rng = np.random.default_rng(seed + 1)
    asked = [[text_of(int(i)) for i in rng.integers(0, n, LIST)] for _ in range(CALLS + 1)]
    before = memory()
    started = time.perf_counter()
    if kind == "mapped":
        cache = DocumentCache.load(folder / "documents", vocabulary, {"enc": dim})
        if state == "cold, prefetched":
            cache.prefetch()  # as `ltr serve` does (featurizer_prefetch)
    else:
        cache = InMemory(folder / "documents.npz")
    load = time.perf_counter() - started
    loaded = memory()

    def call(texts):
        rows = cache.lookup(texts)
        assert (rows >= 0).all()
        return cache.rows(rows)

    started = time.perf_counter()
    first = call(asked[0])
    first_call = time.perf_counter() - started
    times = []
    for texts in asked[1:]:
        started = time.perf_counter()
        call(texts)
        times.append(time.perf_counter() - started)
    times.sort()
    after = memory()
    return {
        "load_s": load,
        "first_call_s": first_call,
        "p50_ms": 1e3 * statistics.median(times),
        "p99_ms": 1e3 * times[int(0.99 * len(times)) - 1],
        "rss_loaded": loaded["rss"] - before["rss"],
        "anonymous_loaded": loaded["anonymous"] - before["anonymous"],
        "rss_after": after["rss"] - before["rss"],
        "anonymous_after": after["anonymous"] - before["anonymous"],
        # what the first call gathered, to check the two formats agree
        "check": [float(first[0].sum()), float(first[1].sum()), float(first[2]["enc"].sum())],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--documents", type=int, default=1_000_000)
    p.add_argument("--terms", type=int, default=60, help="vocabulary terms drawn per document")
    p.add_argument("--vocabulary", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=128, help="encoder width")
    p.add_argument("--reps", type=int, default=3, help="fresh processes per format")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, help="where the caches are written (default: temp)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--child", choices=["mapped", "memory"], help=argparse.SUPPRESS)
    p.add_argument("--state", default="warm", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="ltr-document-cache-"))
    if args.child:
        result = child(
            args.child, args.state, folder, args.documents, args.vocabulary, args.dim, args.seed
        )
        print(json.dumps(result))
        return 0
    try:
        started = time.perf_counter()
        build(folder, args.documents, args.terms, args.vocabulary, args.dim, args.seed)
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
        sizes = {
            "mapped": sum(f.stat().st_size for f in (folder / "documents").iterdir()),
            "memory": (folder / "documents.npz").stat().st_size,
        }
        files = {
            "mapped": sorted((folder / "documents").iterdir()),
            "memory": [folder / "documents.npz"],
        }
        results: dict[tuple[str, str], list[dict]] = {c: [] for c in CASES}
        for rep in range(args.reps):  # interleaved: the machine's noise falls on all
            for kind, state in CASES:
                if state.startswith("cold"):
                    evict(files[kind])
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.document_cache", "--child", kind,
                     "--state", state,
                     "--workdir", str(folder), "--documents", str(args.documents),
                     "--vocabulary", str(args.vocabulary), "--dim", str(args.dim),
                     "--seed", str(args.seed)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                results[kind, state].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(kind, state, rep, results[kind, state][-1], flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(folder, ignore_errors=True)
    checks = [r["check"] for runs in results.values() for r in runs]
    if not all(np.allclose(c, checks[0], rtol=1e-6) for c in checks):
        raise SystemExit(f"the formats gathered different rows: {checks}")

    def med(case: tuple[str, str], key: str) -> float:
        return statistics.median(r[key] for r in results[case])

    labels = {
        "memory": "ltr 0.1: `documents.npz` read into memory",
        "mapped": "folder of `.npy`, memory-mapped",
    }
    rows = [
        [
            labels[kind],
            state,
            f"{sizes[kind] / 2**20:,.0f}",
            f"{med((kind, state), 'load_s'):.2f}",
            f"{med((kind, state), 'first_call_s') * 1e3:,.1f}",
            f"{med((kind, state), 'p50_ms'):.3f} / {med((kind, state), 'p99_ms'):.3f}",
            f"{med((kind, state), 'rss_loaded'):,.0f} / "
            f"{med((kind, state), 'anonymous_loaded'):,.0f}",
            f"{med((kind, state), 'rss_after'):,.0f} / "
            f"{med((kind, state), 'anonymous_after'):,.0f}",
        ]
        for kind, state in CASES
    ]
    table = markdown_table(
        [
            "cache",
            "page cache",
            "on disk, MiB",
            "load, s",
            "first call, ms",
            "call p50 / p99, ms",
            "after loading: resident / anonymous MiB",
            f"after {CALLS + 1} calls: resident / anonymous MiB",
        ],
        rows,
    )
    ratio = {
        state: med(("memory", state), "load_s") / med(("mapped", state), "load_s")
        for state in ("warm", "cold")
    }
    body = (
        f"A synthetic cache of {args.documents:,} documents ({args.terms} vocabulary terms drawn "
        f"per document out of {args.vocabulary:,}, one encoder of width {args.dim}), loaded in "
        f"a fresh process per format, {args.reps} processes per format taken in turn, medians. "
        f"A call looks up the texts of {LIST} random cached documents and gathers their term "
        "counts, lengths and vectors. Memory is the growth of the process's resident set and "
        "of its anonymous part (the process's own, which no other process shares and the "
        "kernel cannot drop), from `/proc/self/smaps_rollup`; the rest of the resident set is "
        "file pages of the page cache, one copy for every process that maps the files. Warm: "
        "the files in the page cache; cold: evicted from it first (`POSIX_FADV_DONTNEED`); "
        "prefetched: `DocumentCache.prefetch` started right after loading, as `ltr serve` "
        "does.\n\n"
        f"{table}\n\n"
        f"Loading the memory-mapped folder is {ratio['warm']:,.0f}x (warm) and "
        f"{ratio['cold']:,.0f}x (cold) faster than reading the 0.1 file. A mapped cache adds "
        "almost nothing to a process's own memory; the file pages its calls read are the page "
        "cache's, shared by every process that maps the same files."
    )
    print(body)
    if not args.no_write:
        command = command_line("document_cache", argv)
        write_section("document_cache", "Document cache at scale", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
