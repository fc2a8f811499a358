"""k-fold cross-validation as a pipeline: one MLflow parent run, one nested child run per fold.

Fold ``k`` is the LETOR fold of ``data.letor_root`` (train on three partitions, validate on the
next, test on the last; see :mod:`ltr.data.folds`). Each fold is an ordinary
:func:`ltr.train.run.train` run, nested under the parent; its model is saved under
``output_dir/fold<k>/model`` and logged to the run only with ``log_models`` (never registered). The
parent run holds the resolved config, every fold's test metrics (metric ``test/<conv>/<name>``
with ``step = fold``), their mean and sample standard deviation (``ddof = 1``) as
``cv/<conv>/<name>/mean`` and ``.../sd``, and ``cv_results.json`` / ``cv_results.md``.
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

import numpy as np

from ltr.config import to_dict
from ltr.errors import ConfigError
from ltr.train.config import TrainConfig

NUM_FOLDS = 5


@dataclass
class CVResult:
    """Per-fold test metrics and their summary."""

    folds: list[int]
    fold_metrics: list[dict[str, dict[str, float]]]
    """``[fold] -> {convention: {metric: value}}``."""
    summary: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """``{convention: {metric: {"mean", "sd"}}}``."""
    parent_run_id: str | None = None
    child_run_ids: list[str] = field(default_factory=list)


def summarize(fold_metrics: Sequence[dict[str, dict[str, float]]]) -> dict:
    """Mean and sample standard deviation (``ddof = 1``; NaN for one fold) of each metric."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for conv in fold_metrics[0]:
        out[conv] = {}
        for metric in fold_metrics[0][conv]:
            values = np.array([m[conv][metric] for m in fold_metrics], dtype=np.float64)
            sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
            out[conv][metric] = {"mean": float(values.mean()), "sd": sd}
    return out


def format_summary(summary: dict, folds: Sequence[int]) -> str:
    """Markdown table: metrics by convention, ``mean ± sd``."""
    convs = list(summary)
    metrics = list(summary[convs[0]])
    lines = [
        f"{len(folds)}-fold cross-validation (folds {', '.join(map(str, folds))}), test metrics, "
        "mean ± sd over folds",
        "",
        "| metric | " + " | ".join(convs) + " |",
        "|---|" + "---|" * len(convs),
    ]
    for m in metrics:
        cells = [f"{summary[c][m]['mean']:.4f} ± {summary[c][m]['sd']:.4f}" for c in convs]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fold_config(config: TrainConfig, fold: int, *, log_model: bool = False) -> TrainConfig:
    """The training config of one fold: its LETOR fold, its own output dir, a nested run.

    Fold models are saved under ``output_dir/fold<k>/model``; they are logged to MLflow only
    with ``log_model`` (never registered).
    """
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, fold=fold, train=[], valid=[], test=[]),
        tracking=dataclasses.replace(
            config.tracking,
            nested=True,
            run_name=f"fold{fold}",
            registered_model=None,
            alias=None,
            log_model=log_model,
        ),
        output_dir=str(Path(config.output_dir) / f"fold{fold}"),
    )


def run_cv(
    config: TrainConfig,
    *,
    folds: Sequence[int] | None = None,
    log_models: bool = False,
    verbose: bool = False,
) -> CVResult:
    """Train and test every fold; log the folds as nested MLflow runs under one parent."""
    from ltr.train.run import train

    folds = list(folds or range(1, NUM_FOLDS + 1))
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
    result = CVResult(folds=folds, fold_metrics=[])
    with ExitStack() as stack:
        parent = None
        if config.tracking.enabled:
            from ltr.tracking import start_parent_run

            parent = stack.enter_context(
                start_parent_run(config.tracking, f"cv {len(folds)} folds", "cross-validation")
            )
            parent.log_config(to_dict(config))
            parent.log_params({"cv.folds": ",".join(map(str, folds))})
            result.parent_run_id = parent.run_id
        for fold in folds:
            fold_result = train(fold_config(config, fold, log_model=log_models), verbose=verbose)
            if not fold_result.test_metrics:
                raise ConfigError(f"fold {fold} produced no test metrics")
            result.fold_metrics.append(fold_result.test_metrics)
            if fold_result.run_id:
                result.child_run_ids.append(fold_result.run_id)
            if parent is not None:
                parent.log_metrics(
                    {
                        f"test/{conv}/{metric}": value
                        for conv, values in fold_result.test_metrics.items()
                        for metric, value in values.items()
                    },
                    step=fold,
                )
        result.summary = summarize(result.fold_metrics)
        if parent is not None:
            parent.log_metrics(
                {
                    f"cv/{conv}/{metric}/{stat}": value
                    for conv, values in result.summary.items()
                    for metric, pair in values.items()
                    for stat, value in pair.items()
                }
            )
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "cv_results.json").write_text(
                    json.dumps(
                        _finite_or_none(
                            {
                                "folds": folds,
                                "fold_metrics": result.fold_metrics,
                                "summary": result.summary,
                            }
                        ),
                        indent=1,
                    )
                )
                Path(tmp, "cv_results.md").write_text(format_summary(result.summary, folds))
                parent.log_artifacts(tmp)
    return result


def _finite_or_none(value):
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value
