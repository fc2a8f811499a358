"""Training configuration: the dataclasses that ``configs/*.yaml`` mirror.

``ltr train --config configs/setrank_imsab.yaml --model.num_blocks 4 --trainer.max_epochs 50``
loads the YAML, applies the dotted overrides and validates the result here. The resolved config
(every default filled in) is logged with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ltr.config import load_config
from ltr.errors import ConfigError


@dataclass
class DataConfig:
    """Where the data comes from and how lists are batched."""

    train: list[str] = field(default_factory=list)
    """Training files (LETOR/SVMlight or ltr Parquet), concatenated in order."""
    valid: list[str] = field(default_factory=list)
    """Validation files: early stopping and checkpoint selection."""
    test: list[str] = field(default_factory=list)
    """Test files: evaluated once after training (optional)."""
    letor_root: str | None = None
    """A folder with LETOR partitions S1..S5; used with ``fold`` when train/valid/test are empty.
    Relative paths are resolved against the current directory, then the repository root."""
    fold: int = 1
    """LETOR fold 1..5 (Fold1 = train S1-S3, valid S4, test S5)."""
    batch_size: int = 32
    """Lists per training batch."""
    eval_batch_size: int = 128
    """Lists per validation/test batch."""
    max_list_length: int | None = None
    """Training only: longer lists are replaced by a seeded random subset of this size."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    context_columns: list[str] | None = None
    """Models with ``context_dim`` C (Parquet data only): the column holding each query's context
    vector as a list of C numbers, or C numeric columns; the same on every row of a query.
    Default: the list column ``context``."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("data.batch_size and data.eval_batch_size must be at least 1")
        if not 1 <= self.fold <= 5:
            raise ConfigError(f"data.fold must be between 1 and 5, got {self.fold}")
        if self.max_list_length is not None and self.max_list_length < 2:
            raise ConfigError("data.max_list_length must be at least 2 (or null for no cap)")


@dataclass
class NormalizerConfig:
    """Feature normalisation inside the model (see :mod:`ltr.data.normalize`)."""

    enabled: bool = True
    log1p: bool = True


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and an optional cosine decay."""

    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 50
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.05
    """The cosine schedule decays to ``lr * min_lr_ratio`` at ``trainer.max_epochs``."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("optim.warmup_steps must be >= 0 and optim.min_lr_ratio in [0, 1]")


@dataclass
class LightningConfig:
    """Options passed to ``lightning.Trainer`` (plus early stopping and seeding), shared by
    ``ltr train`` and ``ltr pretrain``."""

    max_epochs: int = 100
    accelerator: str = "auto"
    """``auto`` picks a GPU when one is present, else the CPU."""
    devices: int | str = "auto"
    strategy: str = "auto"
    """e.g. ``ddp`` for distributed data parallel (CPU processes or GPUs, one or more nodes)."""
    num_nodes: int = 1
    precision: str = "auto"
    """``auto`` = bf16 mixed precision on a GPU that supports it, 32-bit on CPU."""
    gradient_clip_val: float | None = 1.0
    early_stopping_patience: int | None = 20
    """Epochs without improvement of the monitored metric before stopping (null = never)."""
    seed: int = 42
    deterministic: bool = True
    progress_bar: bool = True
    log_every_n_steps: int = 10
    threads: int | None = None
    """PyTorch's intra-op threads in each training process (``torch.set_num_threads``, and
    ``OMP_NUM_THREADS`` for the processes a DDP run starts); null = PyTorch's default, one per
    core. On a CPU that other processes keep busy, 1 is far faster: the threads of one operation
    wait for each other, and one that is not scheduled holds up the rest (*Training epochs by
    thread count* in ``docs/BENCHMARKS.md``)."""

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"trainer.max_epochs must be at least 1, got {self.max_epochs}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"trainer.threads must be at least 1 (or null), got {self.threads}")


@dataclass
class TrainerConfig(LightningConfig):
    """Lightning options of a ranking run, and the metric that selects its best epoch."""

    monitor: str = "ndcg@10"
    """Validation metric for early stopping and checkpoint selection."""


@dataclass
class TrackingConfig:
    """MLflow tracking. With no ``tracking_uri`` and no ``MLFLOW_TRACKING_URI`` runs go to
    ``./mlflow.db`` (SQLite) with artifacts under ``./mlartifacts``."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "ltr"
    run_name: str | None = None
    registered_model: str | None = "ltr-ranker"
    """Name in the model registry (null = log the model without registering it)."""
    alias: str | None = "candidate"
    """Alias given to the new registered version, e.g. ``models:/ltr-ranker@candidate``."""
    nested: bool = False
    """Open the run as a child of the active MLflow run (``ltr cv`` nests one run per fold)."""
    log_model: bool = True
    """Log the trained model to the run (``ltr cv`` turns this off for its fold runs)."""


@dataclass
class EvalConfig:
    """Validation and test evaluation."""

    metrics: list[str] = field(
        default_factory=lambda: ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr", "err@10"]
    )
    empty: Literal["one", "zero", "drop"] = "one"
    """Convention for lists with no relevant item during validation (reports show all three)."""


@dataclass
class DistillConfig:
    """Knowledge distillation: learn a teacher's ranking of each training list besides the labels.

    The loss gains ``weight * T^2 * ListNet(scores / T, teacher / T)``: the cross-entropy between
    the teacher's and the model's top-one distributions over each list, with the teacher's
    scores standardised within the list first. The teacher (an ensemble from ``ltr ensemble``,
    say) scores every training list once, whole, before training.
    """

    teacher: str | None = None
    """Artifact dir or MLflow URI of the teacher; None = no distillation."""
    weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.temperature <= 0:
            raise ConfigError(
                f"distill.weight must be >= 0 and distill.temperature > 0, got {self.weight} "
                f"and {self.temperature}"
            )


@dataclass
class TrainConfig:
    """Everything ``ltr train`` needs."""

    model: dict[str, Any] = field(default_factory=lambda: {"name": "setrank"})
    """``name`` picks the architecture (see ``ltr.models.MODELS``); other keys are its config."""
    loss: Any = "listmle"
    """A loss name or ``{name: weight | {weight: w, <params>}}`` (see ``ltr.losses.build_loss``)."""
    data: DataConfig = field(default_factory=DataConfig)
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    output_dir: str = "runs/train"
    """Checkpoints and the exported model artifact go here."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict) or "name" not in self.model:
            raise ConfigError("model must be a mapping with a 'name' (e.g. setrank or mlp)")
        if not isinstance(self.loss, str | dict):
            raise ConfigError("loss must be a name or a mapping of names to weights")
        check_training_settings(self)


def check_training_settings(config: TrainConfig) -> None:
    """Check what training checks of the config itself (not of its data) before it reads any:
    the model's settings (its layers built on the meta device, which takes no memory), the loss,
    the metrics and the monitored one; a config that fails here fails at once when loaded (and
    ``--print-config`` never prints it), not after the data have been read.

    Raises:
        ConfigError, RegistryError: the first invalid setting, named by its key (``model.block``).
    """
    import torch

    from ltr.losses import build_loss
    from ltr.metrics import resolve_metrics
    from ltr.models import build_scorer

    params = {k: v for k, v in config.model.items() if k != "name"}
    params.setdefault("num_features", 1)  # training takes it from the data
    with torch.device("meta"):
        build_scorer(config.model["name"], params)
    build_loss(config.loss)
    resolve_metrics(config.eval.metrics)
    if config.trainer.monitor not in config.eval.metrics:
        raise ConfigError(
            f"trainer.monitor {config.trainer.monitor!r} must be one of eval.metrics "
            f"{config.eval.metrics}"
        )


def load_train_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Load a YAML config (or the defaults), apply dotted overrides, validate."""
    return load_config(TrainConfig, path, overrides)
