"""Hyper-parameter sweep for the default SetRank config, selected on VALIDATION folds only.

Each variant is a set of dotted overrides (as ``ltr train`` takes them) on top of :data:`BASE`,
the SetRank default before this sweep. A variant is trained on all five LETOR folds of a dataset
with train and validation files only: the test partitions are never loaded, so nothing here can be
tuned on test. Each (dataset, variant, fold) appends one JSON line to the results file with the
best checkpoint's validation metrics under the three empty-list conventions; a finished line is
reused when the run is repeated, so an interrupted sweep resumes where it stopped.

Run:    ``python -m benchmarks.quality_sweep --dataset mq2008 --variants base lambdaloss``
Report: ``python -m benchmarks.quality_sweep --report`` (Markdown table of every variant, mean ± sd
of validation NDCG@10 over folds, lists with no relevant document counted as 1)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.quality_cv import (
    DEFAULT_DATA_ROOT,
    REPO_ROOT,
    append_result,
    dataset_root,
    load_results,
    mean_sd,
)
from ltr.data.folds import NUM_FOLDS, letor_fold

RESULTS = REPO_ROOT / "docs" / "experiments" / "quality_sweep.jsonl"

BASE: dict[str, Any] = {
    "model": {
        "name": "setrank",
        "block": "msab",
        "d_model": 64,
        "num_heads": 4,
        "num_blocks": 2,
        "dropout": 0.1,
    },
    "loss": "neural_ndcg",
    "data.batch_size": 32,
    "trainer.max_epochs": 100,
    "trainer.early_stopping_patience": 20,
}
"""configs/setrank_msab.yaml before the sweep (everything else at the TrainConfig defaults)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    # losses
    "lambdaloss": {"loss": "lambdaloss"},
    "softmax": {"loss": "softmax"},
    "approx_ndcg": {"loss": "approx_ndcg"},
    "listmle": {"loss": "listmle"},
    "ranknet": {"loss": "ranknet"},
    "lambdarank": {"loss": "lambdarank"},
    "lambdaloss+mse0.1": {"loss": {"lambdaloss": 1.0, "mse": 0.1}},
    "softmax+mse0.1": {"loss": {"softmax": 1.0, "mse": 0.1}},
    "approx_ndcg+listmle0.05": {"loss": {"approx_ndcg": 1.0, "listmle": 0.05}},
    # architecture
    "imsab": {"model.block": "imsab"},
    "blocks1": {"model.num_blocks": 1},
    "blocks3": {"model.num_blocks": 3},
    "d32": {"model.d_model": 32, "model.d_ff": 128},
    "d128": {"model.d_model": 128, "model.d_ff": 512},
    "dropout0": {"model.dropout": 0.0},
    "dropout0.2": {"model.dropout": 0.2},
    "dropout0.3": {"model.dropout": 0.3},
    # optimisation
    "lr3e-4": {"optim.lr": 3e-4},
    "lr3e-3": {"optim.lr": 3e-3},
    "wd0.1": {"optim.weight_decay": 0.1},
    "bs8": {"data.batch_size": 8},
    "bs16": {"data.batch_size": 16},
    "bs64": {"data.batch_size": 64},
    "patience40": {"trainer.early_stopping_patience": 40},
    # data
    "norm_off": {"normalizer.enabled": False},
    "no_log1p": {"normalizer.log1p": False},
    "maxlen32": {"data.max_list_length": 32},
    "maxlen64": {"data.max_list_length": 64},
}
"""Atomic variants; a run names one or several joined by commas, e.g. ``lambdaloss,dropout0.3``
(applied left to right)."""


def variant_overrides(name: str) -> dict[str, Any]:
    """BASE with the variant's overrides applied (dotted keys; ``model.x`` edits the model)."""
    merged = {k: v for k, v in BASE.items() if k != "model"}
    model = dict(BASE["model"])
    changes: dict[str, Any] = {}
    for part in name.split(","):
        if part not in VARIANTS:
            raise SystemExit(f"unknown variant {part!r}; known: {', '.join(VARIANTS)}")
        changes.update(VARIANTS[part])
    for key, value in changes.items():
        if key.startswith("model."):
            model[key.split(".", 1)[1]] = value
        else:
            merged[key] = value
    merged["model"] = model
    return merged


def run_lightgbm_valid(root: Path, number: int, threads: int) -> dict[str, Any]:
    """The LightGBM reference of :mod:`benchmarks.quality_cv` on one fold, validation only."""
    from benchmarks.quality_cv import evaluate, train_lightgbm
    from ltr.data.dataset import load_dataset

    fold = letor_fold(root, number)
    train = load_dataset(list(fold.train))
    valid = load_dataset(list(fold.valid), num_features=train.num_features)
    booster, seconds = train_lightgbm(train, valid, threads)
    scores = booster.predict(valid.features, num_iteration=booster.best_iteration)
    return {
        "valid": evaluate(scores, valid),
        "epochs": booster.best_iteration,
        "best_epoch": booster.best_iteration,
        "seconds": seconds,
    }


def run_fold(dataset: str, root: Path, number: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """Train one variant on one fold (train + validation files only); validation metrics."""
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    fold = letor_fold(root, number)
    with tempfile.TemporaryDirectory(prefix="ltr-sweep-") as tmp:
        config = load_train_config(
            None,
            {
                **overrides,
                "data.train": [str(p) for p in fold.train],
                "data.valid": [str(p) for p in fold.valid],
                "data.test": [],
                "tracking.enabled": False,
                "trainer.progress_bar": False,
                "output_dir": tmp,
            },
        )
        started = time.perf_counter()
        result = train(config, verbose=False)
        seconds = time.perf_counter() - started
    return {
        "valid": result.valid_metrics,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "seconds": seconds,
    }


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def report(records: list[dict[str, Any]]) -> str:
    """Markdown table: one row per variant, validation NDCG@10 mean ± sd per dataset."""
    from benchmarks._report import markdown_table

    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    names = list(dict.fromkeys(r["variant"] for r in records))
    rows = []
    for name in names:
        row: list[object] = [name]
        for ds in datasets:
            rs = [r for r in records if r["variant"] == name and r["dataset"] == ds]
            if not rs:
                row += ["", "", ""]
                continue
            ndcg = [r["valid"]["empty=1"]["ndcg@10"] for r in rs]
            row.append(mean_sd(ndcg) + ("" if len(rs) == NUM_FOLDS else f" ({len(rs)} folds)"))
            ref = {
                r["fold"]: r["valid"]["empty=1"]["ndcg@10"]
                for r in records
                if r["variant"] == "lightgbm" and r["dataset"] == ds
            }
            diff = [
                r["valid"]["empty=1"]["ndcg@10"] - ref[r["fold"]] for r in rs if r["fold"] in ref
            ]
            row.append(
                f"{np.mean(diff):+.4f} ({sum(d > 0 for d in diff)}/{len(diff)})" if diff else ""
            )
            row.append(f"{np.mean([r['seconds'] for r in rs]):.0f}")
        rows.append(row)
    headers = ["variant"]
    for ds in datasets:
        headers += [f"{ds} valid NDCG@10", f"{ds} Δ vs LightGBM (folds won)", f"{ds} s/fold"]
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mq2008", "ohsumed"], default="mq2008")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--variants", nargs="*", default=["base"])
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(1, NUM_FOLDS + 1)))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report", action="store_true", help="print the table and exit")
    args = parser.parse_args(argv)

    records = load_results(args.results)
    if args.report:
        print(report(records))
        return 0
    torch.set_num_threads(args.threads)
    root = dataset_root(args.dataset, args.data_root)
    for name in args.variants:
        overrides = {} if name == "lightgbm" else variant_overrides(name)
        for number in args.folds:
            done = [
                r
                for r in records
                if (r["dataset"], r["variant"], r["fold"]) == (args.dataset, name, number)
                and same(r["overrides"], overrides)
            ]
            if done:
                continue
            if name == "lightgbm":
                out = run_lightgbm_valid(root, number, args.threads)
            else:
                out = run_fold(args.dataset, root, number, overrides)
            record = {"dataset": args.dataset, "variant": name, "fold": number}
            record.update({"overrides": overrides, **out})
            append_result(args.results, record)
            records.append(record)
            print(
                f"{args.dataset} {name} fold {number}: valid NDCG@10 "
                f"{out['valid']['empty=1']['ndcg@10']:.4f} best epoch {out['best_epoch']}/"
                f"{out['epochs']} {out['seconds']:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
