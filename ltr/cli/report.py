"""``ltr report``: compare models and baselines on one test set, with CIs, tests and plots."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="evaluation report: metrics with CIs, significance vs a baseline, plots",
        description="Compare ltr models (artifact dirs or MLflow URIs), external score files and "
        "optionally a LightGBM LambdaRank baseline on one test set. Writes OUT/report.md (with "
        "PNG plots) and OUT/metrics.json, and logs them to MLflow as an evaluation run. Metrics "
        "come with percentile-bootstrap intervals over queries under all three conventions for "
        "lists with no relevant item; each system is tested against the baseline with a paired "
        "randomisation test and a paired t-test.",
        epilog="example: ltr report --data data/mq2008/S5.txt.xz --model setrank=runs/x/model "
        "--lightgbm-baseline --train data/mq2008/S1.txt.xz --output reports/s5",
    )
    p.add_argument("--data", nargs="+", required=True, help="test data (LETOR or Parquet)")
    p.add_argument("--output", required=True, help="report directory")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]SOURCE",
        help="an ltr model: artifact dir or MLflow URI (repeatable)",
    )
    p.add_argument(
        "--scores",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="external scores for the data rows: text, one per line in the data's row order, or "
        "Parquet with a `score` column such as an `ltr score` output, matched to the data's rows "
        "by its qid and doc_id columns when it has them (repeatable)",
    )
    p.add_argument(
        "--lightgbm-baseline",
        action="store_true",
        help="train LightGBM LambdaRank on --train and add it as system `lightgbm`",
    )
    p.add_argument("--train", nargs="+", default=[], help="training data for the LightGBM baseline")
    p.add_argument("--lightgbm-rounds", type=int, default=200, help="boosting rounds")
    p.add_argument("--lightgbm-threads", type=int, default=2, help="LightGBM threads")
    p.add_argument(
        "--baseline", help="system to test against (default: lightgbm if given, else the first)"
    )
    p.add_argument("--metrics", nargs="+", help="default: ndcg@1/3/5/10 map mrr err@10")
    p.add_argument(
        "--convention",
        choices=["empty=1", "empty=0", "dropped"],
        default="empty=1",
        help="convention for significance, per-query gains/losses and plots",
    )
    p.add_argument("--ties", choices=["pessimistic", "position"], default="pessimistic")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--permutations", type=int, default=10_000, help="randomisation resamples")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-queries", type=int, default=10, help="queries listed as gained/lost")
    p.add_argument("--group-file", help="LightGBM-style group sizes for the test data")
    p.add_argument(
        "--context-columns",
        nargs="+",
        metavar="COLUMN",
        help="models with a context vector (Parquet data): one list column of C numbers, or C "
        "numeric columns (default: the columns the model was trained with, else context)",
    )
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--experiment", default="ltr-reports", help="MLflow experiment")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--run-name", help="MLflow run name")
    p.set_defaults(func=run)


def parse_named(value: str, *, need_name: bool) -> tuple[str, str]:
    """``NAME=SOURCE`` -> (NAME, SOURCE); a bare SOURCE is named after its last path part."""
    from pathlib import PurePath

    from ltr.errors import ConfigError

    name, sep, source = value.partition("=")
    if sep and name and "/" not in name and ":" not in name:
        return name, source
    if need_name:
        raise ConfigError(f"give external scores as NAME=FILE, got {value!r}")
    if ":/" in value:  # an MLflow URI: models:/name@alias -> name@alias, runs:/id/model -> id/model
        return value.split(":/", 1)[1].strip("/") or value, value
    return PurePath(value.rstrip("/")).name or value, value


def run(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError
    from ltr.metrics import DEFAULT_METRICS
    from pipelines.report import ReportConfig, run_report

    if args.lightgbm_baseline and not args.train:
        raise ConfigError("--lightgbm-baseline needs --train with the training data")
    if args.train and not args.lightgbm_baseline:
        raise ConfigError("--train is only used with --lightgbm-baseline")
    config = ReportConfig(
        data=list(args.data),
        output_dir=args.output,
        models=[parse_named(m, need_name=False) for m in args.model],
        score_files=[parse_named(s, need_name=True) for s in args.scores],
        lightgbm_train=list(args.train) if args.lightgbm_baseline else [],
        lightgbm_rounds=args.lightgbm_rounds,
        lightgbm_threads=args.lightgbm_threads,
        baseline=args.baseline,
        metrics=list(args.metrics or DEFAULT_METRICS),
        convention=args.convention,
        ties=args.ties,
        confidence=args.confidence,
        n_bootstrap=args.bootstrap,
        n_permutations=args.permutations,
        seed=args.seed,
        top_queries=args.top_queries,
        group_file=args.group_file,
        backend=args.backend,
        context_columns=args.context_columns,
        mlflow=not args.no_mlflow,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        run_name=args.run_name,
    )
    result = run_report(config)
    for line in result.warnings:
        print(line, file=sys.stderr)
    report = result.report
    conv = config.convention
    print(f"report: {result.output_dir / 'report.md'} (baseline: {report['baseline']})")
    metric = "ndcg@10" if "ndcg@10" in config.metrics else config.metrics[0]
    for name, values in report["metrics"][conv].items():
        ci = values[metric]
        interval = f"[{ci['low']:.4f}, {ci['high']:.4f}]"
        print(f"  {name:<20} {metric} {ci['mean']:.4f} {interval} ({conv})")
    for name, values in report["significance"][conv].items():
        t = values[metric]
        print(
            f"  {name} - {report['baseline']}: {t['delta']:+.4f}, p = {t['p_randomization']:.4g} "
            f"(randomisation), {t['p_ttest']:.4g} (t-test)"
        )
    if result.run_id:
        print(f"MLflow evaluation run: {result.run_id}")
    return 0
