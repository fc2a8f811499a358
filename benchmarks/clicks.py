"""Learning from simulated clicks on MQ2008: does IPS recover what position bias hides?

For each LETOR fold and each position-bias severity ``eta``:

1. ``ltr clicks simulate``: users (``--sessions`` per query) see the logging ranker's rankings
   (one feature, BM25 of the whole document, ``f25``, sampled Plackett-Luce with
   ``--temperature``) of the fold's training and validation queries, and click under the
   position-based model (examination ``(1/k)^eta``, click noise 0.1, grades 0-2);
2. ``ltr clicks propensity``: EM estimates the examination probabilities from the training log
   (its error against ``(1/k)^eta`` is reported);
3. ``ltr clicks labels``: training and validation labels three ways: click-through rates
   (naive), IPS with the true propensities, IPS with the EM estimate;
4. the click config (``configs/clicks/setrank_ips.yaml``: default SetRank, softmax loss) is
   trained on each with ``--seeds`` seeds, and tested on the fold's test partition with its
   judgments, which no click-trained model sees. The same config trained on judgments and the
   logging ranker itself frame the numbers.

    python -m benchmarks.clicks                          # fold 1, eta 1 and 2, 3 seeds
    python -m benchmarks.clicks --folds 1 --etas 1 --seeds 0 --max-epochs 3 --no-write

MQ2008 is read from the bundled ``data/mq2008`` (``--data-root`` for another copy).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import HEADLINE, REPO_ROOT, evaluate, load_fold
from benchmarks.tuning import mean_sd

SECTION = "clicks"
CONFIG = "configs/clicks/setrank_ips.yaml"
VARIANTS = ("naive", "ips-true", "ips-em")


def train_on(
    train: Path | list[str], valid: Path | list[str], fold, out: Path, seed: int, extra: dict
) -> dict[str, Any]:
    """Train the click config on ``train``/``valid`` files; test NDCG on the judged test fold."""
    from ltr.artifact import load_model
    from ltr.inference import score_lists
    from ltr.train.config import load_train_config
    from ltr.train.run import train as run_train

    as_list = lambda v: [str(p) for p in v] if isinstance(v, list) else [str(v)]  # noqa: E731
    config = load_train_config(
        REPO_ROOT / CONFIG,
        {
            "data.train": as_list(train),
            "data.valid": as_list(valid),
            "data.test": [],
            "tracking.enabled": False,
            "trainer.progress_bar": False,
            "trainer.seed": seed,
            "output_dir": str(out),
            **extra,
        },
    )
    started = time.perf_counter()
    result = run_train(config, verbose=False)
    model = load_model(result.artifact_dir).model
    test = evaluate(score_lists(model, fold.test), fold.test)
    return {
        "ndcg10": test[HEADLINE]["ndcg@10"],
        "seconds": time.perf_counter() - started,
        "best_epoch": result.best_epoch,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1])
    parser.add_argument("--etas", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    import torch

    from ltr.clicks.labels import click_labels, write_labelled
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.model import PositionBasedModel
    from ltr.clicks.propensity import Propensity, estimate_em
    from ltr.clicks.simulate import logging_scores, simulate_clicks

    torch.set_num_threads(args.threads)
    extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
    results: dict[str, list[float]] = {}
    em_rows, started = [], time.perf_counter()

    def record(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    runs = itertools.count()
    with tempfile.TemporaryDirectory(prefix="ltr-bench-clicks-") as tmp:
        work = Path(tmp)
        for number in args.folds:
            fold = load_fold(args.data_root, number)
            logging = logging_scores(fold.test, feature=args.ranker_feature)
            record("logging", evaluate(logging, fold.test)[HEADLINE]["ndcg@10"])
            for seed in args.seeds:
                print(f"fold {number}: judged, seed {seed}", file=sys.stderr)
                judged = [work / f"f{number}-{p}.parquet" for p in ("train", "valid")]
                for part, path in zip((fold.train, fold.valid), judged, strict=True):
                    _write_judged(part, path)
                run = train_on(judged[0], judged[1], fold, work / f"run-{next(runs)}", seed, extra)
                record("judged", run["ndcg10"])
            for eta in args.etas:
                model = PositionBasedModel(eta=eta, noise=0.1, max_grade=2.0)
                logs = {}
                for offset, (part, data) in enumerate(
                    (("train", fold.train), ("valid", fold.valid))
                ):
                    logs[part] = work / f"f{number}-eta{eta:g}-{part}-log.parquet"
                    simulate_clicks(
                        data,
                        logging_scores(data, feature=args.ranker_feature),
                        logs[part],
                        model=model,
                        sessions=args.sessions,
                        temperature=args.temperature,
                        seed=1000 * number + offset,
                        progress=False,
                    )
                t0 = time.perf_counter()
                train_log = read_log(logs["train"])
                em = estimate_em(aggregate(train_log))
                truth = Propensity.formula(eta)
                top = min(10, len(em.theta))
                error = np.abs(np.array(em.theta[:top]) - truth.at(np.arange(1, top + 1)))
                em_rows.append(
                    [
                        number,
                        f"{eta:g}",
                        em.iterations,
                        f"{time.perf_counter() - t0:.1f}",
                        f"{error.max():.4f}",
                        f"{em.theta[1]:.3f} / {truth.at(np.array([2]))[0]:.3f}",
                        f"{em.theta[4]:.3f} / {truth.at(np.array([5]))[0]:.3f}",
                    ]
                )
                props = {"naive": None, "ips-true": truth, "ips-em": em}
                for variant, prop in props.items():
                    files = {}
                    for part, data in (("train", fold.train), ("valid", fold.valid)):
                        log = train_log if part == "train" else read_log(logs[part])
                        files[part] = work / f"f{number}-eta{eta:g}-{variant}-{part}.parquet"
                        write_labelled(log, click_labels(log, prop), data, files[part])
                    for seed in args.seeds:
                        print(
                            f"fold {number}, eta {eta:g}: {variant}, seed {seed}", file=sys.stderr
                        )
                        run = train_on(
                            files["train"],
                            files["valid"],
                            fold,
                            work / f"run-{next(runs)}",
                            seed,
                            extra,
                        )
                        record(f"{variant}@{eta:g}", run["ndcg10"])

    body = _report(args, results, em_rows, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        write_section(
            SECTION,
            "Learning from simulated clicks (MQ2008)",
            command_line("clicks", argv),
            body,
        )
    return 0


def _write_judged(data, path: Path) -> None:
    from ltr.data.parquet import ParquetListWriter
    from ltr.data.svmlight import RowChunk

    chunk = RowChunk(data.qids[data.query_of_row], data.doc_ids, data.labels, data.features)
    with ParquetListWriter(path, data.num_features, feature_names=data.feature_names) as w:
        w.write(chunk)


def _report(args, results: dict[str, list[float]], em_rows: list, seconds: float) -> str:
    runs = f"{len(args.folds)} fold(s) × {len(args.seeds)} seed(s)"
    lines = [
        f"MQ2008 folds {', '.join(map(str, args.folds))}; logging ranker `{args.ranker_feature}` "
        f"(BM25 of the whole document), Plackett-Luce temperature {args.temperature:g}; "
        f"{args.sessions} simulated sessions per training and validation query; position-based "
        "clicks with examination (1/k)^eta and click noise 0.1. Every SetRank model is "
        f"`{CONFIG}` (softmax loss), trained with seeds {' '.join(map(str, args.seeds))}, "
        "selected on validation labels of its own kind, and tested on the fold's judged test "
        f"partition. Test NDCG@10 (lists with no relevant document = 1), mean ± sd over "
        f"{runs}. Total {seconds / 60:.0f} min.",
        "",
    ]
    rows = [
        ["logging ranker (f25)", "—", mean_sd(results["logging"])],
        ["SetRank on judgments", "—", mean_sd(results["judged"])],
    ]
    names = {
        "naive": "SetRank on click-through rates (naive)",
        "ips-true": "SetRank on IPS labels, true propensities",
        "ips-em": "SetRank on IPS labels, EM propensities",
    }
    for eta in args.etas:
        for variant in VARIANTS:
            rows.append([names[variant], f"{eta:g}", mean_sd(results[f"{variant}@{eta:g}"])])
    lines.append(markdown_table(["model", "eta", "test NDCG@10"], rows))
    lines.append("")
    for eta in args.etas:
        for variant in ("ips-true", "ips-em"):
            gains = [
                a - b
                for a, b in zip(
                    results[f"{variant}@{eta:g}"], results[f"naive@{eta:g}"], strict=True
                )
            ]
            won = sum(g > 0 for g in gains)
            lines.append(
                f"- eta {eta:g}, {names[variant]} − naive: {mean_sd(gains)} "
                f"(better in {won} of {len(gains)} runs, paired by fold and seed)"
            )
    lines += [
        "",
        "EM propensity estimates from each training log, against (1/k)^eta:",
        "",
        markdown_table(
            [
                "fold",
                "eta",
                "EM steps",
                "EM s",
                "largest error, positions 1-10",
                "theta_2 est / true",
                "theta_5 est / true",
            ],
            em_rows,
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
