"""``ltr ensemble``: the evaluation it prints against the members' scores combined by hand, the
MLflow run and registered version it makes, and its refusals."""

from __future__ import annotations

import re

import mlflow
import numpy as np
import pytest
from scipy.stats import zscore

from ltr.artifact import load_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.inference import score_lists
from ltr.metrics import evaluate_all_conventions
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, mq2008_dir):
    tmp = tmp_path_factory.mktemp("cli-ensemble")
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    return [make_artifact(tmp / f"seed{s}", s1, seed=s) for s in (11, 12)]


def _row(out: str, name: str) -> list[float]:
    """The four metrics of the evaluation table's row ``name``."""
    line = next(line for line in out.splitlines() if re.match(rf"{name}\s+\d", line))
    return [float(v) for v in line[len(name) :].split()[:4]]


def test_ensemble_is_written_evaluated_logged_and_registered(
    two_models, mq2008_dir, tmp_path, capsys, monkeypatch
):
    s5_path = mq2008_dir / "S5.txt.xz"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["ensemble", "--model", *map(str, two_models), "--output", str(tmp_path / "ens")]
    argv += ["--data", str(s5_path), "--tracking-uri", uri, "--register", "ens"]
    assert main([*argv, "--alias", "candidate", "--quiet"]) == 0
    out = capsys.readouterr().out

    # The ensemble's NDCG@10 as printed, against the members' own scores combined here.
    s5 = load_dataset(s5_path)
    members = [score_lists(load_model(p).model, s5).astype(np.float64) for p in two_models]
    combined = np.zeros(s5.num_rows)
    for a, b in zip(s5.offsets[:-1], s5.offsets[1:], strict=True):
        combined[a:b] = np.mean([zscore(m[a:b]) if b - a > 1 else 0 * m[a:b] for m in members], 0)
    want = evaluate_all_conventions(combined, s5.labels, s5.offsets, metrics=["ndcg@10"])
    assert _row(out, "ensemble")[2] == pytest.approx(want["empty=1"]["ndcg@10"], abs=1e-4)
    for i, scores in enumerate(members):
        alone = evaluate_all_conventions(scores, s5.labels, s5.offsets, metrics=["ndcg@10"])
        assert _row(out, f"model {i + 1}")[2] == pytest.approx(
            alone["empty=1"]["ndcg@10"], abs=1e-4
        )

    # The registered version is the ensemble written to --output, with its members' lineage.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # for models:/ below
    mlflow.set_tracking_uri(uri)
    version = mlflow.MlflowClient().get_model_version_by_alias("ens", "candidate")
    run = mlflow.get_run(version.run_id)
    assert run.data.params["combine"] == "zscore" and run.data.params["members"] == "2"
    assert run.data.metrics["data/ensemble/ndcg_at_10"] == pytest.approx(
        _row(out, "ensemble")[2], abs=1e-4
    )
    registered, local = load_model("models:/ens@candidate"), load_model(tmp_path / "ens")
    assert registered.manifest.architecture == "ensemble"
    assert [m["source"] for m in registered.manifest.training["members"]] == list(
        map(str, two_models)
    )
    scores_registered = score_lists(registered.model, s5)
    np.testing.assert_array_equal(scores_registered, score_lists(local.model, s5))


def test_refusals_name_the_problem(two_models, tmp_path, capsys):
    one = ["ensemble", "--model", str(two_models[0]), "--output", str(tmp_path / "e")]
    assert main([*one, "--no-mlflow"]) == 2
    assert "at least 2 models" in capsys.readouterr().err
    both = ["ensemble", "--model", *map(str, two_models), "--output", str(tmp_path / "e")]
    assert main([*both, "--no-mlflow", "--alias", "x"]) == 2
    assert "--alias needs --register" in capsys.readouterr().err
    assert main([*both, "--no-mlflow", "--register", "x"]) == 2
    assert "--register needs MLflow" in capsys.readouterr().err
    assert main(["ensemble", "--model", str(two_models[0]), str(tmp_path / "nowhere"), "--output",
                 str(tmp_path / "e"), "--no-mlflow"]) == 2  # fmt: skip
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
