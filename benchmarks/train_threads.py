"""Training epochs by PyTorch thread count, on an idle CPU and beside a busy process.

``ltr train`` of the default SetRank (``configs/setrank_imsab.yaml``, MQ2008 fold 1, tracking
off) is run for a few epochs with ``--trainer.threads`` 1 and 2 (and any others asked for),
first alone, then beside a process that keeps one core busy (a Python loop), interleaved over
repetitions. Each epoch's seconds are read from the per-epoch lines ``ltr train`` prints when
its output is not a terminal; the first epoch of each run is left out (start-up). The table
gives the median seconds per epoch and the ratio to one thread on the idle machine.

Run: ``python -m benchmarks.train_threads [--epochs 4] [--reps 2] [--threads 1 2]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._report import DEFAULT_CONFIG, command_line, markdown_table, write_section

REPO = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"^epoch (\d+) of \d+ .*\(([0-9.]+) s\)$", re.M)


def epoch_seconds(threads: int, epochs: int, work: Path) -> list[float]:
    """Seconds of each epoch after the first of one ``ltr train`` run."""
    out = work / f"run-{threads}"
    done = subprocess.run(
        [sys.executable, "-m", "ltr", "train", "--config", str(DEFAULT_CONFIG),
         "--trainer.max_epochs", str(epochs), "--trainer.early_stopping_patience", "null",
         "--trainer.threads", str(threads), "--tracking.enabled", "false",
         "--output_dir", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ltr train failed: {done.stderr[-2000:]}")
    seconds = [float(s) for e, s in EPOCH.findall(done.stdout) if int(e) > 0]
    if len(seconds) != epochs - 1:
        raise RuntimeError(f"expected {epochs - 1} epoch lines, got: {done.stdout[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = p.parse_args(argv)
    cells: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ltr-train-threads-") as tmp:
        for rep in range(args.reps):
            for load in ("idle", "one core busy"):
                busy = None
                if load != "idle":
                    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                try:
                    for threads in args.threads:
                        print(f"rep {rep + 1}, {load}, {threads} threads", flush=True)
                        cells.setdefault((load, threads), []).extend(
                            epoch_seconds(threads, args.epochs, Path(tmp))
                        )
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
    base = statistics.median(cells[("idle", args.threads[0])])
    rows = [
        [load, threads, f"{statistics.median(v):.2f}", f"{statistics.median(v) / base:.2f}",
         f"{min(v):.2f}–{max(v):.2f}", len(v)]
        for (load, threads), v in cells.items()
    ]  # fmt: skip
    body = "\n".join(
        [
            f"`ltr train` of the default SetRank on MQ2008 fold 1, {args.epochs} epochs per run "
            f"(the first left out), {args.reps} interleaved repetitions; beside it, nothing "
            "(idle) or a Python loop keeping one core busy.",
            "",
            markdown_table(
                [
                    "other load",
                    "--trainer.threads",
                    "s/epoch, median",
                    f"ratio to {args.threads[0]} thread(s) idle",
                    "min–max",
                    "epochs",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(
            "train_threads",
            "Training epochs by thread count, idle and beside a busy process",
            command_line("train_threads", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
