"""``--resume``: a training run killed with SIGKILL goes on from its last complete epoch and ends
with the very weights of a run that was never interrupted, in the same MLflow run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from ltr.errors import ConfigError
from ltr.lm.config import load_pretrain_config
from ltr.lm.pretrain import pretrain
from ltr.train.config import load_train_config
from ltr.train.run import RESUME_CHECKPOINT, RESUME_DIR, RUN_ID_FILE, train
from tests.lm.test_lm_pretrain import overrides as lm_overrides
from tests.train.conftest import tiny_overrides

pytestmark = pytest.mark.slow


def run_and_kill(command: str, options: dict, output: Path, cwd: Path) -> str | None:
    """Start ``ltr <command>`` with ``options``; SIGKILL it once its first epoch is saved.

    Returns the MLflow run id the killed process recorded (None for a run not tracked).
    """
    argv = [sys.executable, "-m", "ltr", command, "--quiet"]
    for key, value in options.items():
        argv += [f"--{key}", json.dumps(value)]
    resume_file = output / RESUME_DIR / RESUME_CHECKPOINT
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread, as this process: same sums
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while not resume_file.exists():
            if proc.poll() is not None:
                raise AssertionError(f"ltr {command} ended first: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {resume_file} after 120 s")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it was killed, not finished
    run_file = output / RESUME_DIR / RUN_ID_FILE
    return run_file.read_text().strip() if run_file.exists() else None


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def assert_resumed_run(tracking_uri: str, run_id: str, epochs: int) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(run_id, "val/loss")}
    assert steps == set(range(epochs))  # every epoch logged, before and after the kill
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # no second run was opened


def test_pretrain_resumes_after_sigkill_to_the_uninterrupted_weights(tmp_path, shakespeare_30k):
    corpus = shakespeare_30k
    extra = {"trainer.max_epochs": 4, "data.steps_per_epoch": 60, "model.dropout": 0.1}
    whole = pretrain(
        load_pretrain_config(None, lm_overrides(tmp_path / "whole", corpus, **extra)),
        verbose=False,
    )
    options = lm_overrides(tmp_path / "cut", corpus, **extra)
    run_id = run_and_kill("pretrain", options, tmp_path / "cut" / "out", cwd=tmp_path)
    resumed = pretrain(load_pretrain_config(None, options), verbose=False, resume=True)
    assert resumed.epochs == whole.epochs == 4
    assert resumed.run_id == run_id
    assert resumed.valid_metrics == pytest.approx(whole.valid_metrics, rel=0, abs=0)
    assert_same_weights(
        torch.load(resumed.artifact_dir / "model.pt"), torch.load(whole.artifact_dir / "model.pt")
    )
    assert_resumed_run(options["tracking.tracking_uri"], run_id, epochs=4)
    assert not (tmp_path / "cut" / "out" / RESUME_DIR).exists()  # removed once it completed
    with pytest.raises(ConfigError, match="nothing to resume"):
        pretrain(load_pretrain_config(None, options), verbose=False, resume=True)


def test_train_resumes_after_sigkill_to_the_uninterrupted_weights(
    tmp_path, mq2008_dir, monkeypatch, capsys
):
    extra = {"trainer.max_epochs": 5, "trainer.early_stopping_patience": None}
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir()
    cut_dir.mkdir()
    monkeypatch.chdir(whole_dir)  # the embedded MLflow artifact folder lands beside each store
    whole = train(load_train_config(None, tiny_overrides(whole_dir, mq2008_dir, **extra)))
    options = tiny_overrides(cut_dir, mq2008_dir, **extra)
    run_id = run_and_kill("train", options, cut_dir / "out", cwd=cut_dir)
    monkeypatch.chdir(cut_dir)
    # Other settings than the killed run's are refused, naming them, and the run can still go
    # on; a progress bar may be turned on (loader processes, say, would change the draws).
    changed = {**options, "model.num_blocks": 2, "optim.lr": 0.5}
    with pytest.raises(
        ConfigError, match=r"--resume: .*model\.num_blocks is 2, was 1; optim\.lr is 0\.5, was "
    ):
        train(load_train_config(None, changed), verbose=False, resume=True)
    free = {**options, "trainer.progress_bar": True}
    resumed = train(load_train_config(None, free), verbose=True, resume=True)
    said = re.search(r"resuming (\S+) after its epoch (\d+) ", capsys.readouterr().out)
    assert said and said[1] == str(cut_dir / "out") and 1 <= int(said[2]) < 5
    assert resumed.epochs == whole.epochs == 5
    assert resumed.run_id == run_id and resumed.best_epoch == whole.best_epoch
    assert_same_weights(
        torch.load(resumed.artifact_dir / "model.pt"), torch.load(whole.artifact_dir / "model.pt")
    )
    assert resumed.test_metrics == whole.test_metrics
    assert_resumed_run(options["tracking.tracking_uri"], run_id, epochs=5)


def test_resume_without_a_checkpoint_says_so(tmp_path, mq2008_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"nothing to resume.*without --resume"):
        train(load_train_config(None, tiny_overrides(tmp_path, mq2008_dir)), resume=True)
