"""Lightning's progress bar, redrawn at most a few times a second; a line per epoch instead when
the output is not a terminal.

Lightning's bars redraw (and read every logged metric back from the device) after every batch.
With a small model on a GPU a step takes a few milliseconds, and a Rich redraw costs about as much,
so an unthrottled bar slows training by a visible fraction (`docs/BENCHMARKS.md`, training
throughput on GPU). This bar skips the redraw of a batch that ends less than ``interval`` seconds
after the last one drawn; the first and the last batch of every loop are always drawn, so the bar
ends on the true count and the final loss.

Written to a file or a pipe (``make demo > log``, a CI job, a container's log), a bar's redraws
are carriage returns and escape codes that fill the log; there :class:`EpochLines` writes one
plain line per epoch (its number, the bar's metrics and its duration) instead.
"""

from __future__ import annotations

import importlib.util
import sys
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


class EpochLines(ProgressBar):
    """One line per training epoch on ``stream`` (default stdout, looked up when written):
    ``epoch 3 of 30  loss 1.2345  val/ndcg@10 0.7123  (best 0.7200 at epoch 2)  (1.4 s)``,
    with the metrics the bar would show and the checkpoint's monitored metric, at the end of
    the epoch (after its validation). Epochs count from 0, as Lightning's bar, the saved
    ``best_epoch`` and the commands' summaries count them. A resumed run's best starts again
    from its first epoch after the resume."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream
        self._enabled = True
        self._started = 0.0
        self._best: tuple[float, int] | None = None  # the monitored metric's best, its epoch

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        metrics = self.get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        shown = [f"{name} {_number(value)}" for name, value in metrics.items()]
        checkpoint = trainer.checkpoint_callback
        monitor = getattr(checkpoint, "monitor", None)
        if monitor is not None and monitor in trainer.callback_metrics:
            value = float(trainer.callback_metrics[monitor])
            if monitor not in metrics:
                shown.append(f"{monitor} {_number(value)}")
            sign = -1.0 if getattr(checkpoint, "mode", "min") == "max" else 1.0
            if self._best is None or sign * value < sign * self._best[0]:
                self._best = (value, trainer.current_epoch)
            shown.append(f"(best {_number(self._best[0])} at epoch {self._best[1]})")
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        took = time.monotonic() - self._started
        parts = [f"epoch {trainer.current_epoch} of {epochs}", *shown, f"({took:.1f} s)"]
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


def progress_bar(interval: float = DEFAULT_INTERVAL) -> ProgressBar:
    """The bar Lightning would pick (Rich when installed, else tqdm), throttled, when the stream
    it draws on (stdout for Rich, stderr for tqdm) is a terminal; :class:`EpochLines` when not."""
    if importlib.util.find_spec("rich") is not None:
        if not _is_terminal(sys.stdout):
            return EpochLines()
        return ThrottledRichProgressBar(interval=interval)
    if not _is_terminal(sys.stderr):
        return EpochLines()
    return ThrottledTQDMProgressBar(interval=interval)


def _number(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced, or closed
        return False
