"""Position encodings of the language models compared: held-out loss after the same training.

Pretrains the ``configs/lm/gpt_shakespeare.yaml`` preset (or its masked twin with ``--kinds
masked``) once per position encoding, ``learned`` and ``sinusoidal`` (absolute, added to the
token embeddings) and ``rotary`` (queries and keys turned by their positions), everything else
equal: the same tokenizer, data order, seed and number of steps. Reports each run's held-out loss
per token, perplexity and accuracy at its best epoch, its parameters and its wall time. Training
is seeded, so the losses repeat on one machine; the wall times share the machine with whatever
else runs. Writes its section of ``docs/BENCHMARKS.md``; where a GPU is found (training runs on
it, as ``ltr pretrain``'s ``accelerator: auto`` does) the section is one of its own.

Run: ``python -m benchmarks.lm_positions [--kinds causal masked] [--epochs N] [--precision
bf16-mixed] [--no-write]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks._report import command_line, markdown_table, write_section
from ltr.lm.config import load_pretrain_config
from ltr.lm.model import POSITIONALS
from ltr.lm.pretrain import pretrain

PRESETS = {
    "causal": Path(__file__).resolve().parent.parent / "configs" / "lm" / "gpt_shakespeare.yaml",
    "masked": Path(__file__).resolve().parent.parent / "configs" / "lm" / "bert_shakespeare.yaml",
}


def run(kind: str, positional: str, root: Path, extra: dict) -> dict:
    """Pretrain the preset of ``kind`` with ``positional`` positions; its row of the table."""
    where = root / f"{kind}-{positional}"
    overrides = {
        "model.positional": positional,
        "output_dir": str(where / "out"),
        "tracking.tracking_uri": f"sqlite:///{where / 'mlflow.db'}",
        "tracking.registered_model": None,
        "trainer.progress_bar": False,
        "sample_tokens": 0,
        **extra,
    }
    config = load_pretrain_config(PRESETS[kind], overrides)
    result = pretrain(config, verbose=False)
    m = result.valid_metrics
    print(
        f"{kind} {positional}: loss {m['val/loss']:.4f}, accuracy {m['val/accuracy']:.4f}, "
        f"best epoch index {result.best_epoch} of {result.epochs}, {result.seconds:.0f} s",
        flush=True,
    )
    return {
        "kind": kind,
        "positional": positional,
        "parameters": result.num_parameters,
        "loss": m["val/loss"],
        "ppl": m["val/ppl"],
        "accuracy": m["val/accuracy"],
        "best": result.best_epoch,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "scored": result.scored_tokens,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=list(PRESETS), default=["causal"])
    parser.add_argument("--positionals", nargs="+", choices=POSITIONALS, default=list(POSITIONALS))
    parser.add_argument("--epochs", type=int, help="trainer.max_epochs (default: the preset's)")
    parser.add_argument("--steps", type=int, help="data.steps_per_epoch (default: the preset's)")
    parser.add_argument(
        "--precision", choices=["32", "bf16-mixed"], default="32", help="trainer.precision"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    extra: dict = {}
    if args.epochs is not None:
        extra["trainer.max_epochs"] = args.epochs
    if args.steps is not None:
        extra["data.steps_per_epoch"] = args.steps
    if args.precision != "32":
        extra["trainer.precision"] = args.precision
    gpu = torch.cuda.is_available()

    rows = []
    with tempfile.TemporaryDirectory(prefix="ltr-lm-positions-") as tmp:
        for kind in args.kinds:
            for positional in args.positionals:
                rows.append(run(kind, positional, Path(tmp), extra))
    table = markdown_table(
        [
            "kind",
            "positions",
            "parameters",
            "held-out loss / token",
            "perplexity",
            "accuracy",
            "best epoch (from 1)",
            "wall time",
        ],
        [
            [
                r["kind"],
                r["positional"],
                f"{r['parameters']:,}",
                f"{r['loss']:.3f}",
                f"{r['ppl']:.1f}",
                f"{r['accuracy']:.3f}",
                f"{r['best'] + 1} of {r['epochs']}" if r["best"] is not None else "-",
                f"{r['seconds'] / 60:.1f} min",
            ]
            for r in rows
        ],
    )
    presets = ", ".join(f"`{PRESETS[k].relative_to(PRESETS[k].parents[2])}`" for k in args.kinds)
    changed = f" ({', '.join(f'{k} {v}' for k, v in extra.items())})" if extra else ""
    body = (
        f"Each row pretrains {presets} with `model.positional` set as shown and everything else "
        f"as configured{changed}: the same BPE tokenizer, seed and batches. Metrics are on "
        f"the first {rows[0]['scored']:,} held-out tokens at the best epoch (lowest validation "
        "loss). A "
        "masked model's loss is over the 15 % of tokens it must recover and does not compare with "
        "a causal model's. Losses repeat run to run (seeded); the wall times are one run each on "
        "a shared machine."
        + (f" Trained on one {torch.cuda.get_device_name()}." if gpu else " Trained on the CPU.")
        + f"\n\n{table}"
    )
    print(body)
    if not args.no_write:
        command = command_line("lm_positions", argv)
        name, title = "lm_positions", "Language-model position encodings"
        if gpu:
            name, title = f"{name}_cuda", f"{title} (GPU)"
        write_section(name, title, command, body)


if __name__ == "__main__":
    main()
