"""Ensembles: per-list standardisation by hand, the mean of the members' scores against numpy and
SciPy, one artifact that loads and exports like any model, and refusals of models that read
different inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import zscore

from ltr.artifact import MANIFEST, ONNX, load_model
from ltr.data import load_dataset
from ltr.ensemble import build_ensemble, check_compatible, save_ensemble
from ltr.errors import ConfigError
from ltr.export.onnx import export_checked, parity_batches_from_lists
from ltr.models.ensemble import RankingEnsemble, standardize
from ltr.predictor import load_predictor
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="module")
def s1(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


@pytest.fixture(scope="module")
def members(tmp_path_factory, s1):
    tmp = tmp_path_factory.mktemp("members")
    return [load_model(make_artifact(tmp / f"m{seed}", s1, seed=seed)) for seed in (1, 2, 3)]


def _padded(lists: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(x) for x in lists)
    features = torch.zeros(len(lists), longest, lists[0].shape[1])
    mask = torch.zeros(len(lists), longest, dtype=torch.bool)
    for b, x in enumerate(lists):
        features[b, : len(x)] = torch.as_tensor(x)
        mask[b, : len(x)] = True
    return features, mask


def test_standardize_by_hand() -> None:
    # [1, 2, 3]: mean 2, variance 2/3 -> (-1, 0, 1) / sqrt(2/3); [5] alone -> 0; padding -> 0
    scores = torch.tensor([[1.0, 2.0, 3.0], [5.0, 99.0, float("nan")]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = standardize(scores, mask)
    s = np.sqrt(2 / 3 + 1e-6)
    np.testing.assert_allclose(got[0].numpy(), [-1 / s, 0, 1 / s], rtol=1e-6)
    assert got[1].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("combine", ["zscore", "mean"])
def test_scores_are_the_mean_of_the_members(members, s1, combine) -> None:
    lists = [s1[i].features for i in (0, 5, 9, 14)]  # lengths differ: padding in the batch
    features, mask = _padded(lists)
    ensemble = RankingEnsemble([m.model for m in members], combine).eval()
    with torch.no_grad():
        got = ensemble(features, mask)
    for b, x in enumerate(lists):
        per_member = []
        for m in members:  # each member alone on the unpadded list
            with torch.no_grad():
                one = m.model(torch.as_tensor(x)[None], torch.ones(1, len(x), dtype=torch.bool))
            s = one[0].double().numpy()
            per_member.append(zscore(s) if combine == "zscore" else s)
        want = np.mean(per_member, axis=0)
        np.testing.assert_allclose(got[b, : len(x)].numpy(), want, atol=2e-5)
        assert (got[b, len(x) :] == 0).all()


def test_shuffling_a_list_shuffles_the_ensembles_scores(members, s1) -> None:
    x = s1[3].features
    perm = np.random.default_rng(0).permutation(len(x))
    ensemble = RankingEnsemble([m.model for m in members]).eval()
    with torch.no_grad():
        a = ensemble(*_padded([x]))[0].numpy()
        b = ensemble(*_padded([x[perm]]))[0].numpy()
    np.testing.assert_allclose(b, a[perm], atol=1e-5)


def test_the_artifact_stands_alone_and_exports_to_onnx(members, s1, tmp_path, mq2008_dir):
    import shutil

    copies = []
    for i, m in enumerate(members):  # copies, deleted once the ensemble is written
        shutil.copytree(m.path, tmp_path / f"c{i}")
        copies.append(load_model(tmp_path / f"c{i}"))
    ensemble, _, folder = save_ensemble(copies, tmp_path / "ens", facts={"run_id": "r1"})
    for i in range(len(copies)):
        shutil.rmtree(tmp_path / f"c{i}")
    written = json.loads((folder / MANIFEST).read_text())
    assert written["architecture"] == "ensemble"
    assert [m["source"] for m in written["training"]["members"]] == [c.source for c in copies]
    assert written["training"]["run_id"] == "r1"

    loaded = load_model(folder)
    features, mask = _padded([s1[i].features for i in (1, 2, 7)])
    with torch.no_grad():
        np.testing.assert_array_equal(
            loaded.model(features, mask).numpy(), ensemble(features, mask).numpy()
        )
    # the ONNX graph of the whole ensemble, checked against PyTorch on real lists
    test = load_dataset(mq2008_dir / "S5.txt.xz")
    lists = [test[i].features for i in range(24)]
    report = export_checked(loaded, folder, parity_batches_from_lists(loaded, lists))
    assert report.passed and (folder / ONNX).exists()
    engine = load_predictor(folder, "onnx")
    got = engine.predict(features.numpy(), mask.numpy())
    with torch.no_grad():
        want = loaded.model(features, mask).numpy()
    np.testing.assert_allclose(got[mask.numpy()], want[mask.numpy()], atol=1e-5)

    # writing again replaces the folder whole: the old graph does not outlive its model
    save_ensemble(members[:2], folder)
    assert not (folder / ONNX).exists()
    assert len(load_model(folder).model.members) == 2


def test_models_that_read_different_inputs_are_refused(members, s1, tmp_path) -> None:
    renamed = make_artifact(tmp_path / "renamed", s1, seed=4)
    manifest = json.loads((renamed / MANIFEST).read_text())
    manifest["feature_names"][2] = "bm25"
    (renamed / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="feature 3 is 'bm25'"):
        check_compatible([members[0], load_model(renamed)])

    ranked = load_model(make_artifact(tmp_path / "ranked", s1, seed=5, use_initial_rank=True))
    with pytest.raises(ConfigError, match="initial ranks"):
        check_compatible([members[0], ranked])
    context = load_model(make_artifact(tmp_path / "context", s1, seed=6, context_dim=3))
    with pytest.raises(ConfigError, match="context vector of 3 values"):
        check_compatible([members[0], context])
    with pytest.raises(ConfigError, match="at least 2 models"):
        build_ensemble(members[:1])
    with pytest.raises(ConfigError, match="combine must be one of"):
        build_ensemble(members, "median")

    elsewhere = tmp_path / "notes"
    elsewhere.mkdir()
    (elsewhere / "todo.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds something other than a model"):
        save_ensemble(members, elsewhere)
    assert (elsewhere / "todo.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match=r"model 2 .*'s own folder"):
        save_ensemble(members, members[1].path)
    assert load_model(members[1].path).manifest.architecture == "setrank"


def test_an_ensemble_of_ensembles_is_the_mean_of_its_parts(members, s1, tmp_path) -> None:
    _, _, inner = save_ensemble(members[:2], tmp_path / "inner", "mean")
    _, _, outer = save_ensemble([load_model(inner), members[2]], tmp_path / "outer", "mean")
    features, mask = _padded([s1[0].features, s1[4].features])
    with torch.no_grad():
        got = load_model(outer).model(features, mask)
        a, b, c = (m.model(features, mask) for m in members)
    want = ((a + b) / 2 + c) / 2
    np.testing.assert_allclose(got[mask].numpy(), want[mask].numpy(), atol=1e-6)


def test_members_with_initial_ranks_and_context_get_them(s1, tmp_path) -> None:
    models = [
        load_model(
            make_artifact(tmp_path / f"m{s}", s1, seed=s, use_initial_rank=True, context_dim=2)
        )
        for s in (8, 9)
    ]
    ensemble, manifest = build_ensemble(models, "mean")
    assert manifest.uses_initial_rank and manifest.context_dim == 2
    features, mask = _padded([s1[0].features, s1[1].features])
    ranks = torch.where(mask, torch.arange(1, mask.shape[1] + 1).expand_as(mask), 0)
    context = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    with torch.no_grad():
        got = ensemble(features, mask, ranks, context)
        want = sum(m.model(features, mask, ranks, context) for m in models) / 2
    np.testing.assert_allclose(got[mask].numpy(), want[mask].numpy(), atol=1e-6)
