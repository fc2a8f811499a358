"""Lightning's progress bar, redrawn at most a few times a second.

Lightning's bars redraw (and read every logged metric back from the device) after every batch.
With a small model on a GPU a step takes a few milliseconds, and a Rich redraw costs about as much,
so an unthrottled bar slows training by a visible fraction (`docs/BENCHMARKS.md`, training
throughput on GPU). This bar skips the redraw of a batch that ends less than ``interval`` seconds
after the last one drawn; the first and the last batch of every loop are always drawn, so the bar
ends on the true count and the final loss.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

DEFAULT_INTERVAL = 0.25
"""Seconds between redraws: four a second reads as live and costs nothing measurable."""


class _Throttle:
    """Mixin for a Lightning progress bar class whose batch-end hooks set absolute positions."""

    def __init__(self, *args: Any, interval: float = DEFAULT_INTERVAL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if interval < 0:
            raise ValueError(f"progress bar interval must be >= 0 seconds, got {interval}")
        self.interval = interval
        self._last_draw = -float("inf")

    def _due(self, batch_idx: int, total: float) -> bool:
        now = time.monotonic()
        if batch_idx == 0 or batch_idx + 1 >= total or now - self._last_draw >= self.interval:
            self._last_draw = now
            return True
        return False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self._due(idx, trainer.num_training_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        total = trainer.num_val_batches[dataloader_idx] if trainer.num_val_batches else 0
        if self._due(idx, total):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, idx, dataloader_idx)


class ThrottledRichProgressBar(_Throttle, RichProgressBar):
    """Lightning's Rich bar, redrawn at most every ``interval`` seconds."""


class ThrottledTQDMProgressBar(_Throttle, TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every ``interval`` seconds."""


def progress_bar(interval: float = DEFAULT_INTERVAL) -> ProgressBar:
    """The bar Lightning would pick (Rich when installed, else tqdm), throttled."""
    if importlib.util.find_spec("rich") is not None:
        return ThrottledRichProgressBar(interval=interval)
    return ThrottledTQDMProgressBar(interval=interval)
