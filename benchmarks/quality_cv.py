"""Quality benchmark: 5-fold cross-validation of SetRank against LightGBM lambdarank.

For each dataset (MQ2008, OHSUMED QueryLevelNorm) and each of the five official LETOR folds
(Fold1 = train S1-S3, valid S4, test S5, rotating; :func:`ltr.data.letor_fold`), trains

* LightGBM lambdarank (``lightgbm.train``: 1,000 rounds at most, learning rate 0.05, 31 leaves,
  early stopping on the validation fold's NDCG@10 after 50 rounds without improvement, every other
  parameter at LightGBM's default), and
* each ``ltr`` config given (default: ``configs/setrank_imsab.yaml``, the default SetRank), through
  :func:`ltr.train.run.train` with tracking disabled and checkpoints in a temporary directory,

then scores the test fold and evaluates every model with the same code
(:func:`ltr.metrics.evaluate_all_conventions`: NDCG gain 2^rel - 1, pessimistic ties). The table
gives mean ± sample sd over the five folds, training time per fold, and the paired difference
SetRank - LightGBM in NDCG@10 (per fold: mean, sd, paired t-test; per query, pooled over the five
test folds: Wilcoxon signed-rank). Results go to a JSONL file as they come (``--resume`` reuses
finished folds with the same settings) and to the ``quality_cv`` section of ``docs/BENCHMARKS.md``.

Run: ``python -m benchmarks.quality_cv --dataset both [--threads 2] [--data-root ../shared/data]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltr.data.dataset import ListDataset, load_dataset
from ltr.data.folds import NUM_FOLDS, letor_fold
from ltr.metrics import evaluate_all_conventions, evaluate_grouped_per_query

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CONFIGS = ("configs/setrank_imsab.yaml",)
METRICS = ("ndcg@1", "ndcg@5", "ndcg@10")
HEADLINE = "empty=1"
LGBM_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 31,
    "verbosity": -1,
}
LGBM_ROUNDS = 1000
LGBM_STOPPING_ROUNDS = 50


def dataset_root(name: str, data_root: Path) -> Path:
    """Folder holding partitions S1..S5 of dataset ``name`` (``mq2008`` or ``ohsumed``)."""
    if name == "mq2008":
        return REPO_ROOT / "data" / "mq2008"
    if name == "ohsumed":
        return Path(data_root) / "letor3-ohsumed" / "QueryLevelNorm"
    raise ValueError(f"unknown dataset {name!r}; use mq2008 or ohsumed")


@dataclass
class FoldData:
    """The three splits of one LETOR fold."""

    number: int
    train: ListDataset
    valid: ListDataset
    test: ListDataset


def load_fold(root: Path, number: int) -> FoldData:
    """Load fold ``number`` (1..5) of the LETOR partitions under ``root``."""
    fold = letor_fold(root, number)
    train = load_dataset(list(fold.train))
    width = train.num_features
    return FoldData(
        number,
        train,
        load_dataset(list(fold.valid), num_features=width),
        load_dataset(list(fold.test), num_features=width),
    )


def evaluate(scores: np.ndarray, data: ListDataset) -> dict[str, dict[str, float]]:
    """NDCG@1/5/10 under the three empty-list conventions (gain 2^rel - 1, pessimistic ties)."""
    return evaluate_all_conventions(
        np.asarray(scores, dtype=np.float64), data.labels, data.offsets, metrics=list(METRICS)
    )


def per_query_ndcg10(scores: np.ndarray, data: ListDataset) -> list[float]:
    """Per-query NDCG@10 (empty lists = 1), in query order."""
    values = evaluate_grouped_per_query(
        np.asarray(scores, dtype=np.float64), data.labels, data.offsets, metrics=["ndcg@10"]
    )
    return values["ndcg@10"].tolist()


def train_lightgbm(
    train: ListDataset,
    valid: ListDataset,
    threads: int,
    seed: int = 0,
    *,
    params: dict[str, Any] | None = None,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Any, float]:
    """LightGBM lambdarank with early stopping on ``valid``: ``(booster, training seconds)``.
    ``params`` override :data:`LGBM_PARAMS` (another objective, say); ``labels`` replace the
    datasets' own (training, validation)."""
    import lightgbm as lgb

    params = {**LGBM_PARAMS, **(params or {}), "num_threads": threads, "seed": seed}
    y_train, y_valid = labels if labels is not None else (train.labels, valid.labels)
    started = time.perf_counter()
    train_set = lgb.Dataset(train.features, y_train, group=train.list_lengths)
    valid_set = lgb.Dataset(valid.features, y_valid, group=valid.list_lengths, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=LGBM_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(LGBM_STOPPING_ROUNDS, verbose=False)],
    )
    return booster, time.perf_counter() - started


def run_lightgbm(fold: FoldData, threads: int, seed: int = 0) -> dict[str, Any]:
    """Train LightGBM lambdarank on a fold with early stopping on the validation fold."""
    booster, seconds = train_lightgbm(fold.train, fold.valid, threads, seed)
    best = booster.best_iteration
    valid_scores = booster.predict(fold.valid.features, num_iteration=best)
    test_scores = booster.predict(fold.test.features, num_iteration=best)
    return {
        "seconds": seconds,
        "iterations": best,
        "valid": evaluate(valid_scores, fold.valid),
        "test": evaluate(test_scores, fold.test),
        "test_per_query": per_query_ndcg10(test_scores, fold.test),
    }


def ltr_overrides(root: Path, number: int, output_dir: str) -> dict[str, Any]:
    """Overrides that point a training config at one fold, with tracking off and no progress."""
    return {
        "data.letor_root": str(root),
        "data.fold": number,
        "data.train": [],
        "data.valid": [],
        "data.test": [],
        "tracking.enabled": False,
        "trainer.progress_bar": False,
        "output_dir": output_dir,
    }


def run_ltr(
    config_path: str | Path, root: Path, fold: FoldData, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train an ``ltr`` config on a fold (tracking off, checkpoints in a temporary directory)."""
    from ltr.artifact import load_model
    from ltr.inference import score_lists
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    with tempfile.TemporaryDirectory(prefix="ltr-quality-cv-") as tmp:
        overrides = {**ltr_overrides(root, fold.number, tmp), **(extra or {})}
        config = load_train_config(REPO_ROOT / config_path, overrides)
        started = time.perf_counter()
        result = train(config, verbose=False)
        seconds = time.perf_counter() - started
        model = load_model(result.artifact_dir).model
        valid_scores = score_lists(model, fold.valid)
        test_scores = score_lists(model, fold.test)
    test = evaluate(test_scores, fold.test)
    # The run's own test evaluation must agree with ours (same model, same metric code).
    own = result.test_metrics[HEADLINE]["ndcg@10"]
    if not np.isclose(own, test[HEADLINE]["ndcg@10"], atol=1e-6):
        raise RuntimeError(f"re-scored test NDCG@10 {test[HEADLINE]['ndcg@10']} != run's {own}")
    return {
        "seconds": seconds,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "valid": evaluate(valid_scores, fold.valid),
        "test": test,
        "test_per_query": per_query_ndcg10(test_scores, fold.test),
    }


def forward_latency(
    config_path: str | Path, num_features: int = 46, length: int = 100, reps: int = 300
) -> dict[str, float]:
    """Parameters and eval-mode forward latency (ms) of a config's model on one list, 1 thread.

    Builds the model (normaliser included, untrained weights: latency does not depend on their
    values) and times ``model(features [1, length, F], mask)`` under ``torch.inference_mode``.
    """
    from ltr.data.normalize import FeatureNormalizer
    from ltr.models import RankingModel, build_scorer
    from ltr.train.config import load_train_config

    config = load_train_config(REPO_ROOT / config_path)
    params = {k: v for k, v in config.model.items() if k != "name"}
    scorer = build_scorer(config.model["name"], {**params, "num_features": num_features})
    norm = FeatureNormalizer(num_features, log1p=config.normalizer.log1p)
    model = RankingModel(scorer, norm if config.normalizer.enabled else None).eval()
    features = torch.rand(1, length, num_features)
    mask = torch.ones(1, length, dtype=torch.bool)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    with torch.inference_mode():
        for i in range(reps + 20):
            start = time.perf_counter()
            model(features, mask)
            if i >= 20:  # warm-up
                times.append((time.perf_counter() - start) * 1e3)
    torch.set_num_threads(previous)
    return {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "median_ms": float(np.median(times)),
        "p99_ms": float(np.percentile(times, 99)),
    }


def model_name(config_path: str) -> str:
    """Short model name from a config path (``configs/setrank_msab.yaml`` -> ``setrank_msab``)."""
    return Path(config_path).stem


def fingerprint(config_path: str | None, threads: int) -> str:
    """Hash of what a result depends on: the config file's text (or LightGBM's settings)."""
    if config_path is None:
        text = json.dumps([LGBM_PARAMS, LGBM_ROUNDS, LGBM_STOPPING_ROUNDS, threads])
    else:
        text = (REPO_ROOT / config_path).read_text() + f"threads={threads}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_result(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def mean_sd(values: list[float], digits: int = 4) -> str:
    arr = np.asarray(values, dtype=np.float64)
    sd = arr.std(ddof=1) if arr.size > 1 else 0.0
    return f"{arr.mean():.{digits}f} ± {sd:.{digits}f}"


def summary_tables(records: list[dict[str, Any]], datasets: list[str]) -> str:
    """Markdown: per-dataset metric table and the paired SetRank - LightGBM comparison."""
    from scipy import stats

    from benchmarks._report import markdown_table

    parts: list[str] = []
    for ds in datasets:
        rows = [r for r in records if r["dataset"] == ds]
        models = list(dict.fromkeys(r["model"] for r in rows))
        table = []
        for m in models:
            rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r["fold"])
            h = [r["test"][HEADLINE] for r in rs]
            table.append(
                [
                    m,
                    len(rs),
                    *(mean_sd([x[k] for x in h]) for k in METRICS),
                    mean_sd([r["test"]["empty=0"]["ndcg@10"] for r in rs]),
                    mean_sd([r["test"]["dropped"]["ndcg@10"] for r in rs]),
                    mean_sd([r["valid"][HEADLINE]["ndcg@10"] for r in rs]),
                    f"{np.mean([r['seconds'] for r in rs]):.1f}",
                    f"{np.mean([r.get('iterations') or r.get('epochs') for r in rs]):.0f}",
                ]
            )
        headers = ["model", "folds", "NDCG@1", "NDCG@5", "NDCG@10", "NDCG@10 (empty=0)"]
        headers += ["NDCG@10 (dropped)", "valid NDCG@10", "train s/fold", "rounds/epochs"]
        parts.append(
            f"### {ds}: test folds, mean ± sd over folds\n\n{markdown_table(headers, table)}"
        )
        base = {r["fold"]: r for r in rows if r["model"] == "lightgbm"}
        paired = []
        for m in models:
            if m == "lightgbm":
                continue
            mine = {r["fold"]: r for r in rows if r["model"] == m}
            folds = sorted(set(mine) & set(base))
            if len(folds) < 2:
                continue
            diff = [
                mine[k]["test"][HEADLINE]["ndcg@10"] - base[k]["test"][HEADLINE]["ndcg@10"]
                for k in folds
            ]
            t_p = stats.ttest_rel(
                [mine[k]["test"][HEADLINE]["ndcg@10"] for k in folds],
                [base[k]["test"][HEADLINE]["ndcg@10"] for k in folds],
            ).pvalue
            q_mine = np.concatenate([mine[k]["test_per_query"] for k in folds])
            q_base = np.concatenate([base[k]["test_per_query"] for k in folds])
            dq = q_mine - q_base
            w_p = stats.wilcoxon(dq[dq != 0]).pvalue if np.any(dq != 0) else 1.0
            paired.append(
                [
                    f"{m} − lightgbm",
                    " ".join(f"{d:+.4f}" for d in diff),
                    mean_sd(diff),
                    f"{sum(d > 0 for d in diff)}/{len(diff)}",
                    f"{t_p:.3f}",
                    f"{int((dq > 0).sum())}/{int((dq < 0).sum())}/{int((dq == 0).sum())}",
                    f"{w_p:.3f}",
                ]
            )
        default = next((m for m in models if m != "lightgbm"), None)
        if default is not None and "lightgbm" in models:
            mean = {
                m: np.mean([r["test"][HEADLINE]["ndcg@10"] for r in rows if r["model"] == m])
                for m in (default, "lightgbm")
            }
            verdict = "met" if mean[default] > mean["lightgbm"] else "not met"
            parts.append(
                f"Target (the default configuration, `{default}`, beats LightGBM's mean test "
                f"NDCG@10): {mean[default]:.4f} vs {mean['lightgbm']:.4f}, **{verdict}**. "
                "Differences this size are within the fold-to-fold spread; the paired tests "
                "below say how far from significant they are."
            )
        if paired:
            headers = ["difference in test NDCG@10 (empty=1)", "per fold (1..5)", "mean ± sd"]
            headers += ["folds won", "paired t p", "queries +/−/=", "Wilcoxon p (queries)"]
            parts.append(markdown_table(headers, paired))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mq2008", "ohsumed", "both"], default="both")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(1, NUM_FOLDS + 1)))
    parser.add_argument("--threads", type=int, default=1, help="torch and LightGBM threads")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "runs/quality_cv.jsonl")
    parser.add_argument("--resume", action="store_true", help="reuse finished folds")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    datasets = ["mq2008", "ohsumed"] if args.dataset == "both" else [args.dataset]
    if not args.resume and args.results.exists():
        args.results.unlink()
    records = load_results(args.results)
    models: list[tuple[str, str | None]] = [("lightgbm", None)]
    models += [(model_name(c), c) for c in args.configs]
    for ds in datasets:
        root = dataset_root(ds, args.data_root)
        for number in args.folds:
            fold: FoldData | None = None
            for name, config in models:
                key = (ds, name, number, fingerprint(config, args.threads))
                if any(
                    (r["dataset"], r["model"], r["fold"], r["fingerprint"]) == key for r in records
                ):
                    continue
                fold = fold or load_fold(root, number)
                out = (
                    run_lightgbm(fold, args.threads)
                    if config is None
                    else run_ltr(config, root, fold)
                )
                record = {"dataset": ds, "model": name, "fold": number, "fingerprint": key[3]}
                record.update(out)
                append_result(args.results, record)
                records.append(record)
                print(
                    f"{ds} fold {number} {name:<14} test NDCG@10 "
                    f"{out['test'][HEADLINE]['ndcg@10']:.4f} valid "
                    f"{out['valid'][HEADLINE]['ndcg@10']:.4f} {out['seconds']:.1f} s",
                    flush=True,
                )
    wanted = {(ds, n, fingerprint(c, args.threads)) for ds in datasets for n, c in models}
    kept = [r for r in records if (r["dataset"], r["model"], r["fingerprint"]) in wanted]
    body = (
        "Official LETOR folds (Fold k: train on three partitions, validate on the next, test on "
        "the last, rotating); every model is scored on the test fold by the same metric code "
        "(gain 2^rel − 1; the headline convention counts lists with no relevant document as 1, "
        "as LightGBM does). LightGBM lambdarank: 1,000 rounds at most, learning rate 0.05, 31 "
        "leaves, early stopping on the validation fold after 50 rounds. `ltr` models: the "
        "shipped configs, early stopping and checkpoint selection on validation NDCG@10, one "
        "seed. Train time = wall seconds per fold with the stated threads (LightGBM and torch), "
        "on a shared machine. The default configuration was chosen on validation folds only "
        "(docs/EXPERIMENTS.md).\n\n" + summary_tables(kept, datasets)
    )
    if args.configs:
        from benchmarks._report import markdown_table

        rows = []
        for config in args.configs:
            lat = forward_latency(config)
            rows.append(
                [
                    model_name(config),
                    f"{lat['parameters']:,.0f}",
                    f"{lat['median_ms']:.2f}",
                    f"{lat['p99_ms']:.2f}",
                ]
            )
        headers = ["model", "parameters (46 features)", "forward ms, median", "forward ms, p99"]
        body += (
            "\n\n### Model size and forward latency\n\nOne list of 100 candidates, 46 features, "
            "eval mode under `torch.inference_mode`, 1 torch thread, 300 calls after 20 warm-up "
            "calls, on the same (shared) machine.\n\n" + markdown_table(headers, rows)
        )
    print(body)
    if not args.no_write:
        from benchmarks._report import write_section

        command = "python -m benchmarks.quality_cv " + " ".join(argv or sys.argv[1:])
        write_section("quality_cv", "Quality: 5-fold CV, SetRank vs LightGBM", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
