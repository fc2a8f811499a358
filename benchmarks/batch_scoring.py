"""Batch scoring: ``ltr score`` against a plain PyTorch loop, its peak memory, and Spark.

* Throughput: on one synthetic file (46 features, lists of 10-100 candidates), rows per second of
  ``ltr score``'s local engine (end to end: plan, read Parquet, score, write Parquet partitions)
  with the torch backend -- and ONNX Runtime when the artifact can be exported -- against a plain
  PyTorch loop over the same rows already in memory (sort lists by length, pad 128 lists per
  batch, forward). Repetitions are interleaved in one process; medians and ratios are reported.
  Torch uses one thread everywhere (``ltr score`` additionally reads and writes in two
  background threads).
* Peak memory: each size is scored by ``ltr score`` in a fresh subprocess that reports its
  ``VmHWM`` (peak resident set) from ``/proc/self/status``; flat memory means this stays level
  from 10^5 to 10^7 rows.
* Spark: the same file scored with ``--engine spark`` in local mode (``local[2]``; session start
  and a warm-up run on the smallest file excluded), next to the local engine on that file.

The model is the default SetRank (``configs/setrank_imsab.yaml``) with random weights (speed and
memory do not depend on the weights). Data go to ``--data-dir`` (default
``/tmp/ltr-bench-batch``), never into the repository.

Run: ``python -m benchmarks.batch_scoring --sizes 100000 1000000 10000000
--throughput-rows 1000000 --spark-rows 1000000`` (the full run needs ~5 GB of disk and about an
hour on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks._report import DEFAULT_CONFIG, command_line, markdown_table, write_section

REPO = Path(__file__).resolve().parents[1]
NUM_FEATURES = 46


def make_model(directory: Path) -> Path:
    """The default SetRank config's model with random weights, saved as an artifact."""
    from ltr.artifact import Manifest, build_model, save_model
    from ltr.data.parquet import default_feature_names

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())["model"]
    directory = directory.with_name(f"{directory.name}-{json_digest(config)}")  # per config
    if (directory / "ltr_model.json").exists():
        return directory
    params = {k: v for k, v in config.items() if k != "name"}
    torch.manual_seed(0)
    manifest = Manifest(
        architecture=config["name"],
        model_config={**params, "num_features": NUM_FEATURES},
        feature_names=default_feature_names(NUM_FEATURES),
    )
    return save_model(build_model(manifest), manifest, directory)


def json_digest(value: object) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def make_data(data_dir: Path, rows: int) -> Path:
    """Synthetic file of ``rows`` rows (written once, reused)."""
    from pipelines.synthetic import write_synthetic

    path = data_dir / f"synthetic-{rows}.parquet"
    if not path.exists():
        started = time.perf_counter()
        write_synthetic(path, rows, num_features=NUM_FEATURES, seed=rows)
        print(f"  wrote {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def try_onnx(model_dir: Path, data: Path) -> str:
    """Export ``model.onnx`` into the artifact (with the parity check); '' or why not."""
    if (model_dir / "model.onnx").exists():
        return ""
    try:
        from ltr.artifact import load_model
        from ltr.export.onnx import export_checked, parity_data_for

        loaded = load_model(model_dir)
        batches, where = parity_data_for(loaded, [data])
        export_checked(loaded, model_dir, batches, data=where)
        return ""
    except Exception as exc:  # the ONNX backend is optional here
        return f"ONNX backend skipped: {type(exc).__name__}: {exc}"


def plain_loop(
    model: torch.nn.Module, features: np.ndarray, offsets: np.ndarray, device: str = "cpu"
) -> float:
    """Score every list with a bare PyTorch loop on ``device``; return seconds."""
    lengths = np.diff(offsets)
    order = np.argsort(lengths, kind="stable")
    scores = np.empty(features.shape[0], dtype=np.float32)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), 128):
            queries = order[start : start + 128]
            longest = int(lengths[queries].max())
            x = np.zeros((len(queries), longest, features.shape[1]), dtype=np.float32)
            mask = np.zeros((len(queries), longest), dtype=bool)
            for b, q in enumerate(queries):
                n = lengths[q]
                x[b, :n] = features[offsets[q] : offsets[q + 1]]
                mask[b, :n] = True
            xs, ms = torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
            out = model(xs, ms).cpu().numpy()
            for b, q in enumerate(queries):
                scores[offsets[q] : offsets[q + 1]] = out[b, : lengths[q]]
    return time.perf_counter() - started


def ltr_score(
    model_dir: Path,
    data: Path,
    out: Path,
    backend: str,
    drop_features: bool = False,
    device: str = "cpu",
) -> float:
    """``ltr score``'s local engine end to end (fresh output); return seconds."""
    from pipelines.scoring import ScoreOptions, score_to_parquet

    shutil.rmtree(out, ignore_errors=True)
    options = ScoreOptions(
        backend=backend, progress=False, drop_features=drop_features, device=device
    )
    started = time.perf_counter()
    score_to_parquet(model_dir, data, out, options)
    return time.perf_counter() - started


def throughput(
    model_dir: Path, data: Path, reps: int, work: Path, device: str = "cpu"
) -> tuple[dict, str]:
    """Interleaved repetitions: plain loop, ltr score (torch), ltr score (onnx; CPU only)."""
    from ltr.artifact import load_model
    from ltr.data import load_dataset

    note = try_onnx(model_dir, data) if device == "cpu" else "ONNX Runtime runs on the CPU only"
    dataset = load_dataset(data)
    model = load_model(model_dir).model.to(device)
    runs = {
        "plain PyTorch loop (arrays in memory)": [],
        "ltr score, torch": [],
        "ltr score, torch, --drop-features": [],
    }
    if not note:
        runs["ltr score, onnx"] = []
    plain_loop(model, dataset.features, dataset.offsets, device)  # warm-up
    for r in range(reps):
        names = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for name in names:
            if name.startswith("plain"):
                seconds = plain_loop(model, dataset.features, dataset.offsets, device)
            else:
                backend, drop = name.split(", ")[1], name.endswith("--drop-features")
                seconds = ltr_score(model_dir, data, work / "out", backend, drop, device)
            runs[name].append(dataset.num_rows / seconds)
            print(f"  {name}: {runs[name][-1]:,.0f} rows/s", flush=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    return runs, note


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(model_dir: str, data: str, out: str) -> None:
    """Subprocess entry: score ``data`` with ``ltr score`` and print rows/s and peak RSS."""
    torch.set_num_threads(1)
    from ltr.predictor import load_predictor

    load_predictor(model_dir)  # the floor: interpreter, torch, pyarrow, model
    floor = peak_rss_mb()
    seconds = ltr_score(Path(model_dir), Path(data), Path(out), "torch")
    rows = json.loads((Path(out) / "_SUCCESS").read_text())["rows"]
    shutil.rmtree(out, ignore_errors=True)
    peak = peak_rss_mb()
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak, "floor_mb": floor}))


def measure_memory(model_dir: Path, data: Path, work: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.batch_scoring", "--worker"]
    cmd += [str(model_dir), str(data), str(work / "mem-out")]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def spark_throughput(model_dir: Path, data: Path, warm_up: Path, work: Path) -> dict:
    """Spark local[2] on ``data`` after a warm-up run on ``warm_up`` (JVM and Python workers
    started, torch imported, model loaded), next to the local engine on the same file."""
    from pipelines.spark import score_spark, spark_session

    spark = spark_session("local[2]", {"spark.sql.shuffle.partitions": "8"})
    spark.sparkContext.setLogLevel("ERROR")
    try:
        out = work / "spark-out"
        score_spark(spark, str(model_dir), str(warm_up), str(out), overwrite=True, count_rows=False)
        shutil.rmtree(out, ignore_errors=True)
        rows = int(data.stem.rsplit("-", 1)[1])
        result = score_spark(
            spark, str(model_dir), str(data), str(out), overwrite=True, count_rows=False
        )
        shutil.rmtree(out, ignore_errors=True)
        local = ltr_score(model_dir, data, work / "out", "torch")
        shutil.rmtree(work / "out", ignore_errors=True)
        return {"rows": rows, "spark_s": result.seconds, "local_s": local}
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--throughput-rows", type=int, default=1_000_000)
    parser.add_argument("--spark-rows", type=int, default=1_000_000, help="0 = skip Spark")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--memory-reps", type=int, default=3, help="peak-memory runs per size")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ltr-bench-batch"))
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    parser.add_argument(
        "--device",
        default="cpu",
        help="cuda: throughput only, plain loop and ltr score's torch backend on the GPU",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    torch.set_num_threads(1)
    work = args.data_dir
    work.mkdir(parents=True, exist_ok=True)
    model_dir = make_model(work / "model")
    if args.device != "cpu":  # GPU: throughput only (memory and Spark are CPU questions)
        args.sizes, args.spark_rows, args.memory_reps = [], 0, 0
    sizes = sorted(set(args.sizes) | {args.throughput_rows} | ({args.spark_rows} - {0}))
    files = {n: make_data(work, n) for n in sizes}

    print(f"throughput on {args.throughput_rows:,} rows", flush=True)
    runs, note = throughput(model_dir, files[args.throughput_rows], args.reps, work, args.device)
    plain = statistics.median(runs["plain PyTorch loop (arrays in memory)"])
    rows = [
        [name, f"{statistics.median(v):,.0f}", f"{statistics.median(v) / plain:.2f}", len(v)]
        for name, v in runs.items()
    ]
    body = [
        f"Throughput on {args.throughput_rows:,} synthetic rows (46 features, lists of 10-100), "
        "median of interleaved repetitions; `ltr score` is timed end to end (plan, read Parquet, "
        "score, write Parquet partitions), the plain loop only scores arrays already in memory.",
        "",
        markdown_table(["engine", "rows/s", "ratio to plain loop", "reps"], rows),
    ]
    if note:
        body += ["", note]

    if args.sizes:
        print("peak memory", flush=True)
        measured: dict[int, list[dict]] = {n: [] for n in args.sizes}
        for _ in range(args.memory_reps):  # interleaved: sizes alternate, so load changes hit all
            for n in sorted(args.sizes):
                measured[n].append(measure_memory(model_dir, files[n], work))
                print(f"  {n:,} rows: peak {measured[n][-1]['peak_mb']:,.0f} MiB", flush=True)
        mem_rows = []
        for n in sorted(args.sizes):
            peaks = [m["peak_mb"] for m in measured[n]]
            mem_rows.append(
                [
                    f"{n:,}",
                    f"{files[n].stat().st_size / 2**20:,.0f}",
                    f"{statistics.median(peaks):,.0f}",
                    f"{min(peaks):,.0f}–{max(peaks):,.0f}",
                    f"{statistics.median(m['floor_mb'] for m in measured[n]):,.0f}",
                    f"{statistics.median(m['rows'] / m['seconds'] for m in measured[n]):,.0f}",
                ]
            )
        headers = ["rows", "input MiB", "peak RSS MiB, median", "peak RSS MiB, min–max"]
        headers += ["floor MiB", "rows/s"]
        body += [
            "",
            f"Peak resident memory of `ltr score` (torch, 1 thread) in a fresh process per run "
            f"(VmHWM), {args.memory_reps} runs per size, sizes interleaved; the floor is the same "
            "process after loading Python, torch, pyarrow and the model, before scoring. The peak "
            "depends on how many pieces are in flight at the moment (one read ahead, one being "
            "scored, up to two being written), so it varies between runs; flat memory means the "
            "range does not move up with the input size.",
            "",
            markdown_table(headers, mem_rows),
        ]
    if args.spark_rows:
        print(f"spark on {args.spark_rows:,} rows", flush=True)
        s = spark_throughput(model_dir, files[args.spark_rows], files[min(files)], work)
        body += [
            "",
            "Spark local mode (`local[2]`, 1 torch thread per task; session start and a warm-up "
            f"run excluded) on "
            f"{s['rows']:,} rows, next to the local engine on the same file:",
            "",
            markdown_table(
                ["engine", "seconds", "rows/s"],
                [
                    [
                        "ltr score --engine spark",
                        f"{s['spark_s']:.1f}",
                        f"{s['rows'] / s['spark_s']:,.0f}",
                    ],
                    [
                        "ltr score (local)",
                        f"{s['local_s']:.1f}",
                        f"{s['rows'] / s['local_s']:,.0f}",
                    ],
                ],
            ),
        ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        command = command_line("batch_scoring", argv)
        gpu = args.device != "cpu"
        name = "batch_scoring_cuda" if gpu else "batch_scoring"
        title = "Batch scoring (`ltr score`)" + (" on a GPU" if gpu else "")
        write_section(name, title, command, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
