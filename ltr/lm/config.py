"""Typed configuration of ``ltr pretrain`` (YAML presets in ``configs/lm/`` mirror it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ltr.config import load_config
from ltr.errors import ConfigError, RegistryError
from ltr.lm.model import LMConfig, check_buildable
from ltr.train.config import LightningConfig, OptimConfig, TrackingConfig


@dataclass
class LMDataConfig:
    """The text corpus, its tokenizer and how it is cut into training windows."""

    files: list[str] = field(default_factory=lambda: ["data/tinyshakespeare/input.txt.xz"])
    """Plain-text files (``.txt``, ``.xz``, ``.gz``), concatenated with ``[EOS]`` between them;
    a ``.jsonl`` file (a collection's ``docs.jsonl.xz``) gives its documents' titles and texts."""
    valid_fraction: float = 0.1
    """The last part of the token stream held out for validation (nanoGPT's 90/10 split)."""
    tokenizer: str | None = None
    """A ``tokenizer.json`` to use; null = train one on ``files`` (saved with the model)."""
    tokenizer_kind: Literal["bpe", "char"] = "bpe"
    """``bpe``: byte-level BPE (any text round-trips); ``char``: one token per character."""
    vocab_size: int = 1024
    """Vocabulary size of a trained BPE tokenizer (special tokens included)."""
    batch_size: int = 32
    steps_per_epoch: int = 200
    """Training windows are drawn at random: an epoch is this many batches."""
    max_valid_windows: int | None = 256
    """Validate on at most this many consecutive windows of the held-out stream (null = all)."""
    mask_prob: float = 0.15
    """Masked LM: share of tokens chosen for prediction (80 % [MASK], 10 % random, 10 % kept)."""

    def __post_init__(self) -> None:
        if not self.files:
            raise ConfigError("data.files is empty: name at least one text file")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.batch_size < 1 or self.steps_per_epoch < 1:
            raise ConfigError("data.batch_size and data.steps_per_epoch must be at least 1")
        if self.max_valid_windows is not None and self.max_valid_windows < 1:
            raise ConfigError("data.max_valid_windows must be at least 1 (or null for all)")
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"data.mask_prob must be in (0, 1), got {self.mask_prob}")


@dataclass
class LMTrainerConfig(LightningConfig):
    """Lightning options of a pretraining run; the best epoch is the lowest validation loss."""

    max_epochs: int = 10
    early_stopping_patience: int | None = 3


@dataclass
class LMTrackingConfig(TrackingConfig):
    """MLflow tracking of a pretraining run; the model is logged under ``lm`` as a pyfunc text
    encoder (load it again as ``runs:/<run_id>/lm`` or through its registry alias)."""

    experiment: str = "ltr-lm"
    registered_model: str | None = "ltr-lm"
    """Name in the model registry (null = log the model without registering it)."""


@dataclass
class PretrainConfig:
    """Everything ``ltr pretrain`` needs."""

    model: LMConfig = field(default_factory=LMConfig)
    data: LMDataConfig = field(default_factory=LMDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: LMTrainerConfig = field(default_factory=LMTrainerConfig)
    tracking: LMTrackingConfig = field(default_factory=LMTrackingConfig)
    output_dir: str = "runs/pretrain"
    """Checkpoints and the model directory (``<output_dir>/model``) go here."""
    sample_tokens: int = 200
    """A causal model writes this many tokens after training (``sample.txt``, logged); 0 = none."""

    def __post_init__(self) -> None:
        # What pretraining checks of the model's settings, now, not after the tokenizer is
        # trained and the corpus encoded; the layers' messages name the key, not its section.
        try:
            check_buildable(self.model)
        except (ConfigError, RegistryError) as exc:
            raise ConfigError(f"model: {exc}") from None


def load_pretrain_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> PretrainConfig:
    """Load a YAML config (or the defaults), apply dotted overrides, validate."""
    return load_config(PretrainConfig, path, overrides)
