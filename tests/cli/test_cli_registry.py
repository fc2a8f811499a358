"""``ltr registry``: versions and aliases of a registered model in a real ``mlflow server``;
``promote`` moves the alias servers poll to the candidate's version."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from ltr.cli import main
from ltr.data import load_dataset
from ltr.tracking import start_run
from tests.serve._helpers import make_artifact

NAME = "registry-cli-ranker"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, mlflow_server, mq2008_dir):
    """Versions 1 and 2 of NAME; champion -> 1, candidate -> 2."""
    root = tmp_path_factory.mktemp("registry-cli")
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    runs = {}
    for version, seed in (("1", 1), ("2", 2)):
        folder = make_artifact(root / f"v{version}", s1, seed=seed)
        with start_run(experiment="registry-cli", tracking_uri=mlflow_server) as run:
            logged = run.log_model(
                folder, feature_names=list(s1.feature_names), registered_name=NAME
            )
        assert logged.registered_version == version
        runs[version] = run.run_id
    client = MlflowClient(tracking_uri=mlflow_server)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "candidate", "2")
    return mlflow_server, client, runs


def test_list_promote_and_alias(registry, capsys):
    uri, client, runs = registry
    assert main(["registry", "list", NAME, "--tracking-uri", uri, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["aliases"], v["run_id"]) for v in listed] == [
        ("2", ["candidate"], runs["2"]),
        ("1", ["champion"], runs["1"]),
    ]

    assert main(["registry", "promote", NAME, "--tracking-uri", uri]) == 0
    assert "@champion -> version 2 (the version @candidate names); was version 1" in (
        capsys.readouterr().out
    )
    assert client.get_model_version_by_alias(NAME, "champion").version == "2"
    assert main(["registry", "promote", NAME, "--tracking-uri", uri]) == 0
    assert "already names version 2" in capsys.readouterr().out

    assert main(["registry", "alias", NAME, "champion", "1", "--tracking-uri", uri]) == 0
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert "@champion -> version 1; was version 2" in capsys.readouterr().out
    assert main(["registry", "list", NAME, "--tracking-uri", uri]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["2", "candidate"] and table[2].split()[:2] == ["1", "champion"]


def test_registry_refusals_name_what_is_there(registry, capsys):
    uri, client, _ = registry

    def refused(*argv: str, why: str) -> None:
        assert main(["registry", *argv, "--tracking-uri", uri]) == 2
        assert why in capsys.readouterr().err

    refused("list", "no-such-model", why="no registered model 'no-such-model'")
    refused("alias", NAME, "champion", "9", why=f"{NAME} has no version 9; it has 1, 2")
    refused(
        "promote",
        NAME,
        "--from",
        "staging",
        why=f"{NAME} has no alias 'staging'; its aliases are candidate, champion",
    )
    refused("promote", NAME, "--from", "champion", "--to", "champion", why="name two aliases")
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"  # untouched


def test_reading_commands_do_not_create_a_missing_store(tmp_path, monkeypatch, capsys):
    """Run from a folder with no mlflow.db, a registry command (or ``ltr info models:/...``,
    which downloads through the same module) says there is no store there, and which URI it
    used, instead of creating an empty one and saying the model is not in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for argv in (["list", NAME], ["promote", NAME], ["alias", NAME, "champion", "1"]):
        assert main(["registry", *argv]) == 2
        err = capsys.readouterr().err
        assert f"there is no MLflow tracking store at {default} (the default" in err
        assert "--tracking-uri or the MLFLOW_TRACKING_URI environment variable" in err
    given = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    assert main(["registry", "list", NAME, "--tracking-uri", given]) == 2
    assert f"no MLflow tracking store at {given} (the URI given)" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    assert main(["info", f"models:/{NAME}@champion"]) == 2
    err = capsys.readouterr().err
    assert "no MLflow tracking store at sqlite:///other.db (from $MLFLOW_TRACKING_URI)" in err
    assert "set MLFLOW_TRACKING_URI" in err
    assert list(tmp_path.iterdir()) == []  # no store, no folder, nothing was created


def test_registering_a_version_does_not_repeat_mlflows_messages(
    registry, tmp_path, mq2008_dir, capfd
):
    """Every command that registers a model prints its models:/ URI and version itself;
    MLflow's "Created version ..." lines are not printed a second time."""
    uri, client, _ = registry
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    folder = make_artifact(tmp_path / "v3", s1, seed=3)
    capfd.readouterr()
    for name in (NAME, "registry-cli-new-model"):  # a new version, and a new model
        with start_run(experiment="registry-cli", tracking_uri=uri) as run:
            logged = run.log_model(
                folder, feature_names=list(s1.feature_names), registered_name=name
            )
        assert client.get_model_version(name, logged.registered_version).run_id == run.run_id
    printed = capfd.readouterr()
    assert "Created version" not in printed.err + printed.out
    assert "registered model" not in (printed.err + printed.out).lower()
