"""k-fold cross-validation as a pipeline: one MLflow parent run, one nested child run per training.

Fold ``k`` is the LETOR fold of ``data.letor_root`` (train on three partitions, validate on the
next, test on the last; see :mod:`ltr.data.folds`). Each training is an ordinary
:func:`ltr.train.run.train` run, nested under the parent. With one seed (the default: the
config's ``trainer.seed``) fold ``k``'s model is saved under ``output_dir/fold<k>/model``; with
``seeds`` K > 1 every fold is trained K times, with seeds ``trainer.seed``, +1, ... (as
``ltr tune --seeds``), under ``output_dir/fold<k>/seed<s>/model``, and the
fold's test metrics are the mean over its seeds (what one training gets on average). With
``ensemble`` the seeds of each fold are also combined into one ensemble
(:func:`ltr.ensemble.save_ensemble`, saved as ``output_dir/fold<k>/ensemble``) and tested on the
fold's test partition, so the report says what an ensemble gains over one seed on this data.
Models are logged to the runs only with ``log_models`` (never registered).

The parent run holds the resolved config, every fold's test metrics (metric
``test/<conv>/<name>`` with ``step = fold``; ``ensemble/test/...`` for ensembles), their mean and
sample standard deviation (``ddof = 1``) as ``cv/<conv>/<name>/mean`` and ``.../sd`` (and
``cv/.../seed_sd``, the mean over folds of the standard deviation over seeds;
``cv_ensemble/...`` and ``cv_gain/...`` for ensembles), and ``cv_results.json`` /
``cv_results.md``.

A cross-validation killed part way goes on with ``resume``: trainings that finished are read
back from the record each one leaves in its folder (``cv_training.json``), the one that was cut
off goes on from its last complete epoch (``ltr train --resume``), and the same parent run is
reopened. ``output_dir/cv_state.json`` holds the plan (config, folds, seeds, ensemble), which a
resumed run must repeat.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltr.config import to_dict
from ltr.errors import ConfigError
from ltr.train.config import TrainConfig
from pipelines.jobdir import write_json

NUM_FOLDS = 5
STATE = "cv_state.json"
TRAINING_RECORD = "cv_training.json"
ENSEMBLE_DIR = "ensemble"

Metrics = dict[str, dict[str, float]]
"""``{convention: {metric: value}}``."""


@dataclass
class CVResult:
    """Per-fold test metrics and their summary."""

    folds: list[int]
    fold_metrics: list[Metrics]
    """``[fold] -> {convention: {metric: value}}``: with several seeds, the mean over them."""
    summary: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """``{convention: {metric: {"mean", "sd"}}}`` (with several seeds also ``"seed_sd"``)."""
    seeds: list[int] = field(default_factory=list)
    """The seeds each fold was trained with; empty = once, with the config's seed."""
    seed_metrics: list[list[Metrics]] = field(default_factory=list)
    """``[fold][seed]`` test metrics (one entry per fold without ``seeds``)."""
    ensemble_metrics: list[Metrics] = field(default_factory=list)
    """``[fold]`` test metrics of the fold's ensemble of seeds (with ``ensemble``)."""
    ensemble_summary: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    gain_summary: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Ensemble minus the mean over seeds, per fold: ``{"mean", "sd", "won"}`` (folds where the
    ensemble is ahead)."""
    parent_run_id: str | None = None
    child_run_ids: list[str] = field(default_factory=list)
    reused: int = 0
    """Trainings read back from an earlier, interrupted process (``resume``)."""


def summarize(fold_metrics: Sequence[Metrics]) -> dict:
    """Mean and sample standard deviation (``ddof = 1``; NaN for one fold) of each metric."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for conv in fold_metrics[0]:
        out[conv] = {}
        for metric in fold_metrics[0][conv]:
            values = np.array([m[conv][metric] for m in fold_metrics], dtype=np.float64)
            sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
            out[conv][metric] = {"mean": float(values.mean()), "sd": sd}
    return out


def mean_metrics(runs: Sequence[Metrics]) -> Metrics:
    """The element-wise mean of several runs' metrics."""
    return {
        conv: {m: float(np.mean([r[conv][m] for r in runs])) for m in runs[0][conv]}
        for conv in runs[0]
    }


def difference(a: Metrics, b: Metrics) -> Metrics:
    """``a - b``, metric by metric."""
    return {conv: {m: a[conv][m] - b[conv][m] for m in a[conv]} for conv in a}


def _table(title: str, summary: dict, cell) -> list[str]:
    convs = list(summary)
    lines = [title, "", "| metric | " + " | ".join(convs) + " |", "|---|" + "---|" * len(convs)]
    for m in summary[convs[0]]:
        lines.append(f"| {m} | " + " | ".join(cell(summary[c][m]) for c in convs) + " |")
    return lines


def _mean_sd(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.4f} ± {stats['sd']:.4f}"


def format_summary(summary: dict, folds: Sequence[int], seeds: Sequence[int] = ()) -> str:
    """Markdown table: metrics by convention, ``mean ± sd`` over folds."""
    head = f"{len(folds)}-fold cross-validation (folds {', '.join(map(str, folds))})"
    if len(seeds) > 1:
        title = (
            f"{head}, seeds {', '.join(map(str, seeds))}: test metrics of one training, mean ± "
            "sd over folds of each fold's mean over seeds [mean sd over seeds within a fold]"
        )
        return (
            "\n".join(_table(title, summary, lambda s: f"{_mean_sd(s)} [{s['seed_sd']:.4f}]"))
            + "\n"
        )
    return (
        "\n".join(_table(f"{head}, test metrics, mean ± sd over folds", summary, _mean_sd)) + "\n"
    )


def format_result(result: CVResult) -> str:
    """The report of a cross-validation: the seeds' table, and with ensembles theirs and the
    gain over one seed."""
    text = format_summary(result.summary, result.folds, result.seeds)
    if not result.ensemble_metrics:
        return text
    n = len(result.folds)
    ensemble = _table(
        f"Ensemble of seeds {', '.join(map(str, result.seeds))} per fold: test metrics, mean ± "
        "sd over folds",
        result.ensemble_summary,
        _mean_sd,
    )
    gain = _table(
        "Ensemble − one training (the mean over seeds), per fold: mean ± sd over folds "
        "(folds where the ensemble is ahead)",
        result.gain_summary,
        lambda s: f"{s['mean']:+.4f} ± {s['sd']:.4f} ({s['won']}/{n})",
    )
    return "\n".join([text, *ensemble, "", *gain]) + "\n"


def fold_config(
    config: TrainConfig, fold: int, *, seed: int | None = None, log_model: bool = False
) -> TrainConfig:
    """The training config of one fold (and ``seed``): its LETOR fold, its own output dir, a
    nested run.

    Models are saved under ``output_dir/fold<k>/model`` (``output_dir/fold<k>/seed<s>/model``
    with a seed); they are logged to MLflow only with ``log_model`` (never registered).
    """
    folder = Path(config.output_dir) / f"fold{fold}"
    name = f"fold{fold}"
    trainer = config.trainer
    if seed is not None:
        folder, name = folder / f"seed{seed}", f"{name}-seed{seed}"
        trainer = dataclasses.replace(trainer, seed=seed)
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, fold=fold, train=[], valid=[], test=[]),
        trainer=trainer,
        tracking=dataclasses.replace(
            config.tracking,
            nested=True,
            run_name=name,
            registered_model=None,
            alias=None,
            log_model=log_model,
        ),
        output_dir=str(folder),
    )


def _check_plan(config: TrainConfig, folds: list[int], seeds: int, ensemble: bool) -> None:
    if config.data.letor_root is None:
        raise ConfigError(
            "cross-validation rotates LETOR partitions: set data.letor_root (a folder with "
            "S1..S5) instead of data.train/valid/test"
        )
    if config.data.train or config.data.valid or config.data.test:
        raise ConfigError(
            "leave data.train/valid/test empty for `ltr cv`; folds come from data.letor_root"
        )
    bad = [f for f in folds if not 1 <= f <= NUM_FOLDS]
    if bad or len(set(folds)) != len(folds):
        raise ConfigError(f"folds must be distinct numbers 1..{NUM_FOLDS}, got {folds}")
    if seeds < 1:
        raise ConfigError(f"seeds must be 1 or more trainings per fold, got {seeds}")
    if ensemble and seeds < 2:
        raise ConfigError("an ensemble needs two or more seeds per fold (--seeds 3, say)")


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    """The first key where two JSON-like values differ, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}{key}.")
    return f"{path.rstrip('.')}: {old!r} -> {new!r}"


def _start_state(output: Path, plan: dict, resume: bool, trainings: list[Path]) -> dict:
    """The job's state file: read back (and checked against ``plan``) with ``resume``, else
    written anew, with every stale training record of the plan's folders removed."""
    path = output / STATE
    plan = json.loads(json.dumps(plan, default=str))
    if resume:
        if not path.exists():
            raise ConfigError(
                f"nothing to resume: {path} does not exist; start the cross-validation without "
                "--resume"
            )
        state = json.loads(path.read_text())
        if state["plan"] != plan:
            raise ConfigError(
                f"--resume must repeat the interrupted cross-validation ({path}), but "
                f"{_first_difference(state['plan'], plan)}"
            )
        return state
    for folder in trainings:
        (folder / TRAINING_RECORD).unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    state = {"plan": plan, "parent_run_id": None, "logged_folds": []}
    write_json(path, state)
    return state


def _train_once(config: TrainConfig, resume: bool, verbose: bool) -> tuple[dict, bool]:
    """One training's ``{"test_metrics", "run_id"}``, and whether it was read back from an
    earlier process: with ``resume`` a finished training is not repeated and a cut-off one goes
    on from its last complete epoch."""
    from ltr.train.run import RESUME_CHECKPOINT, RESUME_DIR, train

    output = Path(config.output_dir)
    record = output / TRAINING_RECORD
    if resume and record.exists():
        return json.loads(record.read_text()), True
    cut_off = resume and (output / RESUME_DIR / RESUME_CHECKPOINT).exists()
    run = train(config, verbose=verbose, resume=cut_off)
    if not run.test_metrics:
        raise ConfigError(f"{config.tracking.run_name} produced no test metrics")
    done = {"test_metrics": run.test_metrics, "run_id": run.run_id, "epochs": run.epochs}
    write_json(record, done)
    return done, False


def fold_ensemble(
    config: TrainConfig, fold: int, models: Sequence[Path], combine: str = "zscore"
) -> Metrics:
    """Combine one fold's trained models into ``output_dir/fold<k>/ensemble`` and return its
    test metrics on the fold's test partition (the conventions and metrics of training)."""
    from ltr.artifact import load_model
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.ensemble import save_ensemble
    from ltr.inference import score_lists
    from ltr.metrics import evaluate_all_conventions
    from ltr.train.datamodule import split_files

    members = [load_model(path) for path in models]
    target = Path(config.output_dir) / f"fold{fold}" / ENSEMBLE_DIR
    module, manifest, _ = save_ensemble(members, target, combine)
    context = resolve(
        manifest.model_config, trained_context_columns=manifest.training.get("context_columns")
    )
    files = split_files(dataclasses.replace(config.data, fold=fold, train=[], valid=[], test=[]))
    test = load_dataset(files["test"], num_features=manifest.num_features, context=context)
    scores = score_lists(module, test, batch_size=config.data.eval_batch_size)
    return evaluate_all_conventions(
        scores.astype("float64"),
        test.labels,
        test.offsets,
        metrics=config.eval.metrics,
        max_grade=float(manifest.training["max_grade"]),
    )


def run_cv(
    config: TrainConfig,
    *,
    folds: Sequence[int] | None = None,
    seeds: int = 1,
    ensemble: bool = False,
    combine: str = "zscore",
    log_models: bool = False,
    resume: bool = False,
    verbose: bool = False,
) -> CVResult:
    """Train and test every fold (once per seed); log the trainings as nested MLflow runs under
    one parent. With ``ensemble`` each fold's seeds are also combined and tested; with
    ``resume`` an interrupted cross-validation into the same ``output_dir`` goes on."""
    folds = list(folds or range(1, NUM_FOLDS + 1))
    _check_plan(config, folds, seeds, ensemble)
    seed_values = [config.trainer.seed + k for k in range(seeds)] if seeds > 1 else []
    output = Path(config.output_dir)
    plan = {
        "config": to_dict(config),
        "folds": folds,
        "seeds": seeds,
        "ensemble": ensemble,
        "combine": combine,
    }
    configs = {
        fold: [
            fold_config(config, fold, seed=seed, log_model=log_models)
            for seed in (seed_values or [None])
        ]
        for fold in folds
    }
    trainings = [Path(c.output_dir) for cs in configs.values() for c in cs]
    state = _start_state(output, plan, resume, trainings)
    result = CVResult(folds=folds, fold_metrics=[], seeds=seed_values)
    with ExitStack() as stack:
        parent = None
        if config.tracking.enabled:
            from ltr.tracking import start_parent_run

            parent = stack.enter_context(
                start_parent_run(
                    config.tracking,
                    f"cv {len(folds)} folds",
                    "cross-validation",
                    state["parent_run_id"],
                )
            )
            if state["parent_run_id"] is None:
                parent.log_config(to_dict(config))
                parent.log_params(
                    {
                        "cv.folds": ",".join(map(str, folds)),
                        "cv.seeds": ",".join(map(str, seed_values or [config.trainer.seed])),
                        "cv.ensemble": ensemble,
                    }
                )
                state["parent_run_id"] = parent.run_id
                write_json(output / STATE, state)
            result.parent_run_id = parent.run_id
        for fold in folds:
            runs = []
            for training in configs[fold]:
                done, reused = _train_once(training, resume, verbose)
                result.reused += reused
                runs.append(done)
                if done["run_id"]:
                    result.child_run_ids.append(done["run_id"])
            per_seed = [r["test_metrics"] for r in runs]
            result.seed_metrics.append(per_seed)
            result.fold_metrics.append(mean_metrics(per_seed))
            logged = {
                f"test/{conv}/{metric}": value
                for conv, values in result.fold_metrics[-1].items()
                for metric, value in values.items()
            }
            if ensemble:
                models = [Path(c.output_dir) / "model" for c in configs[fold]]
                result.ensemble_metrics.append(fold_ensemble(config, fold, models, combine))
                logged.update(
                    {
                        f"ensemble/test/{conv}/{metric}": value
                        for conv, values in result.ensemble_metrics[-1].items()
                        for metric, value in values.items()
                    }
                )
            if parent is not None and fold not in state["logged_folds"]:
                parent.log_metrics(logged, step=fold)
                state["logged_folds"].append(fold)
                write_json(output / STATE, state)
        _summarize(result)
        if parent is not None:
            _log_summary(parent, result)
    return result


def _summarize(result: CVResult) -> None:
    result.summary = summarize(result.fold_metrics)
    if result.seeds:
        for conv, values in result.summary.items():
            for metric, stats in values.items():
                stats["seed_sd"] = float(
                    np.mean(
                        [
                            np.std([s[conv][metric] for s in fold], ddof=1)
                            for fold in result.seed_metrics
                        ]
                    )
                )
    if result.ensemble_metrics:
        result.ensemble_summary = summarize(result.ensemble_metrics)
        gains = [
            difference(e, m)
            for e, m in zip(result.ensemble_metrics, result.fold_metrics, strict=True)
        ]
        result.gain_summary = summarize(gains)
        for conv, values in result.gain_summary.items():
            for metric, stats in values.items():
                stats["won"] = sum(g[conv][metric] > 0 for g in gains)


def _log_summary(parent, result: CVResult) -> None:
    metrics = {}
    for prefix, summary in (
        ("cv", result.summary),
        ("cv_ensemble", result.ensemble_summary),
        ("cv_gain", result.gain_summary),
    ):
        metrics.update(
            {
                f"{prefix}/{conv}/{metric}/{stat}": value
                for conv, values in summary.items()
                for metric, stats in values.items()
                for stat, value in stats.items()
            }
        )
    parent.log_metrics(metrics)
    record = {
        "folds": result.folds,
        "seeds": result.seeds,
        "fold_metrics": result.fold_metrics,
        "summary": result.summary,
    }
    if result.seeds:
        record["seed_metrics"] = result.seed_metrics
    if result.ensemble_metrics:
        record.update(
            {
                "ensemble_metrics": result.ensemble_metrics,
                "ensemble_summary": result.ensemble_summary,
                "gain_summary": result.gain_summary,
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "cv_results.json").write_text(json.dumps(_finite_or_none(record), indent=1))
        Path(tmp, "cv_results.md").write_text(format_result(result))
        parent.log_artifacts(tmp)


def _finite_or_none(value):
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value
