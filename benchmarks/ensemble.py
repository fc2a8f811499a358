"""Seed ensembles: does the mean of K SetRanks trained from different seeds rank better than one?

For each official LETOR fold (Fold1 = train S1-S3, valid S4, test S5, rotating), trains the
default SetRank (``configs/setrank_imsab.yaml``, tracking off) with seeds 1..K, and LightGBM
lambdarank as in ``benchmarks.quality_cv``. Every member's folder is kept under ``--work-dir``
with a ``done.json`` once finished, so a killed run goes on where it stopped.

Then, on the validation and test folds, scores every member alone and the ensembles of the first
k members (``ltr.models.ensemble.RankingEnsemble``, the module ``ltr ensemble`` writes) with both
ways to combine (per-list standardised scores, ``zscore``, and the plain mean), and reports NDCG
(gain 2^rel - 1, lists with no relevant document counted as 1, pessimistic ties) as mean ± sd
over folds, with paired comparisons: per fold (paired t-test) and per query, pooled over the test
folds (Wilcoxon signed-rank). "One seed" is the mean over the K members, what one training run
gives on average.

Serving cost: both the fold-1 single model and its K-ensemble are exported to ONNX (with the
parity check) and timed on one list of 100 test candidates with ONNX Runtime on one thread.

``--also CONFIG ...`` also trains seed 1 of other configs (``configs/setrank_msab.yaml``,
``configs/mlp.yaml``) on each fold and mixes them with SetRank's seed 1, against an ensemble of
as many SetRank seeds: do different architectures disagree more usefully than seeds?

Run: ``python -m benchmarks.ensemble [--dataset mq2008|ohsumed] [--folds 1 2 3 4 5] [--seeds 5]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import (
    DEFAULT_DATA_ROOT,
    HEADLINE,
    REPO_ROOT,
    dataset_root,
    evaluate,
    load_fold,
    ltr_overrides,
    mean_sd,
    per_query_ndcg10,
    run_lightgbm,
)

CONFIG = "configs/setrank_imsab.yaml"
SIZES = (2, 3, 5)  # ensembles of the first k members reported (those <= --seeds)


def train_member(
    root: Path,
    fold: int,
    seed: int,
    folder: Path,
    config_path: str = CONFIG,
    extra: dict[str, Any] | None = None,
) -> Path:
    """The artifact of ``config_path`` (with ``extra`` overrides) trained on ``fold`` with
    ``seed``, kept in ``folder``: trained only if ``folder/done.json`` is missing."""
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    done = folder / "done.json"
    if not done.exists():
        overrides = {
            **ltr_overrides(root, fold, str(folder)),
            "trainer.seed": seed,
            **(extra or {}),
        }
        config = load_train_config(REPO_ROOT / config_path, overrides)
        started = time.perf_counter()
        result = train(config, verbose=False)
        facts = {"seconds": time.perf_counter() - started, "best_epoch": result.best_epoch}
        done.write_text(json.dumps(facts))
    return folder / "model"


def _ndcg10(metrics: dict) -> float:
    return metrics[HEADLINE]["ndcg@10"]


def run_fold(args, root: Path, number: int) -> dict[str, Any]:
    """Every member, ensemble and LightGBM on one fold: NDCG and per-query test NDCG@10."""
    from ltr.artifact import load_model
    from ltr.inference import score_lists
    from ltr.models.ensemble import RankingEnsemble

    fold = load_fold(root, number)
    members = []
    for seed in range(1, args.seeds + 1):
        print(f"{args.dataset} fold {number}: seed {seed} of {args.seeds}", flush=True)
        folder = args.work_dir / args.dataset / f"fold{number}" / f"seed{seed}"
        members.append(load_model(train_member(root, number, seed, folder)).model)
    systems: dict[str, Any] = {}
    for k, member in enumerate(members, start=1):
        systems[f"seed {k}"] = member
    for size in [s for s in SIZES if s <= args.seeds]:
        systems[f"ensemble {size} zscore"] = RankingEnsemble(members[:size], "zscore").eval()
    systems[f"ensemble {args.seeds} mean"] = RankingEnsemble(members, "mean").eval()
    if args.also:  # seed 1 of each other config, alone and mixed with SetRank's seed 1
        others = []
        for config_path in args.also:
            stem = Path(config_path).stem
            print(f"{args.dataset} fold {number}: {stem}, seed 1", flush=True)
            folder = args.work_dir / args.dataset / f"fold{number}" / f"{stem}-seed1"
            others.append(load_model(train_member(root, number, 1, folder, config_path)).model)
            systems[f"{stem} seed 1"] = others[-1]
        size = len(others) + 1
        systems[f"mix {size} zscore"] = RankingEnsemble([members[0], *others]).eval()
        if size <= args.seeds:
            systems[f"ensemble {size} zscore"] = RankingEnsemble(members[:size]).eval()
    record: dict[str, Any] = {"fold": number, "systems": {}}
    for name, module in systems.items():
        valid, test = score_lists(module, fold.valid), score_lists(module, fold.test)
        record["systems"][name] = {
            "valid": evaluate(valid, fold.valid),
            "test": evaluate(test, fold.test),
            "test_per_query": per_query_ndcg10(test, fold.test),
        }
    record["systems"]["lightgbm"] = run_lightgbm(fold, threads=args.threads)
    return record


def _one_seed(record: dict, seeds: int, split: str, metric: str = "ndcg@10") -> float:
    return float(
        np.mean(
            [record["systems"][f"seed {k}"][split][HEADLINE][metric] for k in range(1, seeds + 1)]
        )
    )


def _one_seed_per_query(record: dict, seeds: int) -> np.ndarray:
    return np.mean(
        [record["systems"][f"seed {k}"]["test_per_query"] for k in range(1, seeds + 1)], axis=0
    )


def serving_cost(args, root: Path, length: int = 100, reps: int = 300) -> list[list[object]]:
    """ONNX Runtime forward latency of one list of ``length``: fold 1's seed 1 and its ensemble."""
    import tempfile

    from ltr.artifact import load_model
    from ltr.ensemble import save_ensemble
    from ltr.export.onnx import export_checked, parity_batches_from_lists
    from ltr.predictor import load_predictor

    fold = load_fold(root, 1)
    folders = [
        args.work_dir / args.dataset / "fold1" / f"seed{k}" / "model"
        for k in range(1, args.seeds + 1)
    ]
    lists = [fold.test[i].features for i in range(min(64, len(fold.test)))]
    rows = np.concatenate([fold.test[i].features for i in range(len(fold.test))])
    features = rows[:length][None].astype(np.float32)  # (1, L, F)
    mask = np.ones((1, length), dtype=bool)
    out = []
    with tempfile.TemporaryDirectory(prefix="ltr-bench-ensemble-") as tmp:
        single = Path(tmp) / "single"
        shutil.copytree(folders[0], single)
        _, _, ensemble = save_ensemble([load_model(f) for f in folders], Path(tmp) / "ensemble")
        timings = {}
        for name, folder in (("one model", single), (f"ensemble of {args.seeds}", ensemble)):
            loaded = load_model(folder)
            export_checked(loaded, folder, parity_batches_from_lists(loaded, lists))
            predictor = load_predictor(folder, "onnx", threads=1)
            times = []
            for i in range(reps + 20):
                start = time.perf_counter()
                predictor.predict(features, mask)
                if i >= 20:
                    times.append((time.perf_counter() - start) * 1e3)
            params = sum(p.numel() for p in loaded.model.parameters())
            timings[name] = float(np.median(times))
            out.append(
                [name, f"{params:,}", f"{np.median(times):.3f}", f"{np.percentile(times, 99):.3f}"]
            )
        base = timings["one model"]
        for row in out:
            row.append(f"{timings[row[0]] / base:.2f}×")
    return out


def paired_row(records, name: str, a, a_q, b, b_q, *, query_counts: bool = True) -> list:
    """A table row comparing system ``a`` with ``b`` over ``records`` (one per fold): the
    per-fold differences (``a(r)``, ``b(r)``: test NDCG@10), their mean ± sd, folds won, the
    paired t-test, the per-query wins/losses/ties (``a_q(r)``, ``b_q(r)``: per-query NDCG@10;
    with ``query_counts``) and the Wilcoxon signed-rank test over queries pooled over folds."""
    from scipy import stats

    diff = np.array([a(r) - b(r) for r in records])
    t_p = stats.ttest_rel([a(r) for r in records], [b(r) for r in records]).pvalue
    per_query = np.concatenate([a_q(r) - b_q(r) for r in records])
    nonzero = per_query[per_query != 0]
    w_p = stats.wilcoxon(nonzero).pvalue if nonzero.size else float("nan")
    row = [
        name,
        " ".join(f"{d:+.4f}" for d in diff),
        mean_sd(list(diff)),
        f"{int((diff > 0).sum())}/{len(diff)}",
        _p(t_p) if len(records) > 1 else "—",
    ]
    if query_counts:
        row.append(
            "/".join(str(int(n.sum())) for n in (per_query > 0, per_query < 0, per_query == 0))
        )
    return [*row, _p(w_p)]


def _p(value: float) -> str:
    """A p-value to three decimals, or ``< 0.001``."""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def report(args, records: list[dict], cost: list[list[object]], seconds: float) -> str:

    seeds = args.seeds
    folds = [r["fold"] for r in records]
    top = f"ensemble {max(s for s in SIZES if s <= seeds)} zscore" if seeds >= 2 else None
    lines = [
        f"{args.dataset.upper() if args.dataset == 'mq2008' else 'OHSUMED'} official folds "
        f"{', '.join(map(str, folds))}: the default SetRank (`{CONFIG}`) trained with seeds "
        f"1..{seeds} on each fold (early stopping and checkpoint selection on validation "
        "NDCG@10, as `ltr train` does), their ensembles (`ltr ensemble`: the first k seeds, "
        "scores standardised within each list then averaged, `zscore`; or averaged as they are, "
        "`mean`), and LightGBM lambdarank as in *Quality: 5-fold CV*. NDCG with gain 2^rel − 1, "
        "lists with no relevant document counted as 1; mean ± sd over folds. *One seed* is the "
        f"mean over the {seeds} seeds: what one training run gives on average. "
        + (
            f"Mixed: SetRank's seed 1 with seed 1 of {', '.join(f'`{c}`' for c in args.also)}, "
            "each trained the same way. "
            if args.also
            else ""
        )
        + f"Total {seconds / 60:.0f} min.",
        "",
    ]
    rows = []

    def row(name: str, get) -> list[object]:
        return [
            name,
            mean_sd([get(r, "test", "ndcg@1") for r in records]),
            mean_sd([get(r, "test", "ndcg@5") for r in records]),
            mean_sd([get(r, "test", "ndcg@10") for r in records]),
            mean_sd([get(r, "valid", "ndcg@10") for r in records]),
        ]

    def system(name: str):
        return lambda r, split, metric: r["systems"][name][split][HEADLINE][metric]

    rows.append(row("LightGBM lambdarank", system("lightgbm")))
    rows.append(row("SetRank, one seed", lambda r, s, m: _one_seed(r, seeds, s, m)))
    names = sorted(
        (n for n in records[0]["systems"] if n.startswith("ensemble")),
        key=lambda n: (int(n.split()[1]), n.split()[2] != "zscore"),
    )
    for name in names:
        k, combine = name.split()[1:]
        rows.append(row(f"SetRank, ensemble of {k} (`{combine}`)", system(name)))
    stems = [Path(c).stem for c in args.also]
    for stem in stems:
        rows.append(row(f"{stem}, seed 1", system(f"{stem} seed 1")))
    if stems:
        mix = f"mix {len(stems) + 1} zscore"
        rows.append(row(f"SetRank seed 1 + {' + '.join(stems)} (`zscore`)", system(mix)))
    lines.append(
        markdown_table(
            ["model", "test NDCG@1", "test NDCG@5", "test NDCG@10", "valid NDCG@10"], rows
        )
    )
    lines.append("")

    def compare(name: str, a, a_q, b, b_q) -> list[object]:
        return paired_row(records, name, a, a_q, b, b_q)

    def test10(name: str):
        return lambda r: r["systems"][name]["test"][HEADLINE]["ndcg@10"]

    def per_query(name: str):
        return lambda r: np.asarray(r["systems"][name]["test_per_query"])

    one = (lambda r: _one_seed(r, seeds, "test"), lambda r: _one_seed_per_query(r, seeds))
    lgbm = (test10("lightgbm"), per_query("lightgbm"))
    comparisons = []
    if top is not None:
        ens = (test10(top), per_query(top))
        k = top.split()[1]
        comparisons.append(compare(f"ensemble of {k} − one seed", *ens, *one))
        comparisons.append(compare(f"ensemble of {k} − LightGBM", *ens, *lgbm))
    comparisons.append(compare("one seed − LightGBM", *one, *lgbm))
    if stems and len(stems) + 1 <= seeds:
        size = len(stems) + 1
        mixed = (test10(f"mix {size} zscore"), per_query(f"mix {size} zscore"))
        same = (test10(f"ensemble {size} zscore"), per_query(f"ensemble {size} zscore"))
        comparisons.append(
            compare(f"SetRank + {' + '.join(stems)} − ensemble of {size} seeds", *mixed, *same)
        )
    lines.append(
        markdown_table(
            [
                "difference in test NDCG@10",
                f"per fold ({', '.join(map(str, folds))})",
                "mean ± sd",
                "folds won",
                "paired t p",
                "queries +/−/=",
                "Wilcoxon p (queries)",
            ],
            comparisons,
        )
    )
    if cost:
        lines += [
            "",
            f"Serving cost: fold 1's seed 1 and its ensemble of {seeds}, exported to ONNX "
            "(parity checked) and run by ONNX Runtime on 1 thread, one list of 100 test "
            "candidates, 300 calls after 20 warm-up calls:",
            "",
            markdown_table(["model", "parameters", "median ms", "p99 ms", "vs one model"], cost),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["mq2008", "ohsumed"], default="mq2008")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--seeds", type=int, default=5, help="models per fold (seeds 1..N)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM and torch threads")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("/tmp/ltr-bench-ensemble"),
        help="trained members, kept so that a killed run goes on where it stopped",
    )
    p.add_argument(
        "--also",
        nargs="+",
        default=[],
        metavar="CONFIG",
        help="other configs to train (seed 1) and mix with SetRank's seed 1, against as many seeds",
    )
    p.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    root = dataset_root(args.dataset, args.data_root)
    started = time.perf_counter()
    records = [run_fold(args, root, number) for number in args.folds]
    cost = serving_cost(args, root) if 1 in args.folds and args.seeds >= 2 else []
    body = report(args, records, cost, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        suffix = "" if args.dataset == "mq2008" else f"-{args.dataset}"
        what = "Seed ensembles"
        if args.also:
            suffix, what = f"{suffix}-mix", "Seed ensembles and mixed architectures"
        write_section(
            f"ensemble{suffix}",
            f"{what} ({'MQ2008' if args.dataset == 'mq2008' else 'OHSUMED'})",
            command_line("ensemble", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
