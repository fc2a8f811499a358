"""``ltr cv`` on bundled MQ2008: nested MLflow runs, mean and sd over folds."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from ltr.errors import ConfigError
from ltr.train.config import load_train_config
from pipelines.cv import run_cv
from tests.pipelines.helpers import LTR, ONE_THREAD, ltr

pytestmark = pytest.mark.slow

TINY = "{name: setrank, d_model: 16, num_heads: 2, num_blocks: 1, d_ff: 32}"


def test_cv_nests_fold_runs_and_logs_mean_and_sd(mq2008_dir, mlflow_server, tmp_path):
    command = [
        *(LTR, "cv", "--folds", "1", "2", "--quiet"),
        *("--model", TINY, "--loss", "softmax", "--data.letor_root", str(mq2008_dir)),
        *("--data.batch_size", "64", "--trainer.max_epochs", "1"),
        *("--optim.warmup_steps", "0", "--tracking.tracking_uri", mlflow_server),
        *("--tracking.experiment", "pipelines-cv", "--output_dir", str(tmp_path / "out")),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=ONE_THREAD, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "2-fold cross-validation (folds 1, 2)" in proc.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("pipelines-cv")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: r.data.tags["mlflow.runName"],
    )
    assert [c.data.tags["mlflow.runName"] for c in children] == ["fold1", "fold2"]
    assert [c.data.params["data.fold"] for c in children] == ["1", "2"]
    assert parent.data.tags["ltr.run_type"] == "cross-validation"
    assert f"MLflow parent run: {parent.info.run_id} (2 fold runs)" in proc.stdout

    for key in ("empty1/ndcg_at_10", "empty0/map", "dropped/err_at_10"):
        values = np.array([c.data.metrics[f"test/{key}"] for c in children])
        assert parent.data.metrics[f"cv/{key}/mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert parent.data.metrics[f"cv/{key}/sd"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        history = client.get_metric_history(parent.info.run_id, f"test/{key}")
        assert sorted((m.step, m.value) for m in history) == [(1, values[0]), (2, values[1])]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"cv_results.json", "cv_results.md", "config.yaml"} <= artifacts
    local = client.download_artifacts(parent.info.run_id, "cv_results.json", str(tmp_path))
    with open(local) as fh:
        saved = json.load(fh)
    assert saved["folds"] == [1, 2] and len(saved["fold_metrics"]) == 2
    # fold models are kept on disk, not logged (no --log-models)
    assert (tmp_path / "out" / "fold2" / "model" / "ltr_model.json").exists()
    assert "model" not in {a.path for a in client.list_artifacts(children[0].info.run_id)}


def test_cv_needs_letor_partitions(tmp_path):
    config = load_train_config(None, {"data.train": ["a.txt"], "tracking.enabled": False})
    with pytest.raises(ConfigError, match="rotates LETOR partitions"):
        run_cv(config)
    config = load_train_config(None, {"data.letor_root": "x", "tracking.enabled": False})
    with pytest.raises(ConfigError, match=r"folds must be distinct numbers 1\.\.5"):
        run_cv(config, folds=[1, 1])


def test_cv_rotates_parquet_partitions_with_context_vectors(tmp_path, capsys):
    """S1..S5 as Parquet with a per-query context vector: each fold trains a context model, and
    its test metrics are what `ltr evaluate` gives for the saved fold model on its test part."""
    from ltr.artifact import load_model
    from ltr.cli import main
    from pipelines.synthetic import write_context_task

    for i in range(1, 6):
        write_context_task(tmp_path / f"S{i}.parquet", 30, list_length=10, seed=i)
    overrides = {
        "model": {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1,
                  "d_ff": 32, "context_dim": 2},
        "loss": "softmax", "data.letor_root": str(tmp_path), "data.batch_size": 16,
        "trainer.max_epochs": 2, "trainer.progress_bar": False, "optim.warmup_steps": 0,
        "tracking.enabled": False, "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    result = run_cv(load_train_config(None, overrides), folds=[2])
    model = tmp_path / "out" / "fold2" / "model"
    assert load_model(model).manifest.context_dim == 2
    # fold 2 tests on S1 (train S2 S3 S4, valid S5)
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "S1.parquet"),
                 "--format", "json"]) == 0  # fmt: skip
    evaluated = json.loads(capsys.readouterr().out)
    for convention, values in result.fold_metrics[0].items():
        assert values["ndcg@10"] == pytest.approx(evaluated[convention]["ndcg@10"], abs=1e-6)


def _ndcg10_empty0(scores, labels, offsets) -> float:
    """Mean NDCG@10 with gain 2^rel - 1 by scikit-learn, lists with no relevant item scoring 0,
    ties broken pessimistically (the lower grade first) as ``ltr``'s metrics do by default."""
    from sklearn.metrics import ndcg_score

    values = []
    for start, end in itertools.pairwise(offsets):
        gains = 2.0 ** labels[start:end] - 1
        if end - start == 1:  # scikit-learn needs two items; one item is at its ideal place
            values.append(1.0 if gains[0] > 0 else 0.0)
            continue
        # equal scores stay equal through the same float operations; a nudge far below any
        # real difference puts the lower grade first among them
        nudged = scores[start:end] - 1e-9 * labels[start:end]
        values.append(ndcg_score([gains], [nudged], k=10))
    return float(np.mean(values))


def test_cv_seeds_and_ensemble_survive_sigkill_and_resume(
    mq2008_parquet_dir, mlflow_server, tmp_path, monkeypatch
):
    """`ltr cv --seeds 2 --ensemble` (seeds 1 and 2) killed with SIGKILL in fold 2's first
    training goes on with --resume: fold 1 is not trained again, the cut-off training goes on
    from its last epoch, the results equal an uninterrupted run's, and the MLflow parent run is
    the same one, with each fold logged once. The ensembles' metrics are checked against
    scikit-learn.

    Only the run that is killed is a process of its own; the uninterrupted run and the resumed
    one go through ``ltr``'s entry point in this process. MQ2008 is read as Parquet (every
    training reads its partitions again)."""
    import signal
    import time

    from scipy.stats import zscore

    from ltr.artifact import load_model
    from ltr.data.dataset import load_dataset
    from ltr.inference import score_lists
    from ltr.train.run import RESUME_CHECKPOINT, RESUME_DIR
    from pipelines.cv import STATE, TRAINING_RECORD

    def command(out, *extra):
        return [
            *("cv", "--folds", "1", "2", "--seeds", "2", "--trainer.seed", "1"),
            *("--ensemble", "--quiet"),
            *("--model", TINY, "--loss", "softmax", "--data.letor_root", str(mq2008_parquet_dir)),
            *("--data.batch_size", "64", "--trainer.max_epochs", "2", "--optim.warmup_steps", "0"),
            *("--tracking.tracking_uri", mlflow_server, "--output_dir", str(out), *extra),
        ]

    monkeypatch.chdir(tmp_path)  # where the killed process runs
    whole = ltr(*command(tmp_path / "whole", "--tracking.experiment", "cv-whole"))
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "cut"
    cut = command(out, "--tracking.experiment", "cv-cut")
    proc = subprocess.Popen([LTR, *cut], env=ONE_THREAD, cwd=tmp_path, stderr=subprocess.PIPE)
    epoch_done = out / "fold2" / "seed1" / RESUME_DIR / RESUME_CHECKPOINT
    try:
        deadline = time.monotonic() + 300
        while not epoch_done.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, f"no {epoch_done}"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "fold1" / "seed2" / TRAINING_RECORD).exists()
    assert not (out / "fold2" / "seed1" / TRAINING_RECORD).exists()
    parent_id = json.loads((out / STATE).read_text())["parent_run_id"]

    resumed = ltr(*cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 finished training(s) kept from the interrupted run" in resumed.stdout
    # the same tables as the uninterrupted run, and the same per-training metrics
    assert (
        resumed.stdout[resumed.stdout.index("2-fold") :].split("MLflow")[0]
        == (whole.stdout[whole.stdout.index("2-fold") :].split("MLflow")[0])
    )
    assert f"MLflow parent run: {parent_id} (4 training runs)" in resumed.stdout
    records = {}
    for fold in (1, 2):
        for seed in (1, 2):
            part = f"fold{fold}/seed{seed}/{TRAINING_RECORD}"
            mine = json.loads((out / part).read_text())["test_metrics"]
            theirs = json.loads((tmp_path / "whole" / part).read_text())["test_metrics"]
            for conv, values in theirs.items():
                assert mine[conv] == pytest.approx(values, rel=0, abs=1e-12), (part, conv)
            records[fold, seed] = mine

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("cv-cut")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_id == parent_id
    children = {
        r.data.tags["mlflow.runName"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent_id
    }
    assert sorted(children) == ["fold1-seed1", "fold1-seed2", "fold2-seed1", "fold2-seed2"]
    assert {c.info.status for c in children.values()} == {"FINISHED"}
    assert children["fold2-seed1"].data.params["trainer.seed"] == "1"
    key = "empty1/ndcg_at_10"
    history = client.get_metric_history(parent_id, f"test/{key}")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]  # once per fold
    for m in history:  # a fold's metric is the mean of its seeds' runs
        seeds = [children[f"fold{m.step}-seed{s}"].data.metrics[f"test/{key}"] for s in (1, 2)]
        assert m.value == pytest.approx(np.mean(seeds), abs=1e-12)

    # each fold's ensemble against scikit-learn: member scores z-scored per list, averaged
    local = client.download_artifacts(parent_id, "cv_results.json", str(tmp_path))
    saved = json.loads(Path(local).read_text())
    gains = []
    for i, (fold, test_part) in enumerate(((1, "S5"), (2, "S1"))):
        data = load_dataset([mq2008_parquet_dir / f"{test_part}.parquet"])
        member_scores = [
            score_lists(load_model(out / f"fold{fold}" / f"seed{s}" / "model").model, data)
            for s in (1, 2)
        ]
        combined = np.zeros(data.num_rows)
        for start, end in itertools.pairwise(data.offsets):
            for scores in member_scores:
                piece = scores[start:end].astype(np.float64)
                combined[start:end] += zscore(piece) if end - start > 1 else 0.0
        want = _ndcg10_empty0(combined, data.labels, data.offsets)
        got = saved["ensemble_metrics"][i]["empty=0"]["ndcg@10"]
        assert got == pytest.approx(want, abs=1e-5)
        seeds_mean = np.mean([records[fold, s]["empty=0"]["ndcg@10"] for s in (1, 2)])
        gains.append(got - seeds_mean)
    gain = parent.data.metrics
    assert gain["cv_gain/empty0/ndcg_at_10/mean"] == pytest.approx(np.mean(gains), abs=1e-9)
    assert gain["cv_gain/empty0/ndcg_at_10/sd"] == pytest.approx(np.std(gains, ddof=1), abs=1e-9)
    assert gain["cv_gain/empty0/ndcg_at_10/won"] == sum(g > 0 for g in gains)


def test_cv_seed_and_resume_refusals(mq2008_dir, tmp_path):
    base = {"data.letor_root": str(mq2008_dir), "tracking.enabled": False,
            "output_dir": str(tmp_path / "out")}  # fmt: skip
    config = load_train_config(None, base)
    with pytest.raises(ConfigError, match="an ensemble needs two or more seeds"):
        run_cv(config, seeds=1, ensemble=True)
    with pytest.raises(ConfigError, match="seeds must be 1 or more trainings per fold, got 0"):
        run_cv(config, seeds=0)
    with pytest.raises(ConfigError, match=r"nothing to resume: .*cv_state\.json does not exist"):
        run_cv(config, seeds=2, resume=True)
