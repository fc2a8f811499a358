"""The LightningModule: combines a model, a loss and validation metrics, nothing else."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric

from ltr.errors import LtrError
from ltr.losses.listwise import listnet_loss
from ltr.metrics import evaluate_batch
from ltr.train.config import OptimConfig
from ltr.types import ListBatch, LossFn


class TrainingDivergedError(LtrError):
    """The training loss became NaN or infinite."""


class WeightedMean(Metric):
    """``sum(value * weight) / sum(weight)`` over the updates (summed over processes).

    For the training loss, updated every step: it neither checks for NaN nor reads a value back
    from the device, so a GPU step never waits on it (the epoch's mean is checked instead).
    torchmetrics' ``MeanMetric(nan_strategy="disable")`` cannot stand in: it drops the weights
    (torchmetrics 1.9), which made ``train/loss`` the plain mean of the batches' losses.
    """

    full_state_update = False
    total: Tensor
    weight: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: Tensor, weight: Tensor | float | None = None) -> None:
        """Add ``value`` with ``weight``; without one, add every element of ``value`` with weight
        1 (none at all is an update too, so that every process of a DDP run reaches the same
        ``compute``, which gathers over them)."""
        if weight is None:
            self.total += value.to(self.total.dtype).sum()
            self.weight += value.numel()
            return
        weight = torch.as_tensor(weight, dtype=self.total.dtype, device=self.total.device)
        self.total += value.to(self.total.dtype) * weight
        self.weight += weight

    def compute(self) -> Tensor:
        return self.total / self.weight  # NaN when no process added anything


def distill_loss(scores: Tensor, teacher_scores: Tensor, batch: ListBatch, temperature: float):
    """``T^2 * ListNet(scores / T, teacher / T)``: the cross-entropy between the teacher's and the
    model's top-one distributions over each list (Hinton et al.'s scaling by ``T^2`` keeps the
    gradient's size across temperatures). ``teacher_scores`` is ``[N]`` per dataset row."""
    if batch.rows is None:
        raise ValueError("distillation needs the batch's dataset rows (ListBatch.rows)")
    teacher = teacher_scores[batch.rows.clamp(min=0)]  # (B, L); padded slots masked below
    t = temperature
    return t * t * listnet_loss(scores / t, teacher / t, mask=batch.mask)


class RankingModule(L.LightningModule):
    """Trains ``model`` with ``loss_fn``; validates with ranking metrics over whole lists.

    Logged per epoch: ``train/loss`` (the epoch's lists' mean loss), ``val/loss`` and
    ``val/<metric>`` for every validation metric (lists with no relevant item follow ``empty``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        optim: OptimConfig,
        *,
        metrics: Sequence[str],
        empty: str = "one",
        monitor: str = "ndcg@10",
        max_grade: float = 2.0,
        total_steps: int | None = None,
        teacher_scores: Tensor | None = None,
        distill_weight: float = 1.0,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.optim = optim
        self.metric_names = list(metrics)
        self.empty = empty
        self.monitor = monitor
        self.max_grade = max_grade
        self.total_steps = total_steps
        # A teacher's scores of every training row (standardised within each list), when
        # distilling. A plain attribute, not a buffer: not part of the model's weights, and not
        # broadcast by DDP at every step; moved to the batches' device when first used.
        self.teacher_scores = teacher_scores
        self.distill_weight = distill_weight
        self.temperature = temperature
        # No per-step NaN check (it would force a GPU sync every step); the epoch mean is checked.
        self.train_loss = WeightedMean()
        self.val_loss = MeanMetric()
        # Metric keys cannot hold '@' or '.', so index them by position.
        self.val_metrics = nn.ModuleList(WeightedMean() for _ in self.metric_names)
        self.epoch_log: dict[str, float] = {}

    def forward(self, batch: ListBatch) -> Tensor:
        return self.model(batch.features, batch.mask, batch.initial_rank, batch.context)  # (B, L)

    def training_step(self, batch: ListBatch, batch_idx: int) -> Tensor:
        scores = self(batch)
        loss = self.loss_fn(scores.float(), batch.labels, mask=batch.mask)
        if self.teacher_scores is not None and self.distill_weight > 0:
            if self.teacher_scores.device != scores.device:
                self.teacher_scores = self.teacher_scores.to(scores.device)
            loss = loss + self.distill_weight * distill_loss(
                scores.float(), self.teacher_scores, batch, self.temperature
            )
        self.train_loss.update(loss.detach(), weight=batch.batch_size)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch: ListBatch, batch_idx: int) -> None:
        scores = self(batch).float()
        if not torch.isfinite(scores[batch.mask]).all():
            raise TrainingDivergedError(
                f"training diverged: the model outputs non-finite scores at epoch "
                f"{self.current_epoch}; lower optim.lr, keep trainer.gradient_clip_val, or check "
                "the data"
            )
        loss = self.loss_fn(scores, batch.labels, mask=batch.mask)
        self.val_loss.update(loss, weight=batch.batch_size)
        values = evaluate_batch(
            scores,
            batch.labels,
            mask=batch.mask,
            metrics=self.metric_names,
            empty=self.empty,
            max_grade=self.max_grade,
            reduction="none",
        )
        for meter, name in zip(self.val_metrics, self.metric_names, strict=True):
            per_list = values[name]
            kept = per_list[~torch.isnan(per_list)]  # dropped lists (empty="drop") and padding
            meter.update(kept)

    def on_validation_epoch_end(self) -> None:
        log: dict[str, float] = {"val/loss": float(self.val_loss.compute())}
        self.val_loss.reset()
        for meter, name in zip(self.val_metrics, self.metric_names, strict=True):
            # Every process computes (a gather under DDP), even one whose lists were all
            # dropped: skipping it there would leave the others waiting.
            log[f"val/{name}"] = float(meter.compute()) if meter.update_count else math.nan
            meter.reset()
        if self.trainer.sanity_checking:
            return
        if self.train_loss.update_count:
            log["train/loss"] = self._epoch_train_loss()
        log_reduced(self, log, prog_bar=f"val/{self.monitor}")
        self.epoch_log = log

    def on_train_epoch_end(self) -> None:
        # Without validation data the epoch's loss is reported here instead.
        if self.train_loss.update_count:
            self.epoch_log = {"train/loss": self._epoch_train_loss()}
            log_reduced(self, self.epoch_log)

    def _epoch_train_loss(self) -> float:
        value = float(self.train_loss.compute())
        self.train_loss.reset()
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged: the mean training loss of epoch {self.current_epoch} is "
                f"{value}; lower optim.lr, keep trainer.gradient_clip_val, or check the data"
            )
        return value

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.optim, stepping_batches(self, self.total_steps))


def log_reduced(
    module: L.LightningModule, values: Mapping[str, float], *, prog_bar: str | None = None
) -> None:
    """``module.log`` epoch values that are already the same on every process: the means of
    torchmetrics meters, whose ``compute()`` reduces their states over all processes of a
    distributed run, and what follows from them alone (a perplexity, the learning rate).

    Lightning cannot tell, and in a distributed run it advises at every epoch's end to log
    each of them with ``sync_dist=True`` (a ``PossibleUserWarning`` per key); that would only
    average equal numbers once more, so the advice is silenced for exactly these keys.
    """
    for key in values:
        advice = f"It is recommended to use `self.log({key!r}, ..., sync_dist=True)`"
        warnings.filterwarnings("ignore", re.escape(advice), PossibleUserWarning)
    for key, value in values.items():
        module.log(key, value, prog_bar=key == prog_bar, sync_dist=False)


def stepping_batches(module: L.LightningModule, fallback: int | None) -> int | None:
    """Optimiser steps the whole fit will take, as the attached Trainer counts them (it knows
    the epochs, the processes a distributed run splits each epoch over and gradient
    accumulation); ``fallback`` when no Trainer is attached or it cannot tell."""
    try:
        steps = module.trainer.estimated_stepping_batches
    except RuntimeError:  # not attached to a Trainer
        return fallback
    return int(steps) if math.isfinite(steps) else fallback


def adamw_with_schedule(model: nn.Module, optim: OptimConfig, total_steps: int | None) -> dict:
    """AdamW (no weight decay on biases, norms and other 1-D parameters) with linear warm-up
    and, for ``schedule: cosine``, a cosine decay to ``lr * min_lr_ratio`` at ``total_steps``;
    in the form ``LightningModule.configure_optimizers`` returns."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=optim.lr,
    )
    warmup, total = optim.warmup_steps, total_steps
    floor = optim.min_lr_ratio
    cosine = optim.schedule == "cosine" and total is not None and total > warmup

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
