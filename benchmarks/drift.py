"""Feature drift: how many rows before PSI stops crying wolf, and which upstream breaks it catches.

For each official LETOR fold, the feature profile of the training partitions (what ``ltr train``
writes into the artifact) is compared with windows of held-out lists (the validation and test
partitions: other queries, no drift), each window N whole lists drawn at random, as a server's
recent rows are. Per window size N (in lists: rows of one list are alike, so the lists, not the
rows, say how much a window has seen):

* **no drift**: the largest PSI over all features in a window, and the share of windows where
  some feature passes 0.25 (a false alarm of the server's default ``drift.warn_psi``) or 0.1;
  the largest share of values outside the training range;
* **breaks** upstream, applied to one feature of the same windows at a time (every feature with
  at least 5 distinct decile bins in training): set to 0 (a join that stopped matching), scaled
  by 2 and by 1.2 (a unit or normalisation change), shifted by 0.1 of the feature's training
  range, and swapped with the next such feature (a column-order bug). Caught = that feature's
  PSI above 0.25; caught by range = its out-of-range share above 1 %, the check a rescaling
  trips first when the training data fill a bounded range.

Run: ``python -m benchmarks.drift [--dataset mq2008|ohsumed] [--folds 1 2 3 4 5]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import DEFAULT_DATA_ROOT, dataset_root, load_fold

SIZES = (10, 25, 50, 100, 200)  # lists per window
WARN, MODERATE, RANGE = 0.25, 0.1, 0.01


def _window(offsets: np.ndarray, lists: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of ``lists`` whole lists drawn at random (without replacement)."""
    picked = rng.choice(len(offsets) - 1, size=lists, replace=False)
    return np.concatenate([np.arange(offsets[q], offsets[q + 1]) for q in picked])


def _one(stats, values: np.ndarray) -> tuple[float, float]:
    """(PSI, out-of-range share) of one feature's values."""
    from ltr.drift import psi

    outside = float(np.mean((values < stats.minimum) | (values > stats.maximum)))
    return psi(stats.expected, stats.histogram(values)), outside


def _breaks(stats, values: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    span = stats.maximum - stats.minimum
    return {
        "set to 0": np.zeros_like(values),
        "scaled ×2": values * 2.0,
        "scaled ×1.2": values * 1.2,
        "shifted by 0.1 of its range": values + 0.1 * span,
        "swapped with the next feature": other,
    }


def run_fold(root: Path, fold: int, args: argparse.Namespace) -> dict:
    from ltr.drift import compare, profile_features

    windows, seed = args.windows, args.seed

    data = load_fold(root, fold)
    train, valid, test = data.train, data.valid, data.test
    held = np.concatenate([valid.features, test.features])  # other queries, one pool
    offsets = np.concatenate([valid.offsets[:-1], test.offsets + valid.offsets[-1]])
    profile = profile_features(train.features, list(train.feature_names))
    watched = [j for j, f in enumerate(profile.features) if len(f.edges) >= 4]
    rng = np.random.default_rng(seed + fold)
    pool = len(offsets) - 1
    out: dict = {"watched": len(watched), "rows": len(train.features), "pool": pool, "sizes": {}}
    for size in (s for s in SIZES if s <= pool // 2):  # windows far from all of the pool
        top_psi, top_range, rows_seen = [], [], []
        caught: dict[str, list[bool]] = {}
        by_range: dict[str, list[bool]] = {}
        for _ in range(windows):
            x = held[_window(offsets, size, rng)]
            rows_seen.append(len(x))
            report = compare(profile, x)
            top_psi.append(max(d.psi for d in report))
            top_range.append(max(d.out_of_range for d in report))
            for k, j in enumerate(watched):
                nxt = watched[(k + 1) % len(watched)]
                for name, values in _breaks(profile.features[j], x[:, j], x[:, nxt]).items():
                    value, outside = _one(profile.features[j], values)
                    caught.setdefault(name, []).append(value > WARN)
                    by_range.setdefault(name, []).append(value > WARN or outside > RANGE)
        out["sizes"][size] = {
            "rows": float(np.mean(rows_seen)),
            "top_psi": np.array(top_psi),
            "top_range": np.array(top_range),
            "caught": {k: float(np.mean(v)) for k, v in caught.items()},
            "by_range": {k: float(np.mean(v)) for k, v in by_range.items()},
        }
    return out


def quiet_rows(records: list[dict], sizes: list[int], psi: str, outside: str) -> list[list[str]]:
    """The no-drift table's rows, one per window size, pooled over the folds' ``records``: mean
    rows, the median and 95th percentile of the PSI under ``psi``, the windows past
    :data:`WARN` and :data:`MODERATE`, and the 95th percentile of the out-of-range share under
    ``outside``."""
    rows = []
    for size in sizes:
        values = np.concatenate([r["sizes"][size][psi] for r in records])
        shares = np.concatenate([r["sizes"][size][outside] for r in records])
        mean_rows = np.mean([r["sizes"][size]["rows"] for r in records])
        rows.append(
            [
                f"{size:,}",
                f"{mean_rows:,.0f}",
                f"{np.median(values):.3f}",
                f"{np.percentile(values, 95):.3f}",
                f"{np.mean(values > WARN):.0%}",
                f"{np.mean(values > MODERATE):.0%}",
                f"{np.percentile(shares, 95):.2%}",
            ]
        )
    return rows


def report(args, records: list[dict], seconds: float) -> str:
    name = "MQ2008" if args.dataset == "mq2008" else "OHSUMED"
    folds = ", ".join(str(f) for f in args.folds)
    lines = [
        f"{name} folds {folds}: each fold's training profile (`ltr train`'s "
        f"`feature_profile.json`, {records[0]['rows']:,} rows in fold {args.folds[0]}) against "
        f"{args.windows} windows per fold and size, each as many whole held-out lists as shown "
        "(from the validation and test partitions: other queries, no drift; "
        f"{records[0]['pool']} lists in fold {args.folds[0]}, and no window takes more than "
        f"half of them), drawn at random. Breaks are applied to one watched feature at a time "
        f"({records[0]['watched']} of them in fold {args.folds[0]}: those with at least 5 "
        f"decile bins in training). Total {seconds:.0f} s.",
        "",
        "No drift: how often chance alone passes the thresholds (largest PSI over all features "
        "in a window; pooled over folds).",
        "",
    ]
    sizes = [s for s in SIZES if all(s in r["sizes"] for r in records)]
    rows = quiet_rows(records, sizes, "top_psi", "top_range")
    lines.append(
        markdown_table(
            [
                "lists in window",
                "rows (mean)",
                "largest PSI, median",
                "largest PSI, 95th percentile",
                f"windows with a feature past {WARN}",
                f"past {MODERATE}",
                "largest out-of-range share, 95th percentile",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"Breaks: share of (window, feature) pairs where the broken feature's PSI passed {WARN} "
        f"(and, after the slash, where its PSI passed {WARN} or more than {RANGE:.0%} of its "
        "values fell outside the training range); pooled over folds.",
        "",
    ]
    kinds = list(records[0]["sizes"][sizes[0]]["caught"])
    rows = []
    for kind in kinds:
        row = [kind]
        for size in sizes:
            psi_only = np.mean([r["sizes"][size]["caught"][kind] for r in records])
            either = np.mean([r["sizes"][size]["by_range"][kind] for r in records])
            row.append(f"{psi_only:.0%} / {either:.0%}")
        rows.append(row)
    lines.append(markdown_table(["break", *(f"{s:,} lists" for s in sizes)], rows))
    return "\n".join(lines)


def run_benchmark(
    argv,
    *,
    name: str,
    what: str,
    doc: str,
    run_fold,
    report,
    add_options=None,
    variant=None,
) -> int:
    """The command line both drift benchmarks share: ``run_fold(root, fold, args)`` per fold,
    ``report(args, records, seconds)`` printed and written as section ``name`` (``name-ohsumed``
    for OHSUMED) titled ``what``. ``add_options(parser)`` adds a benchmark's own options;
    ``variant(args)`` returns a (section suffix, title words) pair for a run that is not the
    default one (``("", "")`` for the default)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--dataset", choices=["mq2008", "ohsumed"], default="mq2008")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--windows", type=int, default=200, help="windows per fold and size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    if add_options is not None:
        add_options(p)
    args = p.parse_args(argv)
    root = dataset_root(args.dataset, args.data_root)
    started = time.perf_counter()
    records = []
    for fold in args.folds:
        print(f"{args.dataset} fold {fold}", flush=True)
        records.append(run_fold(root, fold, args))
    body = report(args, records, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        suffix, words = variant(args) if variant is not None else ("", "")
        dataset = "MQ2008" if args.dataset == "mq2008" else "OHSUMED"
        write_section(
            f"{name}{suffix}{'' if args.dataset == 'mq2008' else f'-{args.dataset}'}",
            f"{what}: false alarms by window size, and breaks caught ({dataset}{words})",
            command_line(name, argv),
            body,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(
        argv, name="drift", what="Feature drift", doc=__doc__, run_fold=run_fold, report=report
    )


if __name__ == "__main__":
    raise SystemExit(main())
