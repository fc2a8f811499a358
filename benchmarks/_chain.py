"""What the text benchmarks that pretrain and fine-tune in a work folder share: their options, the
folder (new, or an earlier run's with ``--resume``), and the stage times kept there.

A stage an earlier run finished is read back instead of run again; its time is the one that run
recorded in ``seconds.json``, and the section says which stages were read back.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.text_rerank import DEFAULT_COLLECTION, pretrained_lm


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    """``--collection``, ``--split``, ``--pretrain-epochs``, ``--finetune-epochs``,
    ``--workdir``, ``--resume`` and ``--no-write``."""
    parser.add_argument("--collection", type=Path, default=DEFAULT_COLLECTION)
    parser.add_argument(
        "--split", help="the collection's own query split to use (SciFact: train); default none"
    )
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--workdir", type=Path, help="keep the models (and features) here")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --workdir: read back every stage an earlier run finished there",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")


def open_workdir(parser: argparse.ArgumentParser, args: argparse.Namespace, prefix: str) -> Path:
    """``--workdir`` (a new temporary folder without it), refused when it holds an earlier
    run's files and ``--resume`` was not given."""
    work = args.workdir or Path(tempfile.mkdtemp(prefix=prefix))
    if args.resume and not args.workdir:
        parser.error("--resume needs the --workdir of the run to go on with")
    if work.exists() and any(work.iterdir()) and not args.resume:
        parser.error(f"--workdir {work} is not empty: give a new folder, or --resume")
    work.mkdir(parents=True, exist_ok=True)
    return work


class StageTimes:
    """Wall seconds per stage, kept in ``<work>/seconds.json`` as each stage ends, and the
    stages read back from an earlier run."""

    def __init__(self, work: Path) -> None:
        self.path = work / "seconds.json"
        self.seconds: dict[str, float] = (
            json.loads(self.path.read_text()) if self.path.exists() else {}
        )
        self.reused: list[str] = []

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = seconds
        self.path.write_text(json.dumps(self.seconds))
        print(f"{stage} took {seconds / 60:.1f} min", flush=True)

    def since(self, stage: str, started: float) -> None:
        """Record ``stage`` as having run from ``started`` (``time.perf_counter()``) to now."""
        self.record(stage, time.perf_counter() - started)

    def sentence(self) -> str:
        """``Time on this machine: ...`` for the section, naming what was read back."""
        times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in self.seconds.items())
        back = (
            " (read back from an earlier run in the same --workdir, with the times it "
            f"recorded: {', '.join(self.reused)})"
            if self.reused
            else ""
        )
        return f"Time on this machine: {times or 'none timed'}{back}."


def start_chain(
    parser: argparse.ArgumentParser, args: argparse.Namespace, prefix: str
) -> tuple[Path, str, dict[str, Any], StageTimes, SimpleNamespace]:
    """Open the work folder and pretrain the masked LM there (or read back an earlier run's):
    ``(work folder, the collection's resolved path, the options that keep training on the CPU,
    the stage times, what pretrain returned)``."""
    work = open_workdir(parser, args, prefix)
    docs = next(args.collection.glob("docs.jsonl*"))
    cpu = {"trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.progress_bar": False}
    times = StageTimes(work)
    pre, took = pretrained_lm(work, docs, args.pretrain_epochs, cpu)
    if took is None:
        times.reused.append("pretraining")
    else:
        times.record("pretraining", took)
    return work, str(args.collection.resolve()), cpu, times, pre
