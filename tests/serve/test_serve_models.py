"""The model holder: load beside the old model, swap atomically, keep the old one on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltr.artifact import ArtifactError, load_model
from ltr.serve.models import ModelHolder, ReloadResult, load_served_model, parse_alias
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="module")
def versions(tmp_path_factory, s1):
    root = tmp_path_factory.mktemp("versions")
    return {v: make_artifact(root / v, s1, seed=int(v)) for v in ("1", "2")}


class Registry:
    """A stand-in model registry: an alias table and one artifact folder per version."""

    def __init__(self, versions: dict[str, Path], broken: Path | None = None) -> None:
        self.alias = {"live": "1"}
        self.folders = dict(versions)
        if broken is not None:
            self.folders["3"] = broken
        self.loads: list[str] = []

    def resolve(self, name: str, alias: str) -> str:
        assert name == "tiny"
        return self.alias[alias]

    def load(self, uri: str):
        self.loads.append(uri)
        version = uri.rsplit("/", 1)[1]
        served = load_served_model(str(self.folders[version]), backend="torch")
        # what load_model reports for registry URIs: the registry's name and version
        ref = type(served.spec.ref)("tiny", version)
        spec = type(served.spec)(ref, served.spec.feature_names, backend="torch")
        return type(served)(served.predictor, spec)


def test_parse_alias() -> None:
    assert parse_alias("models:/tiny@live") == ("tiny", "live")
    assert parse_alias("models:/tiny/3") is None
    assert parse_alias("/some/dir") is None


def test_poll_swaps_only_when_the_alias_moves(versions) -> None:
    registry = Registry(versions)
    seen: list[ReloadResult] = []
    holder = ModelHolder("models:/tiny@live", registry.load, resolve_alias=registry.resolve,
                         on_reload=seen.append)  # fmt: skip
    first = holder.load_initial()
    assert first.spec.ref.version == "1"
    assert holder.poll() == ReloadResult(False, "1") and registry.loads == ["models:/tiny/1"]
    registry.alias["live"] = "2"
    result = holder.poll()
    assert result == ReloadResult(True, "2") and seen == [result]
    assert holder.current.spec.ref.version == "2"
    assert registry.loads == ["models:/tiny/1", "models:/tiny/2"]
    # the new model is really the version-2 weights
    x, mask = np.random.default_rng(0).random((1, 5, 46), np.float32), np.ones((1, 5), bool)
    want = load_model(versions["2"]).model
    import torch

    with torch.no_grad():
        expected = want(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(holder.current.predictor.predict(x, mask), expected, atol=1e-6)


def test_a_failed_load_keeps_the_old_model_and_polling_does_not_retry_it(versions, tmp_path, s1):
    broken = make_artifact(tmp_path / "broken", s1, seed=3)
    manifest = json.loads((broken / "ltr_model.json").read_text())
    manifest["model_config"]["d_model"] = 32  # the weights are for d_model 16
    (broken / "ltr_model.json").write_text(json.dumps(manifest))
    registry = Registry(versions, broken)
    seen: list[ReloadResult] = []
    holder = ModelHolder("models:/tiny@live", registry.load, resolve_alias=registry.resolve,
                         on_reload=seen.append)  # fmt: skip
    old = holder.load_initial()
    registry.alias["live"] = "3"
    failed = holder.poll()
    assert (
        not failed.swapped
        and failed.version == "1"
        and "does not match its manifest" in (failed.error or "")
    )
    assert holder.current is old
    assert holder.poll() == ReloadResult(False, "1")  # v3 failed before: polling leaves it
    assert registry.loads.count("models:/tiny/3") == 1
    forced = holder.reload()  # SIGHUP tries again
    assert forced.error and registry.loads.count("models:/tiny/3") == 2
    registry.alias["live"] = "2"
    assert holder.poll().swapped and holder.current.spec.ref.version == "2"
    assert [r.swapped for r in seen] == [False, False, True]


def test_a_plain_folder_reloads_from_disk_and_its_version_is_the_run_id(tmp_path, s1) -> None:
    folder = make_artifact(tmp_path / "m", s1, seed=4)
    holder = ModelHolder(str(folder), lambda uri: load_served_model(uri, backend="torch"))
    assert holder.load_initial().spec.ref.version == "run-seed4"
    assert holder.poll() == ReloadResult(False, "run-seed4")  # nothing to poll for a folder
    make_artifact(folder, s1, seed=5)  # retrained in place
    assert holder.reload() == ReloadResult(True, "run-seed5")


def test_missing_model_fails_the_first_load(tmp_path) -> None:
    holder = ModelHolder(str(tmp_path / "nothing"), lambda uri: load_served_model(uri))
    with pytest.raises(ArtifactError, match="does not exist"):
        holder.load_initial()


def test_onnx_backend_without_a_graph_can_refuse_with_a_hint(tmp_path, s1) -> None:
    folder = make_artifact(tmp_path / "m", s1, seed=6)
    with pytest.raises(ArtifactError, match=r"has no model\.onnx; run `ltr export --model"):
        load_served_model(str(folder), backend="onnx", export_on_load=False)
