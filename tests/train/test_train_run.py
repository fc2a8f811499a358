"""Training end to end on real data, tracked in a real (embedded) MLflow store."""

from __future__ import annotations

import json
import re

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from ltr.artifact import load_model
from ltr.data import load_dataset
from ltr.drift import FeatureProfile
from ltr.inference import score_lists
from ltr.train.run import train
from tests.serve._helpers import hand_stats, list_by_list_scores


def _client(cfg) -> MlflowClient:
    return MlflowClient(tracking_uri=cfg.tracking.tracking_uri)


def test_run_logs_config_metrics_and_registered_model(tiny_config, mq2008_dir, monkeypatch):
    cfg = tiny_config()
    result = train(cfg, verbose=False)
    client = _client(cfg)
    run = client.get_run(result.run_id)
    assert run.data.params["model.d_model"] == "16"
    assert run.data.params["loss"] == "softmax"
    assert run.data.params["world_size"] == "1"
    history = client.get_metric_history(result.run_id, "val/ndcg_at_10")
    assert [m.step for m in history] == [0, 1]
    assert len(client.get_metric_history(result.run_id, "train/loss")) == 2
    final = run.data.metrics["test/empty1/ndcg_at_10"]
    assert abs(final - result.test_metrics["empty=1"]["ndcg@10"]) < 1e-9
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert "config.yaml" in artifacts
    version = client.get_model_version_by_alias("tiny", "candidate")
    assert str(version.version) == result.registered_version == "1"
    assert result.alias_uri == "models:/tiny@candidate"

    # The registered model is the artifact on disk: same scores through the registry URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.tracking_uri)
    test = load_dataset(mq2008_dir / "S5.txt.xz")
    local = score_lists(load_model(result.artifact_dir).model, test)
    registered = load_model("models:/tiny@candidate")
    assert registered.manifest.version == "1" and registered.manifest.name == "tiny"
    np.testing.assert_array_equal(score_lists(registered.model, test), local)
    # Both carry the training features' profile: each feature's share of S1's rows in each bin
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    train_rows = s1.features
    for folder in (result.artifact_dir, registered.path):
        profile = FeatureProfile.load(folder)
        assert profile is not None and profile.rows == len(train_rows)
        assert profile.names == tuple(registered.manifest.feature_names)
        for j in (0, 10, 45):
            edges = profile.features[j].edges
            x = train_rows[:, j]
            below = [np.mean(x <= e) for e in edges] + [1.0]
            shares = np.diff([0.0, *below])
            np.testing.assert_allclose(profile.features[j].shares, shares, atol=1e-12)
        # and the model's own scores of S1, each list scored alone here
        want = hand_stats(list_by_list_scores(registered.model, s1))
        got = profile.score
        assert got is not None and got.name == "score"
        np.testing.assert_allclose(got.edges, want["edges"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.shares, want["shares"], atol=2 / len(train_rows))
        for key in ("mean", "std", "minimum", "maximum"):
            assert getattr(got, key) == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    # ...and through MLflow's own pyfunc interface
    frame = _frame(test, registered.manifest.feature_names)
    pyfunc = mlflow.pyfunc.load_model("models:/tiny@candidate")
    np.testing.assert_allclose(pyfunc.predict(frame)["score"].to_numpy(), local, atol=1e-6)


def _frame(dataset, names):
    import pandas as pd

    frame = pd.DataFrame(dataset.features.astype(np.float64), columns=names)
    frame.insert(0, "qid", np.repeat(dataset.qids.astype(str), dataset.list_lengths))
    return frame


def test_best_checkpoint_is_the_one_kept(tiny_config):
    cfg = tiny_config(**{"trainer.max_epochs": 5, "optim.lr": 3e-3})
    result = train(cfg, verbose=False)
    history = _client(cfg).get_metric_history(result.run_id, "val/ndcg_at_10")
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert len(values) == 5
    assert result.best_epoch == int(np.argmax(values))
    # The saved model, re-evaluated offline on the validation set, reproduces the best value.
    assert abs(result.valid_metrics["empty=1"]["ndcg@10"] - max(values)) < 1e-5


def test_early_stopping_stops_when_validation_stalls(tiny_config):
    cfg = tiny_config(
        **{"trainer.max_epochs": 10, "trainer.early_stopping_patience": 1, "optim.lr": 1e-12}
    )
    result = train(cfg, verbose=False)
    assert result.epochs == 2  # epoch 0 sets the best, epoch 1 does not improve: stop


def test_same_seed_same_model_other_seed_other_model(tiny_config, tmp_path):
    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        cfg = tiny_config(
            **{"trainer.seed": seed, "output_dir": str(tmp_path / name), "tracking.enabled": False}
        )
        return load_model(train(cfg, verbose=False).artifact_dir).model.state_dict()

    a, b, c = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_tracking_uri_does_not_leak_into_the_environment(tmp_path, monkeypatch):
    import os

    from ltr.tracking import resolve_tracking_uri, start_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with start_run(experiment="leak", tracking_uri=f"sqlite:///{tmp_path / 'other.db'}"):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_divergence_stops_with_a_clear_error(tiny_config):
    import pytest

    from ltr.train.module import TrainingDivergedError

    cfg = tiny_config(**{"optim.lr": 1e30, "trainer.gradient_clip_val": None, "loss": "mse"})
    with pytest.raises(TrainingDivergedError, match=r"lower optim\.lr"):
        train(cfg, verbose=False)


def test_registry_models_are_cached_and_missing_ones_reported(tiny_config, monkeypatch, tmp_path):
    import shutil

    import pytest

    from ltr.artifact import ArtifactError

    cfg = tiny_config(**{"trainer.max_epochs": 1})
    result = train(cfg, verbose=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.tracking_uri)
    first = load_model("models:/tiny@candidate")
    # The store's own copy goes away: the cached download still serves the same version.
    shutil.rmtree(tmp_path / "mlartifacts")
    second = load_model("models:/tiny@candidate")
    assert second.path == first.path and second.manifest.version == result.registered_version
    # A missing alias, version or name says what the registry has instead.
    v = result.registered_version
    with pytest.raises(ArtifactError, match="cannot resolve model models:/tiny@nope") as missing:
        load_model("models:/tiny@nope")
    assert f"tiny has aliases: candidate (version {v}); point one" in str(missing.value)
    with pytest.raises(ArtifactError, match=rf"; tiny has versions {v}$"):
        load_model(f"models:/tiny/{int(v) + 1}")
    with pytest.raises(ArtifactError, match=r"; it has tiny$"):
        load_model("models:/tiyn@candidate")


def test_rank_aware_model_trains_on_input_order(tiny_config):
    cfg = tiny_config(
        **{"model.use_initial_rank": True, "trainer.max_epochs": 1, "tracking.enabled": False}
    )
    result = train(cfg, verbose=False)
    loaded = load_model(result.artifact_dir)
    assert loaded.manifest.model_config["use_initial_rank"] is True
    features = torch.zeros(1, 3, loaded.manifest.num_features)
    mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        in_order = loaded.model(features, mask, torch.tensor([[1, 2, 3]]))
        reversed_ = loaded.model(features, mask, torch.tensor([[3, 2, 1]]))
    # identical candidates told apart by their initial rank alone: the embedding is in use
    assert not torch.allclose(in_order, reversed_)


def test_train_loss_is_the_mean_loss_of_the_epochs_lists(tiny_config, mq2008_dir):
    """``train/loss`` weighs each step by its lists: with a learning rate too small to move the
    weights, the first epoch's value is the softmax loss of every training list under the
    trained (= initial) model, averaged over the lists, computed here by hand from its scores.
    The last batch is smaller than the others (157 lists in batches of 64), so the plain mean
    of the batches' losses would differ."""
    model = {"name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32}
    cfg = tiny_config(
        model={**model, "dropout": 0.0},
        **{"optim.lr": 1e-12, "trainer.max_epochs": 1, "data.batch_size": 64},
    )
    result = train(cfg, verbose=False)
    logged = _client(cfg).get_metric_history(result.run_id, "train/loss")[0].value
    data = load_dataset(mq2008_dir / "S1.txt.xz")
    assert len(data) % 64 != 0
    scores = score_lists(load_model(result.artifact_dir).model, data).astype(np.float64)
    losses = []
    for q in range(len(data)):
        rows = data[q].rows
        s, y = scores[rows], data.labels[rows].astype(np.float64)
        log_p = s - (s.max() + np.log(np.exp(s - s.max()).sum()))
        losses.append(-(y / y.sum() * log_p).sum() if y.sum() > 0 else 0.0)
    assert logged == pytest.approx(np.mean(losses), rel=2e-5)
    batches = [np.mean(losses[i : i + 64]) for i in range(0, len(losses), 64)]
    assert abs(np.mean(batches) - np.mean(losses)) > 1e-3 * abs(np.mean(losses))


def test_a_grade_only_the_validation_data_holds_sets_errs_top_grade(tiny_config, tmp_path):
    """Validation labels above every training label (click labels, a finer grade scale) are
    evaluated, with ERR's top grade read from them, instead of refused."""
    from ltr.data.parquet import ParquetListWriter
    from ltr.data.svmlight import RowChunk
    from tests.metrics.metrics_reference import err

    cfg = tiny_config()
    valid = load_dataset(cfg.data.valid)
    labels = valid.labels * 2  # grades 0, 2, 4 against the training data's 0-2
    with ParquetListWriter(tmp_path / "valid.parquet", valid.num_features) as writer:
        writer.write(
            RowChunk(valid.qids[valid.query_of_row], valid.doc_ids, labels, valid.features)
        )
    cfg = tiny_config(**{"data.valid": [str(tmp_path / "valid.parquet")], "data.test": []})
    result = train(cfg, verbose=False)
    assert load_model(result.artifact_dir).manifest.training["max_grade"] == 4.0
    scores = score_lists(load_model(result.artifact_dir).model, load_dataset(cfg.data.valid))
    per_list = []
    for a, b in zip(valid.offsets[:-1], valid.offsets[1:], strict=True):
        value, relevant = err(list(scores[a:b]), list(labels[a:b]), k=10, max_grade=4.0)
        per_list.append(value if relevant else 1.0)  # the "empty=1" convention
    assert result.valid_metrics["empty=1"]["err@10"] == pytest.approx(np.mean(per_list), abs=1e-5)


def test_training_again_in_the_same_folder_does_not_warn_of_old_checkpoints(tiny_config):
    """The best checkpoint is one file a new run overwrites: Lightning's 'exists and is not
    empty' warning would only alarm a user who runs ``make demo`` twice."""
    import warnings

    cfg = tiny_config(**{"trainer.max_epochs": 1, "tracking.enabled": False})
    first = train(cfg, verbose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = train(cfg, verbose=False)
    assert second.artifact_dir == first.artifact_dir
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]


def test_a_trained_model_keeps_its_arithmetic_for_ltr_info(tiny_config, capsys):
    """``ltr train`` counts the matrix products (PyTorch's counter is loaded by then), so ``ltr
    info`` need not: an MLP 46 -> 8 -> 1 costs 2 * n * (46*8 + 8*1) FLOP per list of n."""
    from ltr.cli import main

    cfg = tiny_config(
        **{
            "model": {"name": "mlp", "hidden_sizes": [8]},
            "trainer.max_epochs": 1,
            "tracking.enabled": False,
        }
    )
    result = train(cfg, verbose=False)
    manifest = load_model(result.artifact_dir).manifest
    hand = {str(n): 2 * n * (46 * 8 + 8) / 1e6 for n in (10, 100, 1000)}
    assert manifest.mflop_per_list == pytest.approx(hand)
    assert main(["info", str(result.artifact_dir)]) == 0
    assert "MFLOP per list of 10: 0.00752, 100: 0.0752, 1,000: 0.752" in capsys.readouterr().out
    # what `ltr info` shows is the manifest's count, not one it made again
    path = result.artifact_dir / "ltr_model.json"
    written = json.loads(path.read_text())
    written["mflop_per_list"]["10"] = 123.0
    path.write_text(json.dumps(written))
    assert main(["info", str(result.artifact_dir)]) == 0
    assert "MFLOP per list of 10: 123, 100: 0.0752" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("trainer.accelerator", "tpux", "trainer.accelerator='tpux': "),
        ("trainer.strategy", "ddpx", "trainer.strategy='ddpx': "),
        ("trainer.precision", "17", "trainer.precision='17': "),
        ("trainer.devices", 0, "trainer.devices=0: "),
    ],
)
def test_trainer_settings_lightning_refuses_fail_before_the_data_is_read(
    tiny_config, tmp_path, setting, value, named
):
    """Lightning's own refusal, as a ConfigError naming the setting, before training opens a
    file: the training file here does not exist, and that is not what is reported."""
    from ltr.errors import ConfigError

    cfg = tiny_config(**{setting: value, "data.train": [str(tmp_path / "missing.txt")]})
    with pytest.raises(ConfigError, match=re.escape(named)):
        train(cfg, verbose=False)
