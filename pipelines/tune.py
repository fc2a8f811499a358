"""Hyperparameter search (``ltr tune``): Optuna trials of :func:`ltr.train.run.train`, each an
MLflow run nested under one parent run.

A *search space* maps dotted config keys (as on the ``ltr train`` command line) to the values a
trial may take::

    optim.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    model.num_blocks: {type: int, low: 1, high: 3}
    model.d_model: [32, 64, 128]          # a list: one of these values

Every trial trains the base config with its values in ``<study_dir>/trials/<number>`` and is
scored by its best epoch's validation ``trainer.monitor`` (under ``eval.empty``'s convention),
the number ``ltr train`` selects checkpoints by. Optuna's TPE sampler (seeded with
``trainer.seed``) proposes the values; a median pruner stops a trial whose validation curve falls
below the median of earlier trials at the same epoch.

With ``seeds`` above 1, a trial trains that many times with successive ``trainer.seed`` values
and is scored by the mean: on a small validation set one seed's luck can decide which of two
close configurations wins (``docs/PIPELINES.md`` shows it happen on MQ2008). With ``folds``
(LETOR folds of ``data.letor_root``), it trains once per fold (and seed) and is scored by the
mean of each fold's validation score, as ``ltr cv`` rotates them.

The study lives in an Optuna storage (``<study_dir>/study.db``, SQLite, unless ``storage`` names
another database), so the same command run again goes on where it stopped: ``trials`` counts
finished trials (complete or pruned) over every run of the command. A trial whose process died
(no heartbeat for twice ``heartbeat`` seconds) is marked failed and tried again with the same
values, and its training goes on from its last complete epoch. Several processes may work on one
study at once when they share a storage that allows it (PostgreSQL, MySQL).

The best values, applied to the base config, are written to ``<study_dir>/best.yaml``, ready for
``ltr train --config``; the best trial's model is already saved in its trial folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import socket
import statistics
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ltr.config import apply_overrides, from_dict, load_yaml, to_dict
from ltr.errors import ConfigError, RegistryError
from ltr.train.config import TrainConfig
from pipelines.jobdir import write_json

KINDS = ("float", "int")
CONTROLLED = ("output_dir", "tracking", "eval", "trainer.monitor", "data.")
"""Keys a search space may not set: where trials go, how they are logged and scored, and which
data they see (``data.batch_size`` and ``data.max_list_length`` are the exceptions)."""
TUNABLE_DATA = ("data.batch_size", "data.max_list_length")
STUDY_DB = "study.db"
STUDY_MARK = "study.json"
"""Names the study whose trials a study folder holds."""
TRIAL_RESULT = "trial_result.json"
"""Written into a trial's (or seed's) folder once its training is scored: what a retried trial
reads back instead of training again."""
BEST_CONFIG = "best.yaml"
TRIALS_DIR = "trials"
FINISHED = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class Param:
    """One dimension of a search space."""

    key: str
    """Dotted config key, e.g. ``optim.lr``."""
    kind: str
    """``float``, ``int`` or ``choice``."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The trial's value of this parameter."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        """Values that together exercise the whole range (for checking the space up front)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take."""
        if self.kind == "choice":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        return self.step is None or float((value - self.low) / self.step).is_integer()

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        scale = ", log scale" if self.log else ""
        step = f", step {self.step}" if self.step else ""
        return f"{self.kind} in [{self.low}, {self.high}]{scale}{step}"


def parse_space(data: Any, where: str = "search space") -> list[Param]:
    """Search space from its YAML mapping (see the module docs); every mistake is a
    :class:`ConfigError` naming the key."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{where} must be a mapping of dotted config keys to ranges or lists of values, "
            f"got {data!r}"
        )
    return [_parse_param(str(key), spec, where) for key, spec in data.items()]


def _parse_param(key: str, spec: Any, where: str) -> Param:
    at = f"{where}: {key}"
    if key.startswith(CONTROLLED) and key not in TUNABLE_DATA:
        raise ConfigError(
            f"{at}: `ltr tune` sets this itself (output folders, tracking, scoring and data are "
            "fixed for a study; set them in the base config)"
        )
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{at}: the list of values is empty")
        for value in spec:
            if value is not None and not isinstance(value, bool | int | float | str):
                raise ConfigError(
                    f"{at}: a value to choose must be a number, string, boolean or null, "
                    f"got {value!r}"
                )
        if len(set(map(repr, spec))) != len(spec):
            raise ConfigError(f"{at}: the list of values repeats a value: {spec}")
        return Param(key, "choice", choices=tuple(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{at}: expected a list of values or a mapping with type, low and high, got {spec!r}"
        )
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "step"})
    if unknown:
        raise ConfigError(
            f"{at}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
            "(a range has type, low, high and optionally log or step)"
        )
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{at}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    missing = [name for name in ("low", "high") if name not in spec]
    if missing:
        raise ConfigError(f"{at}: a {kind} range needs {' and '.join(missing)}")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is None and name == "step":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{at}: {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{at}: {name} must be finite, got {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise ConfigError(f"{at}: {name} of an int range must be a whole number, got {value}")
    if low >= high:
        raise ConfigError(f"{at}: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{at}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{at}: a log-scale range must start above 0, got low {low}")
    if step is not None:
        if step <= 0:
            raise ConfigError(f"{at}: step must be positive, got {step}")
        if log:
            raise ConfigError(f"{at}: a range cannot have both log and step")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def load_space(path: str | Path) -> list[Param]:
    """Search space from a YAML file."""
    return parse_space(load_yaml(path), where=str(path))


def apply_params(config: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """``config`` with a trial's values set (validated like a config file)."""
    return from_dict(TrainConfig, apply_overrides(to_dict(config), dict(params)))


def check_space(config: TrainConfig, space: Sequence[Param]) -> None:
    """Refuse a space whose keys or values the base config cannot take, before any training:
    every parameter's extremes are applied one at a time and the result validated like a
    config file (the model's settings by its config class, the loss by the loss registry)."""
    from ltr.losses import build_loss
    from ltr.models import config_from_dict

    keys = [p.key for p in space]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"the search space names a key twice: {keys}")
    for param in space:
        for value in param.extremes():
            try:
                trial = apply_params(config, {param.key: value})
                model = {k: v for k, v in trial.model.items() if k != "name"}
                config_from_dict(trial.model["name"], {"num_features": 1, **model})
                build_loss(trial.loss)
            except (ConfigError, RegistryError) as exc:
                raise ConfigError(
                    f"search space key {param.key} = {value!r} does not fit the base config: {exc}"
                ) from None


def _config_values(config: TrainConfig, space: Sequence[Param]) -> list[tuple[Param, Any]]:
    """Each parameter of the space with the base config's value of its key (None: not set)."""
    flat = to_dict(config)
    found = []
    for param in space:
        node: Any = flat
        for part in param.key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        found.append((param, node))
    return found


def base_values(config: TrainConfig, space: Sequence[Param]) -> dict[str, Any]:
    """The base config's own values of the space's keys, those that lie in the space (the
    first trial of a new study)."""
    return {
        param.key: value
        for param, value in _config_values(config, space)
        if value is not None and param.contains(value)
    }


def outside_space(config: TrainConfig, space: Sequence[Param]) -> list[str]:
    """The base config's values of the space's keys that the space does not hold, described
    (``model.dropout = 0.1 (the space: ...)``); empty when the base config is a point of it."""
    return [
        f"{param.key} {'not set' if value is None else f'= {value!r}'} "
        f"(the space: {param.describe()})"
        for param, value in _config_values(config, space)
        if value is None or not param.contains(value)
    ]


def trial_config(
    config: TrainConfig,
    params: Mapping[str, Any],
    output_dir: Path,
    number: int,
    seed: int | None = None,
    fold: int | None = None,
):
    """What trial ``number`` trains: the base config with its values, in its own folder, as an
    MLflow run nested under the study's (its model is saved, not logged or registered). With
    ``seed`` (the k-th of a trial's seeds), ``trainer.seed`` moves on by ``seed``; with ``fold``,
    the trial trains on that LETOR fold."""
    trial = apply_params(config, params)
    name = f"trial {number}"
    if fold is not None:
        name += f" fold {fold}"
        trial = dataclasses.replace(trial, data=dataclasses.replace(trial.data, fold=fold))
    if seed is not None:
        name += f" seed {seed}"
        trial = dataclasses.replace(
            trial, trainer=dataclasses.replace(trial.trainer, seed=trial.trainer.seed + seed)
        )
    return dataclasses.replace(
        trial,
        tracking=dataclasses.replace(
            trial.tracking,
            nested=True,
            run_name=name,
            registered_model=None,
            alias=None,
            log_model=False,
        ),
        output_dir=str(output_dir),
    )


def objective_key(config: TrainConfig) -> tuple[str, str]:
    """``(convention, metric)`` of :class:`TrainResult.valid_metrics` that a trial is scored by."""
    from ltr.metrics.evaluate import CONVENTIONS
    from ltr.types import EmptyListPolicy

    policy = EmptyListPolicy(config.eval.empty)
    convention = next(name for name, p in CONVENTIONS.items() if p is policy)
    return convention, config.trainer.monitor


@dataclass
class TrialRow:
    """One trial of the study, as the summary table shows it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    epochs: int | None = None
    retry_of: int | None = None
    base: bool = False
    """The base config's own values (the first trial of a study)."""
    model: Path | None = None
    """The folder of its (first training's) saved model, once it completed."""


@dataclass
class TuneResult:
    """What a study holds after this run of ``ltr tune``."""

    study_name: str
    metric: str
    trials: list[TrialRow]
    best: TrialRow | None = None
    best_config: Path | None = None
    best_model: Path | None = None
    parent_run_id: str | None = None
    ran: int = 0
    """Trials run (to the end or pruned) by this call."""
    space: list[Param] = field(default_factory=list)


def _pruning_callback(trial, monitor: str):
    """A Lightning callback that reports every validation epoch to ``trial`` and stops the run
    (``trainer.should_stop``) when the pruner says so; ``.pruned_at`` is then that epoch."""
    from lightning.pytorch.callbacks import Callback

    class Pruning(Callback):
        pruned_at: int | None = None

        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get(monitor)
            if value is None:
                return
            epoch = trainer.current_epoch
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                self.pruned_at = epoch
                trainer.should_stop = True

    return Pruning()


def _fingerprint(
    config: TrainConfig, space: Sequence[Param], seeds: int, folds: Sequence[int] | None
) -> str:
    base = to_dict(config)
    base.pop("output_dir", None)
    base.pop("tracking", None)
    base.get("trainer", {}).pop("progress_bar", None)
    return json.dumps(
        {
            "config": base,
            "space": [dataclasses.asdict(p) for p in space],
            "seeds": seeds,
            "folds": list(folds or []),
        },
        sort_keys=True,
    )


def open_study(
    config: TrainConfig,
    space: Sequence[Param],
    study_dir: Path,
    *,
    study_name: str,
    storage: str | None,
    heartbeat: float,
    prune: bool,
    prune_startup: int = 5,
    prune_warmup: int = 5,
    seeds: int = 1,
    folds: Sequence[int] | None = None,
):
    """Create the study or load it to go on; refuse to go on with another config or space."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # The heartbeat and the retry of a dead process's trial are marked experimental in Optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study_dir.mkdir(parents=True, exist_ok=True)
    # Trials keep their models in <study_dir>/trials/<number>: one study per folder
    owner = study_dir / STUDY_MARK
    if owner.exists():
        held = json.loads(owner.read_text()).get("study")
        if held != study_name:
            raise ConfigError(
                f"{study_dir} holds the trials of study {held!r}, not {study_name!r}: give "
                "every study a --study-dir of its own"
            )
    else:
        write_json(owner, {"study": study_name})
    url = storage or f"sqlite:///{(study_dir / STUDY_DB).resolve()}"
    try:
        rdb = RDBStorage(
            url,
            heartbeat_interval=max(1, int(heartbeat)),
            grace_period=max(2, int(2 * heartbeat)),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                max_retry=3, inherit_intermediate_values=True
            ),
        )
    except Exception as exc:  # SQLAlchemy's errors (bad URL, missing driver, no server)
        raise ConfigError(f"cannot open the Optuna storage {url}: {exc}") from exc
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=prune_startup, n_warmup_steps=prune_warmup)
        if prune
        else optuna.pruners.NopPruner()
    )
    # A process that goes on with a study must not draw the values its predecessor drew: the
    # sampler's seed moves on with the trials already there (and with the process on a storage
    # that several processes may share at once).
    seed = config.trainer.seed + _trials_in(rdb, study_name)
    if storage is not None:
        seed += os.getpid()
    study = optuna.create_study(
        study_name=study_name,
        storage=rdb,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed % 2**32),
        pruner=pruner,
        load_if_exists=True,
    )
    fingerprint = _fingerprint(config, space, seeds, folds)
    known = study.user_attrs.get("ltr.fingerprint")
    if known is None:
        study.set_user_attr("ltr.fingerprint", fingerprint)
        if not study.trials and not outside_space(config, space):
            # The first trial is the base config itself: the study then measures its
            # candidates against it, and its best is never one it scored below the base.
            # A base config outside the space cannot be a trial (run_tuning says so).
            study.enqueue_trial(base_values(config, space), user_attrs={"ltr.base": True})
    elif known != fingerprint:
        raise ConfigError(
            f"study {study_name!r} in {url} was started with another base config, search "
            "space, seeds or folds; go on with the same ones, or start a new study in "
            "another --study-dir"
        )
    return study


def _trials_in(storage, study_name: str) -> int:
    """How many trials study ``study_name`` holds in ``storage`` (0 when there is none yet)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def run_tuning(
    config: TrainConfig,
    space: Sequence[Param],
    *,
    trials: int,
    study_dir: str | Path,
    study_name: str = "ltr-tune",
    storage: str | None = None,
    prune: bool = True,
    prune_startup: int = 5,
    prune_warmup: int = 5,
    heartbeat: float = 30.0,
    seeds: int = 1,
    folds: Sequence[int] | None = None,
    verbose: bool = False,
    progress: bool = False,
) -> TuneResult:
    """Run trials until the study holds ``trials`` finished ones (see the module docs).

    With ``prune``, a trial is stopped at an epoch when its validation score there is below the
    median of the earlier trials' at the same epoch, once ``prune_startup`` trials have finished
    and from epoch ``prune_warmup`` (counted from 0) on. ``verbose`` shows each trial's training
    progress; ``progress`` a bar over the trials. With ``seeds`` above 1 every trial trains
    that many times (``trainer.seed``, + 1, ...; in ``trials/<number>/seed<k>``) and is scored by
    the mean of their validation scores; with ``folds``, once per LETOR fold (and seed, in
    ``trials/<number>/fold<f>[/seed<k>]``), scored by the mean over all. The pruner follows the
    first training's curve.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from ltr.train.run import RESUME_CHECKPOINT, RESUME_DIR, train

    if trials < 1:
        raise ConfigError(f"trials must be at least 1, got {trials}")
    if prune_startup < 0 or prune_warmup < 0:
        raise ConfigError(
            f"prune_startup and prune_warmup must be 0 or more, got {prune_startup}, {prune_warmup}"
        )
    if seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds}")
    if folds:
        from pipelines.cv import NUM_FOLDS

        folds = list(folds)
        if config.data.letor_root is None or config.data.valid:
            raise ConfigError(
                "--folds rotates LETOR partitions: set data.letor_root (a folder with S1..S5) "
                "and leave data.train/valid/test empty"
            )
        if any(not 1 <= f <= NUM_FOLDS for f in folds) or len(set(folds)) != len(folds):
            raise ConfigError(f"folds must be distinct numbers 1..{NUM_FOLDS}, got {folds}")
    if heartbeat <= 0:
        raise ConfigError(f"heartbeat must be positive, got {heartbeat}")
    if not (config.data.valid or config.data.letor_root):
        raise ConfigError(
            "tuning scores trials on validation data: set data.valid or data.letor_root"
        )
    check_space(config, space)
    study_dir = Path(study_dir)
    study = open_study(
        config,
        space,
        study_dir,
        study_name=study_name,
        storage=storage,
        heartbeat=heartbeat,
        prune=prune,
        prune_startup=prune_startup,
        prune_warmup=prune_warmup,
        seeds=seeds,
        folds=folds,
    )
    outside = outside_space(config, space)
    if outside and not study.trials:  # a new study without a base-config trial
        print(
            "ltr tune: note: no trial of the base config itself, whose "
            f"{'; '.join(outside)} lies outside the search space; the study's best is not "
            "measured against the base config (widen the space to hold its values to get one)",
            file=sys.stderr,
        )
    convention, metric = objective_key(config)
    monitor = f"val/{metric}"
    result = TuneResult(study_name=study_name, metric=metric, trials=[], space=list(space))

    # (fold, seed) of each training of a trial; None = the config's own
    replicas = [
        (fold, k if seeds > 1 else None) for fold in (folds or [None]) for k in range(seeds)
    ]

    def objective(trial: optuna.trial.Trial) -> float:
        params = {p.key: p.suggest(trial) for p in space}
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        first = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if first is None else first
        folder = study_dir / TRIALS_DIR / str(number)
        trial.set_user_attr("ltr.output_dir", str(folder))
        trial.set_user_attr("ltr.host", f"{socket.gethostname()}:{os.getpid()}")
        pruning = _pruning_callback(trial, monitor)
        values, epochs = [], []
        for fold, k in replicas:
            output = _replica_dir(folder, fold, k)
            record = output / TRIAL_RESULT
            if first is not None and record.exists():  # done before the last process died
                done = json.loads(record.read_text())
                values.append(done["value"])
                epochs.append(done["epochs"])
                continue
            resume = first is not None and (output / RESUME_DIR / RESUME_CHECKPOINT).exists()
            run = train(
                trial_config(config, params, output, number, seed=k, fold=fold),
                verbose=verbose,
                resume=resume,
                callbacks=[pruning] if not values else [],  # the pruner follows the first
            )
            if pruning.pruned_at is not None:
                trial.set_user_attr("ltr.epochs", run.epochs)
                result.ran += 1
                raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
            value = run.valid_metrics.get(convention, {}).get(metric)
            if value is None or not math.isfinite(value):
                raise ConfigError(f"trial {number} has no finite validation {metric}: {value!r}")
            write_json(record, {"value": float(value), "epochs": run.epochs})
            values.append(float(value))
            epochs.append(run.epochs)
        trial.set_user_attr("ltr.epochs", epochs[0])
        trial.set_user_attr("ltr.model", str(_replica_dir(folder, *replicas[0])))
        if len(replicas) > 1:
            trial.set_user_attr("ltr.values", values)
        result.ran += 1
        return statistics.fmean(values)

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    with ExitStack() as stack:
        parent = None
        if config.tracking.enabled:
            from ltr.tracking import start_parent_run

            parent_id = study.user_attrs.get("ltr.mlflow_parent_run_id")
            parent = stack.enter_context(
                start_parent_run(config.tracking, f"tune {study_name}", "tuning", parent_id)
            )
            if parent_id is None:
                parent.log_config(to_dict(config))
                parent.log_dict(
                    {p.key: p.describe() for p in space}, artifact_file="search_space.yaml"
                )
                study.set_user_attr("ltr.mlflow_parent_run_id", parent.run_id)
            result.parent_run_id = parent.run_id
        done = len(study.get_trials(deepcopy=False, states=finished))
        report = [_trial_reporter(metric)] if progress else []
        if done < trials:
            # n_trials bounds this process; the callback stops it early when other processes
            # sharing the storage have finished the rest
            study.optimize(
                objective,
                n_trials=trials - done,
                callbacks=[MaxTrialsCallback(trials, states=finished), *report],
                gc_after_trial=True,
                show_progress_bar=progress,
            )
        _summarize(study, result, config, study_dir)
        if parent is not None:
            _log_summary(parent, result)
    return result


def _replica_dir(folder: Path, fold: int | None, seed: int | None) -> Path:
    """Where one training of a trial goes: ``folder[/fold<f>][/seed<k>]``."""
    if fold is not None:
        folder = folder / f"fold{fold}"
    return folder if seed is None else folder / f"seed{seed}"


def _trial_reporter(metric: str):
    """A study callback that prints one line per ended trial above the progress bar."""
    from tqdm.auto import tqdm

    def report(study, trial) -> None:
        values = ", ".join(f"{k}={_cell(v)}" for k, v in trial.params.items())
        if trial.value is not None:
            outcome = f"validation {metric} {trial.value:.4f}"
        else:
            outcome = trial.state.name.lower()
        best = ""
        if any(t.value is not None for t in study.get_trials(deepcopy=False)):
            best = f"; best so far: trial {study.best_trial.number} ({study.best_value:.4f})"
        base = " (the base config)" if trial.user_attrs.get("ltr.base") else ""
        line = f"trial {trial.number}{base}: {outcome} ({values}){best}"
        tqdm.write(line, file=sys.stderr)

    return report


def _summarize(study, result: TuneResult, config: TrainConfig, study_dir: Path) -> None:
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False):
        model = t.user_attrs.get("ltr.model")
        result.trials.append(
            TrialRow(
                number=t.number,
                state=t.state.name,
                value=t.value if t.state == TrialState.COMPLETE else None,
                params=dict(t.params),
                epochs=t.user_attrs.get("ltr.epochs"),
                retry_of=RetryHeartbeatStaleTrialCallback.retried_trial_number(t),
                base=bool(t.user_attrs.get("ltr.base")),
                model=None if model is None else Path(model) / "model",
            )
        )
    complete = [t for t in result.trials if t.value is not None]
    if not complete:
        return
    best = max(complete, key=lambda t: (t.value, -t.number))
    result.best = best
    result.best_model = best.model
    best_config = to_dict(apply_params(config, best.params))
    header = (
        f"# ltr tune: the best of {len(complete)} complete trials of study "
        f"{result.study_name!r} (trial {best.number}, validation {result.metric} "
        f"{best.value:.6f}); its model is {result.best_model}\n"
    )
    path = study_dir / BEST_CONFIG
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(best_config, sort_keys=False))
    tmp.replace(path)
    result.best_config = path


def _log_summary(parent, result: TuneResult) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp, "trials.csv")
        keys = [p.key for p in result.space]
        with table.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["trial", "state", result.metric, "epochs", *keys])
            for t in result.trials:
                writer.writerow(
                    [t.number, t.state, t.value, t.epochs, *(t.params.get(k) for k in keys)]
                )
        parent.log_artifact(table)
    if result.best is not None:
        parent.log_metrics(
            {f"best/valid_{result.metric}": result.best.value, "trials/finished": _finished(result)}
        )
        parent.set_tags(
            {"best.trial": str(result.best.number)}
            | {f"best.{k}": str(v) for k, v in result.best.params.items()}
        )
        parent.log_artifact(result.best_config)


def _finished(result: TuneResult) -> int:
    return sum(t.state in FINISHED for t in result.trials)


def format_trials(result: TuneResult, limit: int | None = None) -> str:
    """Markdown table of the study's trials, best first (failed and running ones last)."""
    keys = [p.key for p in result.space]
    rows = sorted(
        result.trials,
        key=lambda t: (t.value is None, -(t.value or 0.0), t.state != "PRUNED", t.number),
    )
    if limit is not None:
        rows = rows[:limit]
    lines = [
        f"| trial | state | valid {result.metric} | epochs | " + " | ".join(keys) + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for t in rows:
        value = "" if t.value is None else f"{t.value:.4f}"
        epochs = "" if t.epochs is None else str(t.epochs)
        cells = [_cell(t.params.get(k)) for k in keys]
        state = t.state.lower() + (f" (retry of {t.retry_of})" if t.retry_of is not None else "")
        state += " (base config)" if t.base else ""
        lines.append(f"| {t.number} | {state} | {value} | {epochs} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
