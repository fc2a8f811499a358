"""Training throughput of ``ltr train`` (Lightning) against a plain PyTorch loop, in lists/second.

Both sides get what ``ltr train`` builds from the config (default ``configs/setrank_imsab.yaml``,
read at run time): the script runs :func:`ltr.train.run.train` up to ``trainer.fit`` with a
stand-in ``lightning.Trainer`` and keeps the Trainer arguments (callbacks, clipping, precision,
progress bar, ...), the :class:`~ltr.train.module.RankingModule` and the
:class:`~ltr.train.datamodule.ListDataModule` it was about to fit. Each side gets its own such
capture: same initial weights, seed, data, loss, optimizer, schedule and batches.

* **Lightning**: ``lightning.Trainer(**captured)`` fits with validation, checkpointing, early
  stopping and MLflow tracking (to a temporary store) as in ``ltr train``; an epoch is timed from
  its start to the next one's, minus the validation loop.
* **plain**: the data module's ``DataLoader`` + forward + loss + backward + ``clip_grad_norm_`` +
  ``optimizer.step`` + ``scheduler.step`` (optimizer and schedule from
  ``RankingModule.configure_optimizers``) and the epoch's mean loss.

Epochs alternate (L P L P ..., plain first in every other round) so load from other processes
hits both; the first epoch of each side in a round is a warm-up. Writes its section of
``docs/BENCHMARKS.md``.

Run: ``python -m benchmarks.training_throughput [--config PATH] [--rounds 3] [--epochs 7]
[--threads 1] [--devices cpu cuda] [--no-write] [dotted config overrides, e.g. --data.fold 2]``
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback

from benchmarks._report import DEFAULT_CONFIG, markdown_table, write_section
from ltr.config import parse_overrides
from ltr.train.config import TrainConfig, load_train_config
from ltr.train.datamodule import ListDataModule
from ltr.train.module import RankingModule


class _Stop(Exception):
    """Raised by the stand-in Trainer to stop ``train()`` at ``fit``."""


@dataclass
class Captured:
    """What ``ltr train`` was about to fit: Trainer arguments, module and data module."""

    trainer_kwargs: dict[str, Any]
    module: RankingModule
    datamodule: ListDataModule


@dataclass
class RunTiming:
    """One run of one side: per-epoch seconds, mean training loss and batch order."""

    lists: int
    """Training lists per epoch."""
    precision: str
    seconds: list[float] = field(default_factory=list)
    """Wall seconds of each epoch."""
    cpu_seconds: list[float] = field(default_factory=list)
    """CPU seconds of this process in each epoch."""
    end_seconds: list[float] = field(default_factory=list)
    """Lightning only: wall seconds from the last batch's end to the epoch's end (no validation)."""
    losses: list[float] = field(default_factory=list)
    batches: list[list[torch.Tensor]] = field(default_factory=list)
    """``query_index`` of every batch of every epoch (kept as tensors: no device sync)."""


def capture(config: TrainConfig) -> Captured:
    """Run :func:`ltr.train.run.train` up to ``trainer.fit`` and return what it set up."""
    import ltr.train.run as run

    if getattr(run, "L", None) is not lightning or hasattr(run, "Trainer"):
        raise RuntimeError("ltr.train.run no longer calls L.Trainer(...): update capture()")
    got: dict[str, Any] = {}

    class StandIn:
        def __init__(self, **kwargs: Any) -> None:
            got["trainer_kwargs"] = kwargs

        def fit(self, module: RankingModule, datamodule: ListDataModule, **_: Any) -> None:
            got.update(module=module, datamodule=datamodule)
            raise _Stop

    real = lightning.Trainer
    lightning.Trainer = StandIn  # train() looks up L.Trainer when it calls it
    try:
        run.train(config, verbose=True)
    except _Stop:
        pass
    finally:
        lightning.Trainer = real
    if "module" not in got:
        raise RuntimeError("ltr.train.run.train returned without calling trainer.fit")
    datamodule, make_loader = got["datamodule"], got["datamodule"].train_dataloader
    shuffle = torch.Generator().manual_seed(config.trainer.seed)
    loader_seeds = torch.Generator().manual_seed(config.trainer.seed + 1)

    def seeded_loader() -> torch.utils.data.DataLoader:
        # The shuffle and the loader's per-iterator seed draw from their own generators, not
        # from the global RNG (dropout's): both sides see the same batches and dropout masks.
        loader = make_loader()
        loader.sampler.generator = shuffle
        loader.generator = loader_seeds
        return loader

    datamodule.train_dataloader = seeded_loader
    return Captured(**got)


def _clock(device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) once the device has finished its queued work."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


class PlainLoop:
    """A plain PyTorch training loop over a captured set-up, one epoch per call.

    It keeps its own global-RNG stream (dropout), so running its epochs between Lightning's
    changes neither side's random numbers.
    """

    def __init__(self, cap: Captured, device: str) -> None:
        kw = cap.trainer_kwargs
        self.device, self.datamodule = device, cap.datamodule
        self.model, self.loss_fn = cap.module.model.to(device), cap.module.loss_fn
        opt = cap.module.configure_optimizers()
        self.optimizer, self.scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.clip = kw["gradient_clip_val"]
        self.bf16 = str(kw["precision"]).startswith("bf16")
        self.loader = cap.datamodule.train_dataloader()
        self.timing = RunTiming(len(cap.datamodule.train_set), str(kw["precision"]))
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state() if device == "cuda" else None

    def epoch(self, epoch: int) -> None:
        """Train one epoch: DataLoader, forward, loss, backward, clip, optimizer and LR step."""
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state(self.cuda_rng)
            self._epoch(epoch)
            self.rng = torch.get_rng_state()
            self.cuda_rng = torch.cuda.get_rng_state() if self.device == "cuda" else None

    def _epoch(self, epoch: int) -> None:
        device, order = self.device, []
        autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=self.bf16)
        self.model.train()
        wall, cpu = _clock(device)
        self.datamodule.set_epoch(epoch)
        total, count = torch.zeros((), device=device), 0
        for batch in self.loader:
            order.append(batch.query_index)
            batch = batch.to(device)
            with autocast:
                scores = self.model(batch.features, batch.mask, batch.initial_rank, batch.context)
                loss = self.loss_fn(scores.float(), batch.labels, mask=batch.mask)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip)
            self.optimizer.step()
            self.scheduler.step()
            total += loss.detach() * batch.batch_size
            count += batch.batch_size
        self.timing.losses.append(float(total / count))
        wall_end, cpu_end = _clock(device)
        self.timing.seconds.append(wall_end - wall)
        self.timing.cpu_seconds.append(cpu_end - cpu)
        self.timing.batches.append(order)


class _Interleave(Callback):
    """Times Lightning's epochs and runs the plain loop's epochs between them, untimed by it.

    A Lightning epoch runs from its ``on_train_epoch_start`` to the next one's (or
    ``on_train_end``), so the other callbacks' epoch-end work (checkpoint, early stopping, MLflow)
    counts; the validation loop does not. Order: L0 P0 L1 P1 ... or, with ``plain_first``,
    P0 L0 P1 L1 ...
    """

    def __init__(self, device: str, timing: RunTiming, plain: PlainLoop, plain_first: bool):
        self.device, self.timing, self.plain, self.plain_first = device, timing, plain, plain_first
        self.started: tuple[float, float] | None = None
        self.val_started = (0.0, 0.0)
        self.in_val = [0.0, 0.0]
        self.last_batch_end = 0.0
        self.rng = torch.get_rng_state()

    def _close_epoch(self) -> None:
        if self.started is None:
            return
        wall, cpu = _clock(self.device)
        self.timing.seconds.append(wall - self.started[0] - self.in_val[0])
        self.timing.cpu_seconds.append(cpu - self.started[1] - self.in_val[1])
        self.timing.end_seconds.append(wall - self.last_batch_end - self.in_val[0])
        self.started = None
        if not self.plain_first:
            self.plain.epoch(len(self.timing.seconds) - 1)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._close_epoch()
        if self.plain_first:
            self.plain.epoch(trainer.current_epoch)
        self.timing.batches.append([])
        self.in_val = [0.0, 0.0]
        self.started = _clock(self.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.timing.batches[-1].append(batch.query_index)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last_batch_end = time.perf_counter()
        # The validation loop draws a loader seed from the global RNG before any of its hooks
        # run; putting the state back afterwards keeps dropout masks in step with the plain loop.
        self.rng = torch.get_rng_state()

    def on_validation_start(self, trainer, pl_module) -> None:
        self.val_started = _clock(self.device)

    def on_validation_end(self, trainer, pl_module) -> None:
        torch.set_rng_state(self.rng)
        wall, cpu = _clock(self.device)
        self.in_val[0] += wall - self.val_started[0]
        self.in_val[1] += cpu - self.val_started[1]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.timing.losses.append(pl_module.epoch_log.get("train/loss", math.nan))

    def on_train_end(self, trainer, pl_module) -> None:
        self._close_epoch()


def run_round(
    config: TrainConfig, epochs: int, device: str, plain_first: bool
) -> tuple[RunTiming, RunTiming]:
    """One Lightning fit of ``epochs`` epochs with a plain loop's epochs interleaved."""
    lit, plain_setup = capture(config), capture(config)
    # Lightning's LR schedule spans the steps of this fit (its estimated_stepping_batches);
    # the plain loop's optimizer is made outside a Trainer, so give it the same span.
    plain_setup.module.total_steps = epochs * len(plain_setup.datamodule.train_dataloader())
    plain = PlainLoop(plain_setup, device)
    kwargs = dict(lit.trainer_kwargs)
    timing = RunTiming(len(lit.datamodule.train_set), str(kwargs["precision"]))
    kwargs["max_epochs"] = epochs
    kwargs["callbacks"] = [*kwargs["callbacks"], _Interleave(device, timing, plain, plain_first)]
    torch.set_rng_state(plain.rng)  # both sides start from the same global-RNG state
    trainer = lightning.Trainer(**kwargs)
    try:
        trainer.fit(lit.module, datamodule=lit.datamodule)
    finally:
        for callback in kwargs["callbacks"]:
            if hasattr(callback, "tracker"):  # ltr.train.run.TrackingCallback ends its MLflow run
                callback.close()
    return timing, plain.timing


@dataclass
class DeviceResult:
    """Both sides' timings on one device."""

    device: str
    lightning: list[RunTiming]
    plain: list[RunTiming]

    @property
    def lists(self) -> int:
        return self.lightning[0].lists

    @property
    def precision(self) -> str:
        return self.lightning[0].precision

    def rates(self, side: str, clock: str = "wall", *, first: bool = False) -> list[float]:
        """Lists/s of the first epoch of each round, or of every later (warm) epoch."""
        runs = self.lightning if side == "lightning" else self.plain
        per_run = [run.seconds if clock == "wall" else run.cpu_seconds for run in runs]
        return [self.lists / s for secs in per_run for s in (secs[:1] if first else secs[1:])]

    def paired_ratio(self, clock: str = "wall") -> float:
        """Median over warm epochs k of (Lightning lists/s / plain lists/s) in epoch k."""
        lit, pl = self.rates("lightning", clock), self.rates("plain", clock)
        return statistics.median(a / b for a, b in zip(lit, pl, strict=True))

    def epoch_end_ms(self) -> float:
        """Median wall ms of Lightning's epoch-end work (warm epochs, validation excluded)."""
        return 1e3 * statistics.median(s for run in self.lightning for s in run.end_seconds[1:])

    def same_batches(self) -> bool:
        """Whether both sides saw the same batches in the same order in every epoch."""

        def lists(run: RunTiming) -> list[list[list[int]]]:
            return [[b.tolist() for b in epoch] for epoch in run.batches]

        pairs = zip(self.lightning, self.plain, strict=True)
        return all(lists(a) == lists(b) for a, b in pairs)

    def loss_gap(self, first_only: bool = False) -> float:
        """Largest relative difference |L - P| / |P| of an epoch's mean training loss (over all
        epochs, or over each round's first epoch only)."""
        gaps = [
            abs(x - y) / max(abs(y), 1e-12)
            for a, b in zip(self.lightning, self.plain, strict=True)
            for x, y in list(zip(a.losses, b.losses, strict=True))[: 1 if first_only else None]
        ]
        return max(gaps)


def measure(config: TrainConfig, device: str, rounds: int, epochs: int) -> DeviceResult:
    """``rounds`` interleaved fits, alternately Lightning first and plain first."""
    result = DeviceResult(device, [], [])
    for r in range(rounds):
        lit, plain = run_round(config, epochs, device, plain_first=r % 2 == 1)
        result.lightning.append(lit)
        result.plain.append(plain)
        for name, t in (("lightning", lit), ("plain", plain)):
            wall = ", ".join(f"{t.lists / s:.0f}" for s in t.seconds)
            cpu = ", ".join(f"{t.lists / s:.0f}" for s in t.cpu_seconds)
            print(f"[{device}] round {r + 1}/{rounds} {name:9s} lists/s wall {wall}; cpu {cpu}")
    return result


def device_config(args: argparse.Namespace, device: str, workdir: Path) -> TrainConfig:
    """``--config`` plus overrides, on ``device``, writing (checkpoints, MLflow) to ``workdir``."""
    overrides = {
        **parse_overrides(args.overrides),
        "trainer.accelerator": "gpu" if device == "cuda" else "cpu",
        "trainer.devices": 1,
        "tracking.tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}",
        "output_dir": str(workdir / "out"),
    }
    return load_train_config(args.config, overrides)


def _range(rates: list[float]) -> str:
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"


LOSS_AGREEMENT = 1e-5
"""Largest relative loss gap still read as the same training: a GPU's sums may run in another
order from one step to the next (atomic adds), which moves losses in the 7th digit."""


def _loss_agreement(results: list[DeviceResult]) -> str:
    gap = max((res.loss_gap() for res in results), default=0.0)
    if gap == 0:
        return (
            "Their epoch losses are equal to the last bit (the loss gap above is 0): the two "
            "sides compute the same training."
        )
    if gap <= LOSS_AGREEMENT:
        return (
            f"Their epoch losses agree to {gap:.1e} (relative): the same training, up to the "
            "order in which the device adds numbers up."
        )
    return (
        f"Their epoch losses differ by up to {gap:.1e} (relative): the two sides do not compute "
        "the same training, so the comparison is not like for like."
    )


def report(results: list[DeviceResult], skipped: list[str], args: argparse.Namespace) -> str:
    """The Markdown body of this benchmark's section."""
    rows = []
    for res, clock in ((res, clock) for res in results for clock in ("wall", "cpu")):
        lit, pl = res.rates("lightning", clock), res.rates("plain", clock)
        ratio = statistics.median(lit) / statistics.median(pl)
        overhead = f"{100 * (1 - ratio):.1f} %"
        overhead = f"**{overhead}**" if clock == "wall" else overhead
        name = "wall" if clock == "wall" else "process CPU"
        row = [res.device, res.precision, name, _range(lit), _range(pl), f"{ratio:.3f}", overhead]
        rows.append([*row, f"{res.paired_ratio(clock):.3f}"])
    headers = ["device", "precision", "clock", "Lightning lists/s, median (min–max)"]
    headers += ["plain lists/s, median (min–max)", "L / P", "Lightning overhead 1 − L/P"]
    table = markdown_table([*headers, "L / P, median of paired epochs"], rows)
    checks = [
        f"{res.device}: {len(res.rates('lightning'))} warm epochs per side; first epochs "
        f"{statistics.median(res.rates('lightning', first=True)):,.0f} (Lightning) / "
        f"{statistics.median(res.rates('plain', first=True)):,.0f} (plain) lists/s wall; "
        f"Lightning's epoch-end work (checkpoint, early stopping, MLflow, epoch metrics) "
        f"{res.epoch_end_ms():.0f} ms per epoch; same batches in every epoch: "
        f"{'yes' if res.same_batches() else 'NO'}; largest relative difference of an epoch's "
        f"mean training loss between the sides: {res.loss_gap(first_only=True):.1e} in the "
        f"first epoch of a round, {res.loss_gap():.1e} over all epochs."
        for res in results
    ]
    extra = f" with `{' '.join(args.overrides)}`" if args.overrides else ""
    notes = [
        f"Config `{Path(args.config).name}`{extra}, "
        f"{results[0].lists if results else '?'} training lists (MQ2008 Fold1, S1–S3) per epoch; "
        f"{args.rounds} rounds, each one Lightning fit of {args.epochs} epochs with a plain "
        "loop's epochs interleaved (L P L P ..., plain first in odd rounds), both from a fresh "
        "`ltr train` set-up (same initial weights, same seed).",
        "Lightning = `ltr train`'s own `lightning.Trainer` arguments (progress bar, per-step and "
        "per-epoch logging, gradient clipping, checkpointing, early stopping, MLflow tracking to a "
        "temporary SQLite store); an epoch is timed from its start to the next one's, minus the "
        "validation loop. Plain = DataLoader + forward + loss + backward + clip_grad_norm_ + "
        "optimizer.step + scheduler.step + the epoch's mean loss. Lists/s = lists / epoch "
        "seconds, every epoch but the first of each round; L / P = ratio of the medians; the "
        "paired ratio pairs the two sides' k-th epochs of a round (adjacent in time), which "
        "cancels slow changes in the machine's load. Wall time is what the issue asks for; "
        "process CPU time is less sensitive to other processes on a shared machine.",
        "Checks: " + " ".join(checks),
        "Both sides' shuffles draw from their own seeded generators, the plain loop keeps its "
        "own global-RNG stream, and the benchmark puts the global RNG state back after each "
        "validation loop (whose DataLoader draws a seed from it): both sides see the same batches "
        "and dropout masks. "
        + _loss_agreement(results)
        + " (Until 2026-11-23 they differed by about 1 %: Lightning's epoch loss was the plain "
        "mean of its batches' losses, not weighted by their lists, and the plain loop's cosine "
        "LR schedule spanned the config's 100 epochs instead of this fit's.)",
    ]
    notes += [
        f"GPU not measured here: {why} (see the GPU section, measured with `--devices cuda`)."
        for why in skipped
    ]
    return table + "\n\n" + "\n\n".join(notes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML training config")
    parser.add_argument("--rounds", type=int, default=3, help="fits, each with fresh models")
    parser.add_argument("--epochs", type=int, default=7, help="epochs per fit (first = warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU: 1)")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs alone")
    args, args.overrides = parser.parse_known_args(argv)
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs must be at least 2 (the first is a warm-up) and --rounds at least 1")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r".*exists and is not empty")  # reused output dir
    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="ltr-throughput-") as tmp:
        for device in args.devices:
            if device == "cuda" and not torch.cuda.is_available():
                skipped.append("no CUDA device on this machine")
                print("GPU not measured: no CUDA device on this machine")
                continue
            workdir = Path(tmp) / device
            workdir.mkdir()
            config = device_config(args, device, workdir)
            results.append(measure(config, device, args.rounds, args.epochs))
    body = report(results, skipped, args)
    print(body)
    if not args.no_write:
        argv = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "-m", "benchmarks.training_throughput", *argv])
        # A GPU machine rarely runs the CPU side too: a CUDA-only run keeps its own section, so
        # that the CPU numbers (measured where CI runs) and the GPU numbers coexist.
        gpu_only = args.devices == ["cuda"]
        name = "training_throughput_cuda" if gpu_only else "training_throughput"
        title = "Training throughput: Lightning vs plain PyTorch" + (" (GPU)" if gpu_only else "")
        write_section(name, title, command, body)


if __name__ == "__main__":
    main()
