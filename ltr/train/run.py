"""``train(config)``: data, model, loss and Lightning Trainer wired together, tracked in MLflow.

Steps: seed everything; load the splits; fit the feature normaliser on the training rows; build
the scorer from the model registry; train with early stopping and best-checkpoint selection on
the validation metric; reload the best weights; evaluate valid and test sets on the offline path
(whole lists, all three empty-list conventions); save the artifact; log it to MLflow as a
registered model with an alias. In distributed runs only global rank 0 talks to MLflow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from ltr.artifact import BUNDLED_FEATURIZER, Manifest, save_model
from ltr.config import flatten, to_dict
from ltr.data.dataset import ListDataset
from ltr.data.normalize import FeatureNormalizer
from ltr.drift import profile_features
from ltr.errors import ConfigError
from ltr.heldout import data_sketch
from ltr.inference import frame_context_columns, mflop_per_list, score_lists
from ltr.losses import build_loss
from ltr.metrics import evaluate_all_conventions
from ltr.models import RankingModel, build_scorer
from ltr.train.config import LightningConfig, TrainConfig
from ltr.train.datamodule import ListDataModule
from ltr.train.module import RankingModule
from ltr.train.progress import progress_bar


@dataclass
class TrainResult:
    """What a training run produced."""

    artifact_dir: Path
    best_epoch: int | None
    epochs: int
    seconds: float
    valid_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    run_id: str | None = None
    run_uri: str | None = None
    registered_name: str | None = None
    registered_version: str | None = None
    alias_uri: str | None = None
    resolved_config: dict[str, Any] = field(default_factory=dict)


class EpochSetter(Callback):
    """Draws new list subsets every epoch (training lists capped by sampling)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.datamodule.set_epoch(trainer.current_epoch)


class TrackingCallback(Callback):
    """Opens the MLflow run on global rank 0 and logs every epoch's metrics (step = epoch).

    ``config`` is a tracking section (``enabled``, ``experiment``, ``run_name``,
    ``tracking_uri``, ``nested``); ``resolved`` is the whole resolved config, logged as params.
    With ``run_id`` the callback reopens that run (a resumed training run) instead of starting
    one, and logs no parameters (they are there already). The id of the run is written to
    ``run_id_file`` when given, so that a resumed run can find it.
    """

    def __init__(
        self,
        config: Any,
        resolved: dict[str, Any],
        *,
        run_id: str | None = None,
        run_id_file: Path | None = None,
    ):
        self.config = config
        self.resolved = resolved
        self.resume_run_id = run_id
        self.run_id_file = run_id_file
        self.stack = ExitStack()
        self.tracker = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.tracker is None and trainer.is_global_zero and self.config.enabled:
            from ltr.tracking import start_run

            cfg = self.config
            self.tracker = self.stack.enter_context(
                start_run(
                    experiment=cfg.experiment,
                    run_name=cfg.run_name,
                    tracking_uri=cfg.tracking_uri,
                    nested=cfg.nested,
                    run_id=self.resume_run_id,
                )
            )
            if self.run_id_file is not None:
                self.run_id_file.parent.mkdir(parents=True, exist_ok=True)
                self.run_id_file.write_text(self.tracker.run_id)
            if self.resume_run_id is None:
                self.tracker.log_config(self.resolved)
                self.tracker.log_params(
                    {"world_size": trainer.world_size, "precision": trainer.precision}
                )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.tracker is not None and getattr(pl_module, "epoch_log", None):
            self.tracker.log_metrics(pl_module.epoch_log, step=trainer.current_epoch)

    def close(self, failed: bool = False) -> None:
        if failed and self.tracker is not None:
            from ltr.tracking import mark_failed

            mark_failed()
        self.stack.close()


RESUME_DIR = "resume"
"""Folder of ``output_dir`` that holds what ``--resume`` needs while a run is going on."""
RESUME_CHECKPOINT = "resume.ckpt"
RUN_ID_FILE = "mlflow_run_id"


class ResumeCheckpoint(Callback):
    """Saves the whole training state at the end of every epoch to ``resume.ckpt``: weights,
    optimiser, learning-rate schedule, loop counters and the state of the other callbacks
    (best checkpoint, early stopping), and the random number generators' states, so that the
    epochs after a resume draw the same shuffles and dropout masks as an uninterrupted run.
    The file is written beside and renamed into place, so a crash while writing leaves the
    previous one whole. :func:`resume_point` finds it again; :func:`finish_resumable` removes it
    when the run completes."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / RESUME_CHECKPOINT

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def state_dict(self) -> dict[str, Any]:
        # Tensors and plain numbers only: checkpoints are read back with weights_only=True.
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, words, gauss_next = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "python": (version, torch.tensor(words, dtype=torch.int64), gauss_next),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, words, gauss_next = state_dict["python"]
        random.setstate((version, tuple(words.tolist()), gauss_next))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


@dataclass
class RunCallbacks:
    """The callbacks of a training command (:func:`run_callbacks`)."""

    checkpoint: ModelCheckpoint
    tracking: TrackingCallback
    callbacks: list[Callback]


def run_callbacks(
    output: Path,
    tracking_config: Any,
    resolved: dict[str, Any],
    *,
    run_id: str | None,
    monitor: str | None,
    mode: str,
    patience: int | None,
) -> RunCallbacks:
    """What ``ltr train``, ``ltr pretrain`` and ``ltr finetune`` all run with: new draws every
    epoch, the best epoch's weights by ``monitor`` (the last epoch's when ``monitor`` is None),
    MLflow tracking (reopening ``run_id`` on resume), the per-epoch resume checkpoint in
    ``<output>/resume``, and early stopping after ``patience`` epochs without improvement."""
    checkpoint = ModelCheckpoint(
        dirpath=output / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        # Only the weights are read back (load_best_weights); leaving out the optimizer state
        # (twice the parameters for Adam) halves the work of every improving epoch's checkpoint.
        save_weights_only=True,
        enable_version_counter=False,
    )
    # One file, overwritten by design: a resumed run goes on from the one there, and a run again
    # in the same output_dir replaces it at its first epoch, so Lightning's warning that the
    # folder is not empty says nothing useful.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    resume_dir = output / RESUME_DIR
    tracking = TrackingCallback(
        tracking_config, resolved, run_id=run_id, run_id_file=resume_dir / RUN_ID_FILE
    )
    callbacks: list[Callback] = [EpochSetter(), checkpoint, tracking, ResumeCheckpoint(resume_dir)]
    if monitor is not None and patience is not None:
        callbacks.append(EarlyStopping(monitor, mode=mode, patience=patience))
    return RunCallbacks(checkpoint, tracking, callbacks)


RESUME_CONFIG = "config.json"
# What may change between the killed run and its resume without changing what is computed.
RESUME_FREE = ("trainer.progress_bar",)


def resume_point(
    directory: Path, resume: bool, config: dict[str, Any] | None = None, *, verbose: bool = False
) -> tuple[str | None, str | None]:
    """``(checkpoint, MLflow run id)`` to go on from, or ``(None, None)`` for a fresh run.

    With ``config`` (the run's settings, :func:`ltr.config.to_dict`) a fresh run writes it to
    ``directory``, and a resumed one is refused if its settings differ from those the run
    started with (beyond :data:`RESUME_FREE`): a checkpoint of another model or schedule
    cannot be gone on from. ``verbose`` says which epoch a resumed run goes on from.

    Raises:
        ConfigError: ``resume`` is asked for but ``directory`` holds no resume checkpoint, or
            the settings differ from the interrupted run's.
    """
    directory = Path(directory)
    saved_config = directory / RESUME_CONFIG
    if not resume:
        if config is not None:
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".{RESUME_CONFIG}.{os.getpid()}.tmp"  # one per DDP process
            tmp.write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
            os.replace(tmp, saved_config)
        return None, None
    path = directory / RESUME_CHECKPOINT
    if not path.exists():
        raise ConfigError(
            f"nothing to resume: {path} does not exist (the run finished, or it stopped before "
            "its first epoch ended); start it again without --resume"
        )
    if config is not None and saved_config.exists():  # (runs started before it was kept: none)
        _check_same_settings(json.loads(saved_config.read_text()), config, saved_config)
    run_file = directory / RUN_ID_FILE
    run_id = run_file.read_text().strip() if run_file.exists() else None
    if verbose:
        done = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"] + 1
        print(f"resuming {directory.parent} after its epoch {done} ({path})", flush=True)
    return str(path), run_id or None


def _check_same_settings(then: dict[str, Any], now: dict[str, Any], where: Path) -> None:
    """Refuse to resume with settings other than those the run started with."""
    before = flatten(then)
    after = flatten(json.loads(json.dumps(now, default=str)))  # as they were written
    changed = [
        key
        for key in sorted(set(before) | set(after))
        if key not in RESUME_FREE and before.get(key, "(unset)") != after.get(key, "(unset)")
    ]
    if changed:
        shown = "; ".join(
            f"{key} is {after.get(key, '(unset)')!r}, was {before.get(key, '(unset)')!r}"
            for key in changed[:5]
        )
        more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
        raise ConfigError(
            f"--resume: the settings differ from those the interrupted run started with "
            f"({where}): {shown}{more}. Resume with the same config and options, or start "
            "again without --resume (in another output_dir to keep this run's checkpoints)"
        )


def finish_resumable(directory: Path) -> None:
    """Remove what ``--resume`` would need (checkpoint, run id, ...) once a run completed."""
    shutil.rmtree(directory, ignore_errors=True)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` = bf16 mixed precision on a CUDA GPU that supports it, else 32-bit."""
    if precision != "auto":
        return precision
    use_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if use_gpu and torch.cuda.is_bf16_supported() else "32-true"


def build_trainer(
    tc: LightningConfig, callbacks: list[Callback], output: Path, *, verbose: bool = True
) -> L.Trainer:
    """A ``lightning.Trainer`` from the trainer section (a progress bar when ``verbose``)."""
    if tc.threads is not None:
        torch.set_num_threads(tc.threads)
        # DDP processes started after this one read it, and Lightning then leaves it alone.
        os.environ["OMP_NUM_THREADS"] = str(tc.threads)
    show_progress = tc.progress_bar and verbose
    if show_progress:
        callbacks = [*callbacks, progress_bar()]
    with _trainer_errors(tc):
        return L.Trainer(
            max_epochs=tc.max_epochs,
            **_hardware(tc),
            gradient_clip_val=tc.gradient_clip_val,
            deterministic=tc.deterministic,
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=show_progress,
            enable_model_summary=verbose,
            log_every_n_steps=tc.log_every_n_steps,
            num_sanity_val_steps=0,
            default_root_dir=str(output),
        )


def build_ranking_model(config: TrainConfig, train_set: ListDataset) -> RankingModel:
    """Scorer from the registry, normaliser fitted on the training rows."""
    params = {k: v for k, v in config.model.items() if k != "name"}
    given = params.get("num_features")
    if given is not None and given != train_set.num_features:
        raise ConfigError(
            f"model.num_features is {given} but the training data has {train_set.num_features}"
        )
    params["num_features"] = train_set.num_features
    context_dim = int(params.get("context_dim") or 0)
    if context_dim != train_set.context_dim:
        raise ConfigError(
            f"model.context_dim is {context_dim} but the training data carry "
            f"{train_set.context_dim} context values per query"
        )
    scorer = build_scorer(config.model["name"], params)
    normalizer = None
    if config.normalizer.enabled:
        normalizer = FeatureNormalizer(train_set.num_features, log1p=config.normalizer.log1p)
        normalizer.fit(train_set.features)
    return RankingModel(scorer, normalizer)


def teacher_scores(config: TrainConfig, train_set: ListDataset) -> torch.Tensor | None:
    """``[N]`` the teacher's scores of every training row, standardised within each list (so
    that the temperature means the same for any teacher), or None without ``distill.teacher``.
    Every list is scored whole, before any sampling down to ``max_list_length``."""
    if not config.distill.teacher:
        return None
    from ltr.artifact import load_model
    from ltr.inference import score_lists
    from ltr.models.ensemble import standardize

    teacher = load_model(config.distill.teacher)
    names = teacher.manifest.feature_names
    if names != list(train_set.feature_names):
        raise ConfigError(
            f"distill.teacher {config.distill.teacher} reads {len(names)} features "
            f"({', '.join(names[:3])}, ...), not the training data's {train_set.num_features} "
            f"({', '.join(list(train_set.feature_names)[:3])}, ...); a teacher must read the "
            "same features in the same order"
        )
    raw = torch.from_numpy(score_lists(teacher.model, train_set))  # (N,)
    out = torch.empty_like(raw)
    for start, end in zip(train_set.offsets[:-1], train_set.offsets[1:], strict=True):
        one = raw[start:end][None]  # (1, n)
        out[start:end] = standardize(one, torch.ones_like(one, dtype=torch.bool))[0]
    return out


def start_lightning(tc: LightningConfig) -> None:
    """What every training command does first: Lightning's info lines and two warnings that
    do not apply here silenced, and the trainer's hardware settings checked
    (:func:`check_trainer_settings`) before any data is read."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    check_trainer_settings(tc)


# The LightningConfig fields Lightning checks when a Trainer is made, as its messages name them.
_HARDWARE = ("accelerator", "devices", "strategy", "num_nodes", "precision")


def check_trainer_settings(tc: LightningConfig) -> None:
    """Let Lightning judge ``accelerator``, ``devices``, ``strategy``, ``num_nodes`` and
    ``precision`` on this machine (it does when a Trainer is made, which starts nothing), so
    that a GPU asked for where there is none fails at once, as a :class:`ConfigError` naming the
    setting, not as a traceback after the data were read."""
    with _trainer_errors(tc):
        L.Trainer(
            **_hardware(tc),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )


def _hardware(tc: LightningConfig) -> dict[str, Any]:
    return {
        "accelerator": tc.accelerator,
        "devices": tc.devices,
        "strategy": tc.strategy,
        "num_nodes": tc.num_nodes,
        "precision": resolve_precision(tc.precision, tc.accelerator),
    }


@contextlib.contextmanager
def _trainer_errors(tc: LightningConfig) -> Iterator[None]:
    """Lightning's refusal of the hardware settings as a :class:`ConfigError` that names them."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        text = str(exc).rstrip(". !")
        said = text.lower().replace("_", "")
        named = [k for k in _HARDWARE if k.replace("_", "") in said]
        if tc.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            named = ["accelerator"]
            text += (
                "; PyTorch sees no CUDA GPU here"
                + (
                    f" (torch {torch.__version__} is a CPU build)"
                    if torch.version.cuda is None
                    else ""
                )
                + "; leave trainer.accelerator at auto to use a GPU only where there is one"
            )
        given = ", ".join(f"trainer.{k}={getattr(tc, k)!r}" for k in named or _HARDWARE)
        raise ConfigError(f"{given}: {text}") from None


def train(
    config: TrainConfig,
    *,
    verbose: bool = True,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train, evaluate, save and log a ranking model as described by ``config``.

    With ``resume`` an interrupted run in the same ``output_dir`` goes on from the end of its
    last complete epoch, in the same MLflow run (:class:`ResumeCheckpoint`). ``callbacks`` run
    beside the command's own (e.g. ``ltr tune``'s pruning, which may stop the run early).
    """
    started = time.perf_counter()
    start_lightning(config.trainer)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    context_dim = int(config.model.get("context_dim") or 0)
    datamodule = ListDataModule(config.data, seed=config.trainer.seed, context_dim=context_dim)
    model = build_ranking_model(config, datamodule.train_set)
    loss_fn = build_loss(config.loss)
    resolved = to_dict(config)
    resolved["model"] = {"name": config.model["name"], **_scorer_config(model)}

    steps_per_epoch = math.ceil(len(datamodule.train_set) / config.data.batch_size)
    # ERR's top grade: the label scale's, read from every partition so that a grade only the
    # validation or test data hold is not refused.
    max_grade = float(
        max(
            2.0,
            *(
                ds.labels.max()
                for ds in (datamodule.train_set, datamodule.valid_set, datamodule.test_set)
                if ds is not None
            ),
        )
    )
    teacher = teacher_scores(config, datamodule.train_set)
    module = RankingModule(
        model,
        loss_fn,
        config.optim,
        metrics=config.eval.metrics,
        empty=config.eval.empty,
        monitor=config.trainer.monitor,
        max_grade=max_grade,
        total_steps=steps_per_epoch * config.trainer.max_epochs,
        teacher_scores=teacher,
        distill_weight=config.distill.weight,
        temperature=config.distill.temperature,
    )
    output = Path(config.output_dir)
    ckpt_path, run_id = resume_point(output / RESUME_DIR, resume, to_dict(config), verbose=verbose)
    has_valid = datamodule.valid_set is not None
    monitor = f"val/{config.trainer.monitor}"
    run = run_callbacks(
        output,
        config.tracking,
        resolved,
        run_id=run_id,
        monitor=monitor if has_valid else None,
        mode="max",
        patience=config.trainer.early_stopping_patience,
    )
    checkpoint, tracking = run.checkpoint, run.tracking
    trainer = build_trainer(config.trainer, [*run.callbacks, *callbacks], output, verbose=verbose)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if not trainer.is_global_zero:
            return TrainResult(output / "model", None, trainer.current_epoch, 0.0)
        best_epoch = load_best_weights(module, checkpoint)
        model.eval()
        result = TrainResult(
            artifact_dir=output / "model",
            best_epoch=best_epoch,
            epochs=trainer.current_epoch,
            seconds=time.perf_counter() - started,
            resolved_config=resolved,
        )
        for name, ds in (("valid", datamodule.valid_set), ("test", datamodule.test_set)):
            if ds is not None:
                scores = score_lists(model, ds, batch_size=config.data.eval_batch_size)
                metrics = evaluate_all_conventions(
                    scores.astype("float64"),
                    ds.labels,
                    ds.offsets,
                    metrics=config.eval.metrics,
                    max_grade=max_grade,
                )
                setattr(result, f"{name}_metrics", metrics)
        manifest = Manifest(
            architecture=config.model["name"],
            model_config=_scorer_config(model),
            feature_names=list(datamodule.train_set.feature_names),
            normalizer={"enabled": config.normalizer.enabled, "log1p": config.normalizer.log1p},
            training={
                "loss": config.loss,
                # absolute: a relative path would mean nothing outside this run's folder
                "data": {
                    k: [str(Path(p).absolute()) for p in v] for k, v in datamodule.files.items()
                },
                "best_epoch": best_epoch,
                "test_metrics": result.test_metrics,
                "max_grade": max_grade,
            },
        )
        manifest.training["data_sketch"] = {  # `ltr evaluate` finds copies of them by these
            split: data_sketch(ds.features, ds.offsets)
            for split, ds in (("train", datamodule.train_set), ("valid", datamodule.valid_set))
            if ds is not None
        }
        if datamodule.context.context_dim:
            manifest.training["context_columns"] = list(datamodule.context.context_columns)
        if config.distill.teacher:
            manifest.training["distill"] = {
                "teacher": config.distill.teacher,
                "weight": config.distill.weight,
                "temperature": config.distill.temperature,
            }
        featurizer = _text_featurizer(datamodule.files.get("train", []), manifest)
        if featurizer is not None:
            manifest.training["featurizer"] = str(featurizer)
        if tracking.tracker is not None:
            manifest.training["run_id"] = tracking.tracker.run_id
            manifest.training["registered_model"] = config.tracking.registered_model
        manifest.mflop_per_list = mflop_per_list(model, manifest)  # for `ltr info`, at no cost
        save_model(model, manifest, result.artifact_dir)
        train_set = datamodule.train_set  # what the server's and `ltr drift`'s inputs are held to
        trained_on = manifest.training["data"].get("train", [])
        profile_features(
            train_set.features,
            train_set.feature_names,
            source=trained_on,
            scores=score_lists(model, train_set, batch_size=config.data.eval_batch_size),
        ).save(result.artifact_dir)
        if featurizer is not None:
            from ltr.text.featurizer import bundle_featurizer

            bundle_featurizer(featurizer, result.artifact_dir)
        else:  # not a stale one from an earlier run into the same folder
            shutil.rmtree(result.artifact_dir / BUNDLED_FEATURIZER, ignore_errors=True)
        if tracking.tracker is not None:
            _log_final(tracking.tracker, result, manifest, config)
        tracking.close()
        finish_resumable(output / RESUME_DIR)
        result.seconds = time.perf_counter() - started
        return result
    except BaseException:
        tracking.close(failed=True)
        raise


def _text_featurizer(files: list, manifest: Manifest) -> Path | None:
    """The text featurizer saved beside the training files, when the model can use it: it
    writes the model's features and, for a model with a context vector read from the column
    ``context``, gives vectors of that size (``ltr text-features --context-encoder``)."""
    from ltr.data.list_inputs import CONTEXT

    if not files or (manifest.context_dim and frame_context_columns(manifest) != [CONTEXT]):
        return None
    from ltr.text.featurizer import featurizer_beside

    return featurizer_beside(files, manifest.feature_names, manifest.context_dim)


def _scorer_config(model: RankingModel) -> dict[str, Any]:
    import dataclasses

    cfg = getattr(model.scorer, "config", None)
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


def load_best_weights(module: L.LightningModule, checkpoint: ModelCheckpoint) -> int | None:
    """Reload the best checkpoint's weights into the module; return its epoch."""
    path = checkpoint.best_model_path
    if not path or not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return int(state.get("epoch", -1))


def _log_final(tracker, result: TrainResult, manifest: Manifest, config: TrainConfig) -> None:
    final: dict[str, float] = {}
    for split, conventions in (("valid", result.valid_metrics), ("test", result.test_metrics)):
        for convention, values in conventions.items():
            for metric, value in values.items():
                final[f"{split}/{convention}/{metric}"] = value
    tracker.log_metrics(final)
    if result.best_epoch is not None:
        tracker.log_params({"best_epoch": result.best_epoch})
    result.run_id = tracker.run_id
    if not config.tracking.log_model:
        return
    logged = tracker.log_model(
        result.artifact_dir,
        feature_names=manifest.feature_names,
        context_columns=frame_context_columns(manifest),
        context_dim=manifest.context_dim,
        registered_name=config.tracking.registered_model,
        alias=config.tracking.alias,
    )
    result.run_id = logged.run_id
    result.run_uri = logged.run_uri
    result.registered_name = logged.registered_name
    result.registered_version = logged.registered_version
    result.alias_uri = logged.alias_uri
