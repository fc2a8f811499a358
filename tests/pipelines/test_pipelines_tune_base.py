"""``ltr tune``'s first trial is the base config only when the search space holds it."""

from __future__ import annotations

import pytest

from ltr.train.config import load_train_config
from pipelines.tune import open_study, outside_space, parse_space, run_tuning

OPTIONS = {"study_name": "s", "storage": None, "heartbeat": 5, "prune": True}


@pytest.fixture
def mlp(tmp_path):
    """configs/mlp.yaml, whose model.dropout is 0.1."""
    return load_train_config(
        "configs/mlp.yaml", {"data.letor_root": str(tmp_path), "tracking.enabled": False}
    )


def test_a_base_config_inside_the_space_is_the_first_trial(mlp, tmp_path):
    space = parse_space({"model.dropout": [0.0, 0.1, 0.2], "optim.lr": [1e-3, 2e-3]})
    assert outside_space(mlp, space) == []
    study = open_study(mlp, space, tmp_path / "study", **OPTIONS)
    [first] = study.trials
    assert first.params == {} and first.user_attrs == {"ltr.base": True}
    assert first.system_attrs["fixed_params"] == {"model.dropout": 0.1, "optim.lr": 1e-3}


def test_a_base_config_outside_the_space_is_no_trial_and_is_named(
    mlp, tmp_path, monkeypatch, capsys
):
    space = parse_space({"model.dropout": [0.0, 0.2], "optim.lr": [1e-3, 2e-3]})
    assert outside_space(mlp, space) == ["model.dropout = 0.1 (the space: one of [0.0, 0.2])"]
    # no trial is queued as the base config: trial 0 would train another dropout
    assert open_study(mlp, space, tmp_path / "study", **OPTIONS).trials == []

    def stop(*args, **kwargs):
        raise RuntimeError("no training in this test")

    monkeypatch.setattr("ltr.train.run.train", stop)
    with pytest.raises(RuntimeError, match="no training"):
        run_tuning(mlp, space, trials=1, study_dir=tmp_path / "other", progress=False)
    assert capsys.readouterr().err.startswith(
        "ltr tune: note: no trial of the base config itself, whose model.dropout = 0.1 (the "
        "space: one of [0.0, 0.2]) lies outside the search space;"
    )
