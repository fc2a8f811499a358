"""Lightning wiring of language-model pretraining: the module (model + loss) and the data."""

from __future__ import annotations

import math
from collections.abc import Iterable

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from ltr.errors import ConfigError
from ltr.lm.config import LMDataConfig
from ltr.lm.data import CausalWindows, MaskedWindows
from ltr.lm.masking import MaskedCollator
from ltr.lm.model import IGNORE_INDEX, TransformerLM, token_cross_entropy
from ltr.lm.tokenizer import TextTokenizer
from ltr.train.config import OptimConfig
from ltr.train.module import (
    TrainingDivergedError,
    WeightedMean,
    adamw_with_schedule,
    log_reduced,
    stepping_batches,
)


class LMModule(L.LightningModule):
    """Trains a :class:`TransformerLM` on ``(inputs, labels)`` batches with token cross-entropy.

    The same step serves both kinds: a causal batch's labels are the inputs shifted by one, a
    masked batch's labels are the hidden tokens (-100 elsewhere). Logged per epoch:
    ``train/loss``, ``val/loss`` (mean over labelled tokens), ``val/ppl`` = exp(``val/loss``)
    and ``val/accuracy`` (share of labelled tokens whose most likely prediction is right).
    """

    def __init__(self, model: TransformerLM, optim: OptimConfig, total_steps: int | None = None):
        super().__init__()
        self.model = model
        self.optim = optim
        self.total_steps = total_steps
        self.train_loss = WeightedMean()
        self.val_loss = MeanMetric()
        self.val_accuracy = MeanMetric()
        self.epoch_log: dict[str, float] = {}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, labels = batch  # (B, T), (B, T)
        loss = token_cross_entropy(self.model(inputs), labels)
        self.train_loss.update(loss.detach(), weight=(labels != IGNORE_INDEX).sum())
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, batch_size=inputs.shape[0])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, labels = batch  # (B, T), (B, T)
        loss, accuracy, count = token_stats(self.model(inputs), labels)
        if count:
            self.val_loss.update(loss, weight=count)
            self.val_accuracy.update(accuracy, weight=count)

    def on_validation_epoch_end(self) -> None:
        loss = float(self.val_loss.compute())
        log = {
            "val/loss": loss,
            "val/ppl": perplexity(loss),
            "val/accuracy": float(self.val_accuracy.compute()),
        }
        self.val_loss.reset()
        self.val_accuracy.reset()
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"training diverged: the validation loss of epoch {self.current_epoch} is {loss}; "
                "lower optim.lr or keep trainer.gradient_clip_val"
            )
        if self.train_loss.update_count:
            log["train/loss"] = float(self.train_loss.compute())
            self.train_loss.reset()
            log["train/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        log_reduced(self, log, prog_bar="val/loss")
        self.epoch_log = log

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.optim, stepping_batches(self, self.total_steps))


def token_stats(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """Mean cross-entropy and accuracy (most likely token right) over the labelled positions,
    and how many there are (loss and accuracy are undefined when there are none).

    Args:
        logits: ``[B, T, V]``.
        labels: ``[B, T]``; :data:`IGNORE_INDEX` = not predicted.
    """
    labelled = labels != IGNORE_INDEX  # (B, T)
    count = int(labelled.sum())
    if count == 0:
        return torch.tensor(math.nan), torch.tensor(math.nan), 0
    accuracy = (logits.argmax(dim=-1) == labels)[labelled].float().mean()
    return token_cross_entropy(logits, labels), accuracy, count


def perplexity(loss: float) -> float:
    """``exp(loss)``, capped so that a diverged loss stays finite."""
    return math.exp(min(loss, 50.0))


@torch.no_grad()
def evaluate_windows(model: TransformerLM, batches: Iterable[tuple[Tensor, Tensor]]) -> dict:
    """Held-out ``loss`` (mean cross-entropy per labelled token), ``ppl`` = exp(loss),
    ``accuracy`` (share of labelled tokens predicted right) and ``tokens`` (how many were
    labelled) over ``(inputs, labels)`` batches."""
    was_training = model.training
    model.eval()
    total = right = count = 0.0
    try:
        for inputs, labels in batches:
            loss, accuracy, n = token_stats(model(inputs).float(), labels)
            if n:
                total += float(loss) * n
                right += float(accuracy) * n
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("no labelled token to evaluate on: the held-out text is too short")
    return {
        "loss": total / count,
        "ppl": perplexity(total / count),
        "accuracy": right / count,
        "tokens": count,
    }


class LMDataModule(L.LightningDataModule):
    """Windows of a tokenised corpus: random windows for training (``steps_per_epoch`` batches
    an epoch, new draws every epoch), consecutive ones for validation. A masked model's batches
    are masked afresh at every draw (seeded)."""

    def __init__(
        self,
        config: LMDataConfig,
        tokenizer: TextTokenizer,
        train_ids: np.ndarray,
        valid_ids: np.ndarray,
        *,
        kind: str,
        block_size: int,
        seed: int = 0,
    ):
        super().__init__()
        self.config = config
        n = config.batch_size * config.steps_per_epoch
        if config.max_valid_windows is not None:
            valid_ids = valid_ids[: config.max_valid_windows * block_size + 1]
        self.collate = self.valid_collate = None
        if kind == "causal":
            self.train_set = CausalWindows(
                train_ids, block_size, random=True, num_samples=n, seed=seed
            )
            self.valid_set = CausalWindows(valid_ids, block_size, random=False)
        else:
            self.train_set = MaskedWindows(
                train_ids, block_size, random=True, num_samples=n, seed=seed
            )
            self.valid_set = MaskedWindows(valid_ids, block_size, random=False)
            p = config.mask_prob
            self.collate = MaskedCollator.from_tokenizer(tokenizer, mask_prob=p, seed=seed)
            # the same masks every epoch, so that validation losses compare across epochs
            self.valid_collate = MaskedCollator.from_tokenizer(
                tokenizer, mask_prob=p, seed=seed + 1, fixed=True
            )

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)
        if self.collate is not None:
            self.collate.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.config.batch_size, collate_fn=self.collate
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.valid_set, batch_size=self.config.batch_size, collate_fn=self.valid_collate
        )
