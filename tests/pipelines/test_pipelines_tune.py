"""``ltr tune``: Optuna trials of real training runs on bundled MQ2008, nested MLflow runs on a
real ``mlflow server``, a study that goes on where it stopped, a trial killed mid-run and run
again, pruning, and the search space's refusals.

The trainings read MQ2008 as Parquet (``mq2008_parquet_dir``: every training reads its
partitions again) and ``ltr`` runs in this process, through its entry point, except where the
test kills it."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from ltr.data.folds import partition_path
from ltr.errors import ConfigError
from ltr.train.config import load_train_config
from pipelines.tune import base_values, check_space, load_space, open_study, parse_space, run_tuning
from tests.pipelines.helpers import LTR, ONE_THREAD, ltr

TINY = "{name: setrank, d_model: 16, num_heads: 2, num_blocks: 1, d_ff: 32}"
SPACE = {
    "optim.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
    "model.num_blocks": {"type": "int", "low": 1, "high": 2},
    "loss": ["softmax", "listmle"],
}


def _tune_args(tmp_path, letor_root, *args, epochs=2) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return [
        *("tune", "--space", str(space), "--study-dir", str(tmp_path / "study")),
        *("--model", TINY, "--data.letor_root", str(letor_root), "--data.batch_size", "64"),
        *("--trainer.max_epochs", str(epochs), "--optim.warmup_steps", "0"),
        *args,
    ]


def _tune(tmp_path, letor_root, *args, epochs=2) -> subprocess.CompletedProcess:
    """``ltr tune`` in this process (run from ``tmp_path``, as ``_tune_process``)."""
    done = ltr(*_tune_args(tmp_path, letor_root, *args, epochs=epochs))
    assert done.returncode == 0, done.stderr
    return done


def _tune_process(tmp_path, letor_root, *args, epochs=2) -> subprocess.Popen:
    """``ltr tune`` as a process of its own, to be killed."""
    command = [LTR, *_tune_args(tmp_path, letor_root, *args, epochs=epochs)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ONE_THREAD, cwd=tmp_path
    )


def _study(tmp_path) -> optuna.Study:
    """The study as Optuna itself reads it back from the database."""
    return optuna.load_study(
        study_name="ltr-tune", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    )


def _runs(client: MlflowClient, experiment: str):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, sorted(children, key=lambda r: r.data.tags["mlflow.runName"])


@pytest.mark.slow
def test_tune_scores_trials_by_validation_and_goes_on_where_it_stopped(
    mq2008_parquet_dir, mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    tracking = ("--tracking.tracking_uri", mlflow_server, "--tracking.experiment", "tune")
    first = _tune(tmp_path, mq2008_parquet_dir, "--trials", "3", *tracking)
    assert "3 trials (3 run now)" in first.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    parent, children = _runs(client, "tune")
    assert parent.data.tags["ltr.run_type"] == "tuning"
    assert [c.data.tags["mlflow.runName"] for c in children] == ["trial 0", "trial 1", "trial 2"]
    trials = _study(tmp_path).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    # the first trial is the base config: ltr's default lr 1e-3, TINY's one block, ListMLE
    assert trials[0].params == {"optim.lr": 1e-3, "model.num_blocks": 1, "loss": "listmle"}
    assert "| 0 | complete (base config) |" in first.stdout
    for trial, child in zip(trials, children, strict=True):
        # each MLflow run trained the values Optuna drew for it
        for key, value in trial.params.items():
            assert child.data.params[key] == str(value)
        # a trial's value is what `ltr evaluate` gives for its saved model on the validation
        # partition (fold 1 validates on S4)
        model = tmp_path / "study" / "trials" / str(trial.number) / "model"
        want = _evaluate_on_validation(model, mq2008_parquet_dir)
        assert trial.value == pytest.approx(want, abs=1e-6)
        assert child.data.metrics["valid/empty1/ndcg_at_10"] == pytest.approx(want, abs=1e-6)

    best = max(trials, key=lambda t: t.value)
    assert f"Best: trial {best.number}, validation ndcg@10 {best.value:.4f}" in first.stdout
    written = yaml.safe_load((tmp_path / "study" / "best.yaml").read_text())
    assert written["optim"]["lr"] == best.params["optim.lr"]
    assert written["model"]["num_blocks"] == best.params["model.num_blocks"]
    assert written["loss"] == best.params["loss"]
    assert written["model"]["d_model"] == 16  # the rest is the base config
    assert load_train_config(tmp_path / "study" / "best.yaml").loss == best.params["loss"]
    parent = client.get_run(parent.info.run_id)
    assert parent.data.tags["best.trial"] == str(best.number)
    assert parent.data.metrics["best/valid_ndcg_at_10"] == pytest.approx(best.value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "best.yaml", "search_space.yaml", "config.yaml"} <= artifacts

    # the same command with more trials runs only the missing one, with values not drawn before,
    # under the same parent run
    again = _tune(tmp_path, mq2008_parquet_dir, "--trials", "4", "--quiet", *tracking)
    assert "4 trials (1 run now)" in again.stdout
    trials = _study(tmp_path).trials
    assert len(trials) == 4
    assert all(trials[3].params != t.params for t in trials[:3])
    parent_again, children = _runs(client, "tune")
    assert parent_again.info.run_id == parent.info.run_id
    assert len(children) == 4

    # a study goes on only with the config and space it was started with
    space = tmp_path / "space.yaml"
    changed = ltr(
        "tune", "--space", space, "--study-dir", tmp_path / "study", "--trials", "5",
        "--data.letor_root", mq2008_parquet_dir, *tracking,
    )  # fmt: skip
    assert changed.returncode == 2
    assert "was started with another base config, search space, seeds or folds" in changed.stderr
    assert len(_study(tmp_path).trials) == 4


def _evaluate_on_validation(model, letor_root, partition: str = "S4") -> float:
    """``ltr evaluate``'s NDCG@10 of ``model`` on a partition (S4: fold 1's validation)."""
    data = partition_path(letor_root, int(partition.removeprefix("S")))
    evaluated = ltr("evaluate", "--model", model, "--data", data, "--format", "json")
    assert evaluated.returncode == 0, evaluated.stderr
    return json.loads(evaluated.stdout)["empty=1"]["ndcg@10"]


@pytest.mark.slow
def test_a_trial_killed_mid_run_is_run_again_from_where_it_stopped(
    mq2008_parquet_dir, tmp_path, monkeypatch
):
    """Two seeds per trial; the process dies in the second seed's training. The trial is run
    again: the first seed is read back, the second goes on from its last complete epoch, and the
    trial's score is the mean of the two models' validation NDCG."""
    epochs = 4
    args = ("--trials", "2", "--seeds", "2", "--heartbeat", "1", "--no-prune")
    args = (*args, "--tracking.experiment", "kill")
    proc = _tune_process(tmp_path, mq2008_parquet_dir, *args, epochs=epochs)
    trial0 = tmp_path / "study" / "trials" / "0"
    checkpoint = trial0 / "seed1" / "resume" / "resume.ckpt"
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():  # the second seed of trial 0 has finished an epoch
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "trial 0's second seed finished no epoch"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no clean-up, the trial stays "running" in the database
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -9
    (killed,) = _study(tmp_path).trials
    assert killed.state == optuna.trial.TrialState.RUNNING
    assert sorted(killed.intermediate_values) == list(range(epochs))  # the first seed's curve

    time.sleep(2.5)  # past the grace period (twice the heartbeat) of the dead process
    monkeypatch.chdir(tmp_path)  # the MLflow store of both runs: ./mlflow.db
    _tune(tmp_path, mq2008_parquet_dir, *args, epochs=epochs)
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retry = trials[1]
    assert retry.params == killed.params
    assert retry.system_attrs.get("failed_trial") == 0
    assert retry.user_attrs["ltr.output_dir"].endswith("trials/0")

    # the first seed was not trained again, the second went on in its own MLflow run: every
    # epoch logged once
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, children = _runs(client, "kill")
    assert parent.info.status == "FINISHED"  # reopened by the second process and ended there
    names = ["trial 0 seed 0", "trial 0 seed 1", "trial 2 seed 0", "trial 2 seed 1"]
    assert [c.data.tags["mlflow.runName"] for c in children] == names
    assert [c.data.params["trainer.seed"] for c in children] == ["42", "43", "42", "43"]
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val/ndcg_at_10")
        assert sorted(m.step for m in history) == list(range(epochs))
        assert child.info.status == "FINISHED"

    # the score is the mean over the seeds of what `ltr evaluate` gives for their models
    seeds = [
        _evaluate_on_validation(trial0 / f"seed{k}" / "model", mq2008_parquet_dir) for k in (0, 1)
    ]
    assert seeds[0] != pytest.approx(seeds[1], abs=1e-4)
    assert retry.user_attrs["ltr.values"] == pytest.approx(seeds, abs=1e-6)
    assert retry.value == pytest.approx((seeds[0] + seeds[1]) / 2, abs=1e-6)
    best = max(trials[1:], key=lambda t: t.value)
    header = (tmp_path / "study" / "best.yaml").read_text().splitlines()[0]
    folder = "0" if best.number == 1 else "2"
    assert header.endswith(f"trials/{folder}/seed0/model")


@pytest.mark.slow
def test_folds_score_a_trial_by_the_mean_over_letor_folds(mq2008_parquet_dir, tmp_path):
    overrides = {
        "model": {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32},
        "data.letor_root": str(mq2008_parquet_dir), "data.batch_size": 64, "trainer.max_epochs": 1,
        "trainer.progress_bar": False, "optim.warmup_steps": 0, "tracking.experiment": "folds",
        "tracking.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }  # fmt: skip
    config = load_train_config(None, overrides)
    space = parse_space({"optim.lr": [3.0e-3, 1.0e-3]})
    result = run_tuning(config, space, trials=1, study_dir=tmp_path / "study", folds=[1, 2])
    (trial,) = _study(tmp_path).trials
    # fold 1 validates on S4, fold 2 on S5
    folder = tmp_path / "study" / "trials" / "0"
    want = [
        _evaluate_on_validation(folder / "fold1" / "model", mq2008_parquet_dir, "S4"),
        _evaluate_on_validation(folder / "fold2" / "model", mq2008_parquet_dir, "S5"),
    ]
    assert trial.user_attrs["ltr.values"] == pytest.approx(want, abs=1e-6)
    assert trial.value == pytest.approx(sum(want) / 2, abs=1e-6)
    assert result.best_model == folder / "fold1" / "model"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    _parent, children = _runs(client, "folds")
    assert [c.data.tags["mlflow.runName"] for c in children] == ["trial 0 fold 1", "trial 0 fold 2"]
    assert [c.data.params["data.fold"] for c in children] == ["1", "2"]

    for folds, message in (([1, 1], "distinct numbers 1..5"), ([6], "distinct numbers 1..5")):
        with pytest.raises(ConfigError, match=message):
            run_tuning(config, space, trials=1, study_dir=tmp_path / "other", folds=folds)
    files = load_train_config(None, {"data.valid": ["v"], "tracking.enabled": False})
    with pytest.raises(ConfigError, match="--folds rotates LETOR partitions"):
        run_tuning(files, space, trials=1, study_dir=tmp_path / "other", folds=[1])


@pytest.mark.slow
def test_pruning_stops_a_trial_below_the_median_of_earlier_ones(mq2008_parquet_dir, tmp_path):
    overrides = {
        "model": {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32},
        "data.letor_root": str(mq2008_parquet_dir), "data.batch_size": 64, "trainer.max_epochs": 4,
        "trainer.progress_bar": False, "optim.warmup_steps": 0, "tracking.enabled": False,
    }  # fmt: skip
    config = load_train_config(None, overrides)
    # a useful learning rate first, then useless ones, which fall below its curve at once
    space = parse_space({"optim.lr": [3.0e-3, 1.0e-8, 1.0e-9]})
    options = {"study_name": "ltr-tune", "storage": None, "heartbeat": 30, "prune": True}
    study = open_study(config, space, tmp_path / "study", **options)
    for lr in (3.0e-3, 1.0e-8, 1.0e-9):
        study.enqueue_trial({"optim.lr": lr})
    result = run_tuning(
        config, space, trials=3, study_dir=tmp_path / "study", prune_startup=1, prune_warmup=0
    )
    trials = _study(tmp_path).trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    for trial in pruned:
        step = max(trial.intermediate_values)
        assert step < 3  # stopped before the last epoch
        assert trial.user_attrs["ltr.epochs"] == step + 1
        # Optuna's median rule: the trial's best so far is below the median of the trials
        # that finished before it, at the same epoch
        earlier = [
            t.intermediate_values[step]
            for t in trials
            if t.number < trial.number
            and t.state == optuna.trial.TrialState.COMPLETE
            and step in t.intermediate_values
        ]
        assert max(trial.intermediate_values.values()) < statistics.median(earlier)
    assert result.best.number in {t.number for t in complete}
    assert "pruned" in {t.state.lower() for t in result.trials}


def test_search_space_refusals():
    cases = [
        ({}, "must be a mapping"),
        ({"optim.lr": []}, "the list of values is empty"),
        ({"optim.lr": [1, 1]}, "repeats a value"),
        ({"optim.lr": [[1]]}, "must be a number, string, boolean or null"),
        ({"optim.lr": {"type": "normal", "low": 0, "high": 1}}, "type must be one of"),
        ({"optim.lr": {"type": "float", "low": 1}}, "needs high"),
        ({"optim.lr": {"type": "float", "low": 1, "high": 1}}, r"low \(1\) must be below high"),
        ({"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "start above 0"),
        ({"optim.lr": {"type": "float", "low": 0, "high": 1, "lo": 2}}, "unknown entry lo"),
        ({"model.num_blocks": {"type": "int", "low": 1.5, "high": 3}}, "whole number"),
        ({"optim.lr": {"type": "float", "low": "a", "high": 1}}, "low must be a number"),
        ({"optim.lr": {"type": "float", "low": 0, "high": 1, "step": -1}}, "step must be pos"),
        ({"output_dir": ["a", "b"]}, "`ltr tune` sets this itself"),
        ({"tracking.experiment": ["a", "b"]}, "`ltr tune` sets this itself"),
        ({"data.fold": [1, 2]}, "`ltr tune` sets this itself"),
        ({"optim.lr": 0.1}, "expected a list of values or a mapping"),
    ]
    for space, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_space(space)
    assert parse_space({"data.batch_size": [16, 32]})[0].choices == (16, 32)


def test_base_values_are_the_configs_own_where_the_space_holds_them():
    config = load_train_config(
        None,
        {
            "optim.lr": 2e-3,
            "data.batch_size": 32,
            "model": {"name": "setrank", "num_blocks": 2},
            "loss": "softmax",
        },
    )
    space = parse_space(
        {
            "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},  # 2e-3: in
            "data.batch_size": [16, 64],  # 32: not a choice
            "model.num_blocks": {"type": "int", "low": 1, "high": 5, "step": 2},  # 2: off step
            "loss": ["softmax", "listmle"],  # in
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},  # not in the config
            "optim.weight_decay": [True, 0.01],  # 0.01 == the default, by value and type
        }
    )
    assert base_values(config, space) == {
        "optim.lr": 2e-3,
        "loss": "softmax",
        "optim.weight_decay": 0.01,
    }
    assert base_values(config, parse_space({"optim.lr": [1, 2]})) == {}


def test_a_space_the_base_config_cannot_take_is_refused_before_training(tmp_path):
    config = load_train_config(None, {"data.letor_root": str(tmp_path), "tracking.enabled": False})
    cases = [
        ({"model.d_modle": [16, 32]}, "model.d_modle = 16 does not fit.*unknown key"),
        ({"optim.lrr": [0.1, 0.2]}, "optim.lrr = 0.1 does not fit.*unknown key"),
        ({"loss": ["softmax", "nope"]}, "loss = 'nope' does not fit"),
    ]
    for space, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_space(config, parse_space(space))
    with pytest.raises(ConfigError, match="scores trials on validation data"):
        run_tuning(
            load_train_config(None, {"data.train": ["a"], "tracking.enabled": False}),
            parse_space({"optim.lr": [0.1, 0.2]}),
            trials=1,
            study_dir=tmp_path,
        )
    assert not (tmp_path / "study.db").exists()


def test_a_study_goes_on_only_with_its_own_config_and_space(tmp_path):
    config = load_train_config(None, {"data.letor_root": "x", "tracking.enabled": False})
    space = parse_space({"optim.lr": [0.1, 0.2]})
    options = {"study_name": "s", "storage": None, "heartbeat": 5, "prune": True}
    open_study(config, space, tmp_path, **options)
    open_study(config, space, tmp_path, **options)  # the same: goes on
    with pytest.raises(ConfigError, match="started with another base config"):
        open_study(config, parse_space({"optim.lr": [0.1, 0.3]}), tmp_path, **options)
    other = load_train_config(None, {"data.letor_root": "x", "loss": "softmax"})
    with pytest.raises(ConfigError, match="started with another base config"):
        open_study(other, space, tmp_path, **options)
    with pytest.raises(ConfigError, match="cannot open the Optuna storage nosuchdb://x"):
        open_study(config, space, tmp_path, **{**options, "storage": "nosuchdb://x"})
    with pytest.raises(ConfigError, match="holds the trials of study 's', not 'other'"):
        open_study(config, space, tmp_path, **{**options, "study_name": "other"})
    with pytest.raises(ConfigError, match="seeds or folds"):
        open_study(config, space, tmp_path, **options, seeds=2)
    with pytest.raises(ConfigError, match="seeds or folds"):
        open_study(config, space, tmp_path, **options, folds=[1, 2])
    # where the trials go and how they are logged do not matter
    moved = load_train_config(
        None, {"data.letor_root": "x", "tracking.enabled": False, "output_dir": "elsewhere"}
    )
    open_study(moved, space, tmp_path, **options)


SPACES = sorted((Path(__file__).resolve().parents[2] / "configs" / "tune").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_shipped_search_spaces_fit_the_shipped_setrank_configs(path):
    configs = Path(__file__).resolve().parents[2] / "configs"
    space = load_space(path)
    assert space
    for preset in ("setrank_imsab.yaml", "setrank_msab.yaml"):
        check_space(load_train_config(configs / preset), space)
