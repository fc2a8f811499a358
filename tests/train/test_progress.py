"""The throttled progress bar draws the first and last batch of a loop and skips the rest
when batches end faster than its interval."""

import importlib.util
import re
from types import SimpleNamespace

import pytest

from ltr.train.progress import _Throttle


class _Recorder:
    """Stands in for a Lightning bar: records the batches it was asked to draw."""

    def __init__(self) -> None:
        self.train, self.val = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, idx) -> None:
        self.train.append(idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, idx, dl=0) -> None:
        self.val.append(idx)


class _Bar(_Throttle, _Recorder):
    pass


def _run(bar: _Bar, trainer, n: int, clock: list[float], step: float) -> None:
    for i in range(n):
        clock[0] += step
        bar.on_train_batch_end(trainer, None, None, None, i)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("ltr.train.progress.time.monotonic", lambda: now[0])
    return now


def test_fast_batches_draw_first_last_and_once_per_interval(clock):
    bar = _Bar(interval=0.25)
    trainer = SimpleNamespace(num_training_batches=100, num_val_batches=[7])
    _run(bar, trainer, 100, clock, step=0.01)  # 100 batches in 1 s: about 4 draws + first/last
    assert bar.train[0] == 0 and bar.train[-1] == 99
    assert 4 <= len(bar.train) <= 7
    gaps = [b - a for a, b in zip(bar.train[:-2], bar.train[1:-1], strict=True)]
    assert all(g >= 24 for g in gaps[1:])  # 0.25 s / 0.01 s per batch, minus rounding


def test_slow_batches_draw_every_batch(clock):
    bar = _Bar(interval=0.25)
    trainer = SimpleNamespace(num_training_batches=5, num_val_batches=[3])
    _run(bar, trainer, 5, clock, step=0.5)
    assert bar.train == [0, 1, 2, 3, 4]


def test_validation_last_batch_always_drawn(clock):
    bar = _Bar(interval=10.0)
    trainer = SimpleNamespace(num_training_batches=1, num_val_batches=[6])
    for i in range(6):
        bar.on_validation_batch_end(trainer, None, None, None, i)
    assert bar.val == [0, 5]


def test_negative_interval_rejected():
    with pytest.raises(ValueError, match="interval"):
        _Bar(interval=-1)


def test_without_a_terminal_each_epoch_is_one_line(tiny_config, capsys, monkeypatch):
    # Output to a file or a pipe gets a line per epoch instead of a bar's redraws; its
    # validation values are the ones MLflow recorded for the run, and its best is theirs.
    from mlflow import MlflowClient

    from ltr.train.progress import EpochLines, ThrottledTQDMProgressBar, progress_bar
    from ltr.train.run import train

    class Terminal:
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_bar(), EpochLines)  # pytest's captured streams are no terminal
    with monkeypatch.context() as m:
        m.setattr("sys.stderr", Terminal())
        m.setattr("sys.stdout", Terminal())
        assert isinstance(progress_bar(), ThrottledTQDMProgressBar | EpochLines)
        if importlib.util.find_spec("rich") is None:
            assert isinstance(progress_bar(), ThrottledTQDMProgressBar)
    config = tiny_config(**{"trainer.max_epochs": 4, "trainer.progress_bar": True})
    result = train(config, verbose=True)
    out = capsys.readouterr().out
    lines = re.findall(
        r"^epoch (\d+) of 4  loss [0-9.]+  val/ndcg@10 ([0-9.]+)  "
        r"\(best ([0-9.]+) at epoch (\d+)\)  \([0-9.]+ s\)$",
        out,
        re.M,
    )
    assert [int(e) for e, *_ in lines] == [0, 1, 2, 3]
    history = MlflowClient(config.tracking.tracking_uri).get_metric_history(
        result.run_id,
        "val/ndcg_at_10",  # MLflow names cannot hold "@"
    )
    logged = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert [float(v) for _, v, _, _ in lines] == pytest.approx(logged, abs=5e-5)
    best, at = float(lines[-1][2]), int(lines[-1][3])
    assert best == pytest.approx(max(logged), abs=5e-5) and at == result.best_epoch
    assert "\r" not in out
    # benchmarks.train_threads reads each epoch's seconds from these lines
    from benchmarks.train_threads import EPOCH

    assert [int(e) for e, _ in EPOCH.findall(out)] == [0, 1, 2, 3]
