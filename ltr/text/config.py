"""Typed configuration of ``ltr finetune`` (YAML presets in ``configs/text/`` mirror it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltr.config import load_config
from ltr.errors import ConfigError
from ltr.train.config import LightningConfig, OptimConfig, TrackingConfig


@dataclass
class TextDataConfig:
    """A text collection, how its queries are split and how candidates are retrieved.

    ``ltr text-features`` takes the same keys, so that a fine-tuned encoder is tested on the
    queries it was not trained on."""

    collection: str = ""
    """A folder with ``docs.jsonl[.xz]``, ``queries[_<split>].jsonl``, ``qrels[_<split>].tsv``."""
    split: str | None = None
    """The collection's own split to read (SciFact: ``train``, ``dev``); null = the only one."""
    query_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    """Train / validation / test shares of the judged queries (seeded by ``split_seed``)."""
    split_seed: int = 0
    candidates: int = 100
    """BM25's top-k documents per query: the lists to rerank."""
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    list_size: int = 16
    """Training lists: this many of a query's candidates (its relevant ones first, at most
    ``list_size - 1`` of them, then others at random), drawn afresh every epoch."""
    batch_size: int = 8
    """Queries per training step."""
    lm_batch_size: int = 16
    """Windows of collection text per training step for ``L_pretrain`` (unused when
    ``lm_weight`` is 0)."""
    max_query_tokens: int = 64
    max_doc_tokens: int | None = None
    """Documents are cut to this many tokens (null = the encoder's ``block_size``)."""
    mask_prob: float = 0.15
    """Masked encoders: share of the tokens chosen for ``L_pretrain``."""

    def __post_init__(self) -> None:
        if len(self.query_fractions) != 3:
            raise ConfigError("data.query_fractions needs three shares: train, valid, test")
        if self.candidates < 2:
            raise ConfigError(f"data.candidates must be at least 2, got {self.candidates}")
        if self.list_size < 2:
            raise ConfigError(f"data.list_size must be at least 2, got {self.list_size}")
        if min(self.batch_size, self.lm_batch_size, self.max_query_tokens) < 1:
            raise ConfigError(
                "data.batch_size, data.lm_batch_size and data.max_query_tokens must be at least 1"
            )
        if self.max_doc_tokens is not None and self.max_doc_tokens < 1:
            raise ConfigError("data.max_doc_tokens must be at least 1 (or null)")
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"data.mask_prob must be in (0, 1), got {self.mask_prob}")


@dataclass
class FinetuneTrainerConfig(LightningConfig):
    """Lightning options of a fine-tuning run; the best epoch has the highest validation NDCG@10
    of the encoder alone."""

    max_epochs: int = 10
    early_stopping_patience: int | None = 3


@dataclass
class FinetuneTrackingConfig(TrackingConfig):
    """MLflow tracking of a fine-tuning run; the encoder is logged under ``lm`` like a
    pretrained one."""

    experiment: str = "ltr-text"
    registered_model: str | None = "ltr-text-encoder"
    """Name in the model registry (null = log the model without registering it)."""


ARCHITECTURES = ("bi", "cross")


@dataclass
class FinetuneConfig:
    """Everything ``ltr finetune`` needs: ``L = L_task + lm_weight * L_pretrain``."""

    encoder: str = ""
    """The pretrained language model: a model directory, ``runs:/<id>/lm`` or ``models:/…``."""
    data: TextDataConfig = field(default_factory=TextDataConfig)
    architecture: str = "bi"
    """``bi``: the encoder maps a query and a document apart to vectors, scored by their cosine
    (``ltr text-features`` column ``sim_NAME``; documents' vectors can be cached). ``cross``: a
    cross-encoder reads ``query [SEP] document`` as one sequence and a linear head on its pooled
    hidden states gives the score (column ``cross_NAME``; one forward pass per pair, nothing to
    cache)."""
    loss: str = "softmax"
    """``L_task``: a listwise loss of ``ltr.losses`` over the scores (a bi-encoder's cosine
    similarities / temperature, a cross-encoder's head outputs)."""
    lm_weight: float = 0.5
    """λ: weight of the language-model loss on the collection's text (0 = task loss only)."""
    temperature: float = 0.05
    """A bi-encoder's scores are cosine similarities divided by this (unused by ``cross``)."""
    crossfit_folds: int = 0
    """K >= 2: also fine-tune K encoders, each on the training queries less one K-th of them,
    saved inside the model directory (``crossfit/fold<k>``). ``ltr text-features`` then gives
    each training query the similarity of the encoder that never saw it, so a ranker trained on
    those rows learns what the column is worth on new queries (docs/TEXT.md, "Fine-tuned
    encoders and leakage"). 0 = off. Costs K more fine-tuning runs."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=20))
    trainer: FinetuneTrainerConfig = field(default_factory=FinetuneTrainerConfig)
    tracking: FinetuneTrackingConfig = field(default_factory=FinetuneTrackingConfig)
    output_dir: str = "runs/finetune"
    """Checkpoints and the model directory (``<output_dir>/model``) go here."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}"
            )
        if self.lm_weight < 0:
            raise ConfigError(f"lm_weight must be >= 0, got {self.lm_weight}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.crossfit_folds < 0 or self.crossfit_folds == 1:
            raise ConfigError(
                f"crossfit_folds must be 0 (off) or at least 2, got {self.crossfit_folds}"
            )
        from ltr.losses import get_loss

        get_loss(self.loss)  # now, not once the encoder and the collection are loaded


def load_finetune_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> FinetuneConfig:
    """Defaults, then the YAML file, then dotted overrides."""
    return load_config(FinetuneConfig, path, overrides)


def check_finetune_config(config: FinetuneConfig) -> None:
    """What a run needs beyond valid values: an encoder and a collection to tune it on."""
    if not config.encoder:
        raise ConfigError("no encoder given: set encoder (a pretrained model directory or URI)")
    if not config.data.collection:
        raise ConfigError("no collection given: set data.collection (a text collection folder)")
