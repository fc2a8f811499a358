"""Offline evaluation report: several systems on one test set, with uncertainty (``ltr report``).

Systems are ltr models (artifact dirs or MLflow URIs, scored through
:func:`ltr.predictor.load_predictor` and the same per-list scorer as ``ltr score``), external
score files, and optionally a LightGBM LambdaRank baseline trained on the given training data.

For each system and each empty-list convention (``empty=1``, ``empty=0``, ``dropped``) the
report holds every metric's mean with a percentile-bootstrap interval over queries; for each
system against the baseline, the mean difference with its interval, a paired randomisation test
and a paired t-test (:mod:`pipelines.stats`); the queries that gained and lost most on NDCG@10;
NDCG@k for k = 1..20 and a histogram of per-query NDCG@10 differences (PNG,
:mod:`pipelines.plots`). Everything goes to ``OUT/report.md`` and ``OUT/metrics.json``, and is
logged to MLflow as the artifacts and metrics of an evaluation run.

ERR uses one top grade for every system: ``max(2, largest label in the test data)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ltr.data.dataset import ListDataset, load_dataset
from ltr.errors import ConfigError, DataFormatError
from ltr.heldout import not_held_out_warning
from ltr.metrics import CONVENTIONS, DEFAULT_METRICS, evaluate_grouped_per_query
from pipelines import stats
from pipelines.plots import plot_delta_histogram, plot_ndcg_at_k, safe_name

CURVE_DEPTH = 20
GAIN_METRIC = "ndcg@10"


@dataclass
class System:
    """Something that scored the test rows: ``scores [N]`` aligned with the data rows."""

    name: str
    kind: str  # "model", "scores" or "lightgbm"
    source: str
    scores: np.ndarray


@dataclass
class ReportConfig:
    """Inputs of :func:`run_report` (the ``ltr report`` flags)."""

    data: list[str]
    output_dir: str
    models: list[tuple[str, str]] = field(default_factory=list)
    score_files: list[tuple[str, str]] = field(default_factory=list)
    lightgbm_train: list[str] = field(default_factory=list)
    lightgbm_rounds: int = 200
    lightgbm_threads: int = 2
    baseline: str | None = None
    """Name of the baseline system (default: the LightGBM baseline if any, else the first)."""
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    convention: str = "empty=1"
    """Convention for the significance table, the gains/losses and the plots."""
    ties: str = "pessimistic"
    confidence: float = 0.95
    n_bootstrap: int = 1000
    n_permutations: int = 10_000
    seed: int = 0
    top_queries: int = 10
    group_file: str | None = None
    backend: str = "torch"
    batch_size: int = 128
    context_columns: list[str] | None = None
    """Models with a context vector (Parquet data): the columns holding it (default: the columns
    the model was trained with, else the list column ``context``)."""
    mlflow: bool = True
    experiment: str = "ltr-reports"
    tracking_uri: str | None = None
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ConfigError(
                f"unknown convention {self.convention!r}; valid: {', '.join(CONVENTIONS)}"
            )
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must lie in (0, 1), got {self.confidence}")


@dataclass
class ReportResult:
    output_dir: Path
    report: dict
    run_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    """Lines for stderr: models evaluated on data they saw in training."""


def model_scores(predictor, data: ListDataset, *, batch_size: int) -> np.ndarray:
    """Scores of a loaded :class:`ltr.predictor.Predictor` on ``data``, ``[N]`` float64.

    The same per-list scorer as ``ltr score`` (:func:`pipelines.lists.score_flat`). As in
    ``ltr evaluate``, a model with initial ranks gets each list's input order and a model with a
    context vector gets the data's (see :func:`context_inputs`).
    """
    from pipelines.lists import score_flat

    manifest = predictor.loaded.manifest
    width = manifest.num_features
    if width != data.num_features:
        raise DataFormatError(
            f"model {predictor.loaded.source} expects {width} features but the test data has "
            f"{data.num_features}"
        )
    context_dim = manifest.context_dim
    if context_dim != data.context_dim and context_dim:
        raise DataFormatError(
            f"model {predictor.loaded.source} needs a context vector of {context_dim} values per "
            f"query but the test data were read with {data.context_dim}"
        )
    scores = score_flat(
        predictor,
        data.features,
        data.offsets,
        initial_rank=data.input_ranks if manifest.uses_initial_rank else None,
        context=data.context if context_dim else None,
        batch_size=batch_size,
    )
    return scores.astype(np.float64)


def context_inputs(config: ReportConfig, predictors: Sequence):
    """The context columns to read for the models of a report (None when none takes one)."""
    from ltr.data.list_inputs import resolve

    takers = [p for p in predictors if p.loaded.manifest.context_dim]
    if not takers:
        if config.context_columns:
            raise ConfigError(
                "no model of the report takes a context vector; leave out --context-columns"
            )
        return None
    dims = {p.loaded.manifest.context_dim for p in takers}
    if len(dims) > 1:
        raise ConfigError(
            f"the models take context vectors of different sizes ({sorted(dims)}); report them "
            "separately"
        )
    manifest = takers[0].loaded.manifest
    return resolve(
        {"context_dim": dims.pop()},
        context_columns=config.context_columns,
        trained_context_columns=manifest.training.get("context_columns"),
    )


def file_scores(path: str, data: ListDataset) -> np.ndarray:
    """External scores for the data rows, ``[N]`` float64: a text file (one per line, in the
    data's row order) or Parquet with a ``score`` column (a file, or an ``ltr score`` output
    directory, local or Spark).

    Parquet scores with ``qid`` and ``doc_id`` columns are matched to the data's rows by
    (query id, document id) when the data has document ids and they are unique, so their row
    order does not matter; each key must occur once. Otherwise the scores must follow the data's
    row order, and a ``qid`` (and ``doc_id``) column is checked row by row.
    """
    p = Path(path)
    if not (p.is_dir() or p.suffix == ".parquet"):
        from ltr.cli.evaluate import read_scores

        return read_scores(p, data.num_rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p.glob("part-*.parquet")) if p.is_dir() else [p]
    if not files:
        files = sorted(x for x in p.glob("*.parquet") if not x.name.startswith(("_", ".")))
    if not files:
        raise DataFormatError(f"{path} holds no Parquet files")
    schema = pq.ParquetFile(files[0]).schema_arrow
    if schema.get_field_index("score") < 0:
        raise DataFormatError(f"{path} has no 'score' column")
    columns = ["score"] + [c for c in ("qid", "doc_id") if schema.get_field_index(c) >= 0]
    t = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    if len(t) != data.num_rows:
        raise DataFormatError(
            f"{path} holds {len(t)} scores but the test data has {data.num_rows} rows"
        )
    scores = t.column("score").to_numpy().astype(np.float64)
    if "qid" not in columns:
        return scores
    qids = np.asarray(t.column("qid").to_pylist(), dtype=object).astype(str)
    expected = np.repeat(data.qids.astype(str), data.list_lengths)
    has_docs = "doc_id" in columns and all(d is not None for d in data.doc_ids)
    if not has_docs:
        _check_row_order(path, "query", qids, expected)
        return scores
    docs = np.asarray(t.column("doc_id").to_pylist(), dtype=object).astype(str)
    data_docs = data.doc_ids.astype(str)
    import pandas as pd

    wanted = pd.MultiIndex.from_arrays([expected, data_docs])
    if not wanted.is_unique:  # keys cannot place the scores: the row order must
        _check_row_order(path, "query", qids, expected)
        _check_row_order(path, "document", docs, data_docs)
        return scores
    given = pd.MultiIndex.from_arrays([qids, docs])
    twice = given.duplicated()
    if twice.any():
        bad = int(np.flatnonzero(twice)[0])
        raise DataFormatError(
            f"{path}: query {str(qids[bad])!r} document {str(docs[bad])!r} has more than one score "
            f"(row {bad}); give one score per (qid, doc_id) of the test data"
        )
    position = given.get_indexer(wanted)  # data row -> its row in the scores
    if (position < 0).any():
        bad = int(np.flatnonzero(position < 0)[0])
        qid, doc = str(expected[bad]), str(data_docs[bad])
        raise DataFormatError(
            f"{path} has no score for query {qid!r} document {doc!r} (test data row {bad}); "
            "the scores must cover the test data's (qid, doc_id) pairs"
        )
    return scores[position]


def _check_row_order(path: str, what: str, got: np.ndarray, expected: np.ndarray) -> None:
    """Raise unless the scores' ``got`` ids equal the data's, row by row."""
    if not np.array_equal(got, expected):
        bad = int(np.flatnonzero(got != expected)[0])
        raise DataFormatError(
            f"{path}: row {bad} is {what} {str(got[bad])!r} but the test data has "
            f"{str(expected[bad])!r} there; scores must follow the data's row order"
        )


def lightgbm_scores(
    train_files: Sequence[str], data: ListDataset, *, rounds: int, seed: int, threads: int = 2
) -> np.ndarray:
    """Train LightGBM LambdaRank on ``train_files`` and score ``data``, ``[N]`` float64.

    Parameters: learning rate 0.05, 31 leaves, at least 20 rows per leaf, ``rounds`` rounds,
    deterministic with ``seed``.
    """
    import lightgbm as lgb

    train = load_dataset(list(train_files), num_features=data.num_features)
    params = {
        "objective": "lambdarank",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lgb.train(
        params, lgb.Dataset(train.features, train.labels, group=train.list_lengths), rounds
    )
    return booster.predict(data.features).astype(np.float64)


def build_systems(
    config: ReportConfig, data: ListDataset, predictors: Sequence | None = None
) -> list[System]:
    """Score the test data with every system named in ``config``.

    ``predictors`` are the loaded models of ``config.models`` (loaded here when not given).
    """
    if predictors is None:
        from ltr.predictor import load_predictor

        predictors = [load_predictor(src, config.backend) for _, src in config.models]
    systems = [
        System(name, "model", src, model_scores(p, data, batch_size=config.batch_size))
        for (name, src), p in zip(config.models, predictors, strict=True)
    ]
    systems += [
        System(name, "scores", src, file_scores(src, data)) for name, src in config.score_files
    ]
    if config.lightgbm_train:
        scores = lightgbm_scores(
            config.lightgbm_train,
            data,
            rounds=config.lightgbm_rounds,
            seed=config.seed,
            threads=config.lightgbm_threads,
        )
        systems.append(System("lightgbm", "lightgbm", ", ".join(config.lightgbm_train), scores))
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ConfigError(f"system names must be unique, got {names}; name them NAME=SOURCE")
    if not systems:
        raise ConfigError("nothing to compare: give --model, --scores or --lightgbm-baseline")
    return systems


def pick_baseline(config: ReportConfig, systems: list[System]) -> str:
    names = [s.name for s in systems]
    if config.baseline is not None:
        if config.baseline not in names:
            raise ConfigError(
                f"baseline {config.baseline!r} is not one of the systems: {', '.join(names)}"
            )
        return config.baseline
    return "lightgbm" if "lightgbm" in names else names[0]


def compute_report(config: ReportConfig, data: ListDataset, systems: list[System]) -> dict:
    """Every number of the report, as a JSON-ready dict (see the module docstring)."""
    baseline = pick_baseline(config, systems)
    max_grade = float(max(2.0, float(data.labels.max())))
    curve_metrics = [f"ndcg@{k}" for k in range(1, CURVE_DEPTH + 1)]
    wanted = list(dict.fromkeys([*config.metrics, GAIN_METRIC, *curve_metrics]))
    per_query: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # convention -> system -> metric
    for key, policy in CONVENTIONS.items():
        per_query[key] = {
            s.name: evaluate_grouped_per_query(
                s.scores,
                data.labels,
                data.offsets,
                metrics=wanted,
                empty=policy,
                ties=config.ties,
                max_grade=max_grade,
            )
            for s in systems
        }
    boot = {"confidence": config.confidence, "n_resamples": config.n_bootstrap, "seed": config.seed}
    metrics = {
        key: {
            name: {m: stats.bootstrap_ci(values[m], **boot).to_json() for m in config.metrics}
            for name, values in by_system.items()
        }
        for key, by_system in per_query.items()
    }
    significance = {
        key: {
            s.name: {
                m: stats.compare(
                    by_system[s.name][m],
                    by_system[baseline][m],
                    confidence=config.confidence,
                    n_bootstrap=config.n_bootstrap,
                    n_permutations=config.n_permutations,
                    seed=config.seed,
                ).to_json()
                for m in config.metrics
            }
            for s in systems
            if s.name != baseline
        }
        for key, by_system in per_query.items()
    }
    primary = per_query[config.convention]
    return {
        "data": {
            "files": list(config.data),
            "rows": data.num_rows,
            "queries": len(data),
            "queries_without_relevant": int(data.stats()["queries_without_relevant"]),
        },
        "systems": [{"name": s.name, "kind": s.kind, "source": s.source} for s in systems],
        "baseline": baseline,
        "settings": {
            "metrics": list(config.metrics),
            "convention": config.convention,
            "ties": config.ties,
            "err_max_grade": max_grade,
            "confidence": config.confidence,
            "n_bootstrap": config.n_bootstrap,
            "n_permutations": config.n_permutations,
            "seed": config.seed,
        },
        "metrics": metrics,
        "significance": significance,
        "ndcg_curve": {
            key: {
                name: [float(np.nanmean(v[m])) for m in curve_metrics]
                for name, v in by_system.items()
            }
            for key, by_system in per_query.items()
        },
        "queries": {
            s.name: stats.gains_and_losses(
                primary[s.name][GAIN_METRIC],
                primary[baseline][GAIN_METRIC],
                data.qids,
                top=config.top_queries,
            )
            for s in systems
            if s.name != baseline
        },
        "_per_query_primary": primary,  # for plots; removed before writing
    }


def run_report(config: ReportConfig) -> ReportResult:
    """Score, compute, plot, write ``report.md`` + ``metrics.json`` and log to MLflow."""
    import json

    from ltr.predictor import load_predictor
    from pipelines.report_md import render_markdown

    predictors = [load_predictor(src, config.backend) for _, src in config.models]
    warnings = [
        line
        for (name, _), p in zip(config.models, predictors, strict=True)
        if (
            line := not_held_out_warning(
                p.loaded.manifest.training, config.data, "its metrics", f"model {name!r}"
            )
        )
    ]
    width = predictors[0].loaded.manifest.num_features if predictors else None
    data = load_dataset(
        config.data,
        group_file=config.group_file,
        num_features=width,
        context=context_inputs(config, predictors),
    )
    systems = build_systems(config, data, predictors)
    report = compute_report(config, data, systems)
    primary = report.pop("_per_query_primary")
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    conv = config.convention
    plots = {"ndcg_at_k": "ndcg_at_k.png", "delta": {}}
    plot_ndcg_at_k(report["ndcg_curve"][conv], out / plots["ndcg_at_k"], title=f"NDCG@k ({conv})")
    baseline = report["baseline"]
    for s in systems:
        if s.name == baseline:
            continue
        name = f"delta_{GAIN_METRIC.replace('@', '')}_{safe_name(s.name)}.png"
        delta = primary[s.name][GAIN_METRIC] - primary[baseline][GAIN_METRIC]
        plot_delta_histogram(delta, out / name, model=s.name, baseline=baseline)
        plots["delta"][s.name] = name
    report["plots"] = plots
    (out / "metrics.json").write_text(json.dumps(_json_safe(report), indent=1))
    (out / "report.md").write_text(render_markdown(report))
    result = ReportResult(out, report, warnings=warnings)
    if config.mlflow:
        result.run_id = _log_to_mlflow(config, report, out)
    return result


def _log_to_mlflow(config: ReportConfig, report: dict, out: Path) -> str:
    from ltr.tracking import start_run

    with start_run(
        experiment=config.experiment,
        run_name=config.run_name or f"report vs {report['baseline']}",
        tracking_uri=config.tracking_uri,
        tags={"ltr.run_type": "evaluation", "ltr.baseline": report["baseline"]},
    ) as run:
        run.log_params(
            {
                "data": ", ".join(config.data),
                "baseline": report["baseline"],
                "systems": ", ".join(s["name"] for s in report["systems"]),
                **{f"system.{safe_name(s['name'])}": s["source"] for s in report["systems"]},
                "ties": config.ties,
                "convention": config.convention,
                "n_bootstrap": config.n_bootstrap,
                "n_permutations": config.n_permutations,
            }
        )
        flat: dict[str, float] = {}
        for conv, by_system in report["metrics"].items():
            for name, values in by_system.items():
                for metric, ci in values.items():
                    flat[f"{safe_name(name)}/{conv}/{metric}"] = ci["mean"]
        for name, values in report["significance"][config.convention].items():
            for metric, test in values.items():
                flat[f"{safe_name(name)}/delta/{metric}"] = test["delta"]
                flat[f"{safe_name(name)}/p_randomization/{metric}"] = test["p_randomization"]
        run.log_metrics(flat)
        run.log_artifacts(out, artifact_path="report")
        return run.run_id


def _json_safe(value):
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
