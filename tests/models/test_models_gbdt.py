"""A LightGBM model as an ``ltr`` scorer: scores equal LightGBM's own ``predict`` (the
independent reference) through PyTorch and through the exported ONNX graph, for each of
LightGBM's missing-value rules, and models it cannot read are refused with the reason."""

from __future__ import annotations

import json
import re

import lightgbm
import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ltr.artifact import LIGHTGBM_FILE, load_model, save_lightgbm_model
from ltr.errors import ConfigError
from ltr.export.gbdt import export_gbdt_graph
from ltr.models.gbdt import _float32_at_most, from_lightgbm


def _data(seed: int, rows: int = 600, features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features)).astype(np.float32)
    x[:, 1] = np.round(x[:, 1])  # many exact zeros (and a few integer levels)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + 0.3 * rng.standard_normal(rows)).astype(
        np.float32
    )
    return x, y


def _train(x, y, rounds: int = 30, **params) -> lightgbm.Booster:
    params = {"num_leaves": 12, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 1, **params}
    return lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=rounds)


def _torch_scores(scorer, x: np.ndarray) -> np.ndarray:
    # one padded batch of two lists: the second list's padded slots must not matter
    half = len(x) // 2
    feats = torch.zeros(2, len(x) - half, x.shape[1])
    feats[0, :half] = torch.from_numpy(x[:half])
    feats[1] = torch.from_numpy(x[half:])
    feats[0, half:] = float("nan")  # padding: anything
    mask = torch.zeros(2, len(x) - half, dtype=torch.bool)
    mask[0, :half] = True
    mask[1] = True
    with torch.no_grad():
        out = scorer(feats, mask)
    return np.concatenate([out[0, :half].numpy(), out[1].numpy()])


def _onnx_scores(scorer, x: np.ndarray, tmp_path) -> np.ndarray:
    path = export_gbdt_graph(scorer, tmp_path / "trees.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"features": x[None], "mask": np.ones((1, len(x)), dtype=bool)})
    return out[0]


CASES = {
    # missing type None: a NaN counts as 0
    "none": ({"objective": "regression"}, 0.0),
    # missing type NaN: a NaN takes the default branch learnt in training
    "nan": ({"objective": "regression"}, 0.1),
    # missing type Zero: 0 (and NaN) take the default branch
    "zero": ({"objective": "regression", "zero_as_missing": True}, 0.1),
    # random forest: LightGBM's predict averages the trees
    "rf": (
        {"objective": "regression", "boosting": "rf", "bagging_fraction": 0.6, "bagging_freq": 1},
        0.0,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_scores_are_lightgbms_through_pytorch_and_onnx(case, tmp_path):
    params, nan_share = CASES[case]
    x, y = _data(seed=len(case))
    rng = np.random.default_rng(1)
    if nan_share:
        x[rng.random(x.shape) < nan_share] = np.nan
    booster = _train(x, y, **params)
    dump = booster.dump_model()
    kinds = {
        node.get("missing_type")
        for tree in dump["tree_info"]
        for node in _internal_nodes(tree["tree_structure"])
    }
    expected_kind = {"none": "None", "nan": "NaN", "zero": "Zero", "rf": "None"}[case]
    assert expected_kind in kinds  # the rule under test is in the trees
    scorer, _ = from_lightgbm(dump)

    test, _ = _data(seed=99)  # unseen rows
    test[rng.random(test.shape) < 0.1] = np.nan  # NaN for every rule
    test[rng.random(test.shape) < 0.05] = 0.0
    test[0, 1] = 1e-36  # "zero" for the Zero rule; LightGBM's kZeroThreshold is 1e-35
    reference = booster.predict(test) if case == "rf" else booster.predict(test, raw_score=True)
    tol = 1e-6 * np.maximum(1.0, np.abs(reference))  # float32 rounding of the sum
    np.testing.assert_array_less(np.abs(_torch_scores(scorer, test) - reference), tol)
    np.testing.assert_array_less(np.abs(_onnx_scores(scorer, test, tmp_path) - reference), tol)


def _internal_nodes(node):
    if "split_feature" in node:
        yield node
        yield from _internal_nodes(node["left_child"])
        yield from _internal_nodes(node["right_child"])


@given(
    t=st.floats(allow_nan=False, width=64),
    x=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_a_float32_threshold_sends_every_float32_where_the_double_does(t, x):
    f = _float32_at_most(t)
    assert np.float32(f) == f  # representable as float32
    assert (x <= t) == (x <= f)


def test_thresholds_between_two_float32s_split_as_lightgbm_does():
    # LightGBM puts a threshold between two neighbouring values of the feature; with float32
    # features the double threshold falls strictly between two float32s, which a rounded
    # (not floored) float32 threshold would move to the wrong side of one of them.
    lo = np.float32(0.1)
    hi = np.nextafter(lo, np.float32(1))
    x = np.array([[lo], [hi]] * 50, dtype=np.float32)
    y = np.array([0.0, 1.0] * 50, dtype=np.float32)
    booster = _train(x, y, rounds=1, objective="regression", min_data_in_leaf=1, min_data_in_bin=1)
    scorer, _ = from_lightgbm(booster.dump_model())
    reference = booster.predict(x, raw_score=True)
    assert reference[0] != reference[1]  # the split separates them
    np.testing.assert_allclose(_torch_scores(scorer, x), reference, rtol=1e-6)


def test_the_artifact_reads_the_boosters_features_by_name_and_keeps_its_file(tmp_path):
    x, y = _data(seed=3)
    x = x[:, :3]
    names = ["len", "bm25", "pagerank"]
    booster = lightgbm.train(
        {"objective": "regression", "verbose": -1, "num_leaves": 8, "num_threads": 1},
        lightgbm.Dataset(x, y, feature_name=names),
        num_boost_round=10,
    )
    model_file = tmp_path / "model.txt"
    booster.save_model(str(model_file))
    served = ["pagerank", "clicks", "len", "bm25"]  # other order, one feature more
    path = save_lightgbm_model(tmp_path / "art", model_file, served)
    loaded = load_model(path)
    assert loaded.manifest.architecture == "gbdt"
    assert loaded.manifest.feature_names == served
    assert (path / LIGHTGBM_FILE).is_file()
    rows = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    reference = booster.predict(rows[:, [2, 3, 0]], raw_score=True)  # len, bm25, pagerank
    with torch.no_grad():
        got = loaded.model(torch.from_numpy(rows)[None], torch.ones(1, 50, dtype=torch.bool))
    np.testing.assert_allclose(got[0].numpy(), reference, rtol=1e-6, atol=1e-6)


def test_unreadable_models_are_refused_with_the_reason(tmp_path):
    x, y = _data(seed=5)
    categorical = lightgbm.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_per_group": 5},
        lightgbm.Dataset(np.abs(np.round(x * 2)), y, categorical_feature=[1]),
        num_boost_round=5,
    )
    with pytest.raises(ConfigError, match="categorical feature"):
        from_lightgbm(categorical.dump_model())
    multiclass = _train(x, (y > 0).astype(int) + (y > 1), rounds=2, objective="multiclass",
                        num_class=3)  # fmt: skip
    with pytest.raises(ConfigError, match="3 trees per iteration"):
        from_lightgbm(multiclass.dump_model())
    linear = _train(x, y, rounds=2, objective="regression", linear_tree=True)
    with pytest.raises(ConfigError, match="linear tree"):
        from_lightgbm(linear.dump_model())

    plain = _train(x, y, rounds=2, objective="regression")  # Column_0..Column_5
    with pytest.raises(ConfigError, match=r"6 unnamed features .* 4 features were given"):
        save_lightgbm_model(tmp_path / "a", plain, ["a", "b", "c", "d"])
    named = lightgbm.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(x[:, :2], y, feature_name=["bm25", "len"]),
        num_boost_round=2,
    )
    with pytest.raises(ConfigError, match="feature 'len' is not among the 2 features given"):
        save_lightgbm_model(tmp_path / "b", named, ["bm25", "pagerank"])
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello\n")
    with pytest.raises(ConfigError, match="is not a LightGBM model file"):
        save_lightgbm_model(tmp_path / "c", not_a_model)
    with pytest.raises(ConfigError, match="no LightGBM model file at"):
        save_lightgbm_model(tmp_path / "d", tmp_path / "missing.txt")
    assert not any((tmp_path / d).exists() for d in "abcd")  # nothing half-written


def test_a_lambdamart_and_a_setrank_blend_in_an_ensemble_that_exports(
    tmp_path, mq2008_dir, mq2008_lambdamart
):
    from scipy.stats import zscore

    from ltr.data import load_dataset
    from ltr.ensemble import save_ensemble
    from tests.serve._helpers import make_artifact

    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    trees = load_model(save_lightgbm_model(tmp_path / "lm", mq2008_lambdamart, s1.feature_names))
    setrank = load_model(make_artifact(tmp_path / "sr", s1, seed=4))
    _, _, folder = save_ensemble([trees, setrank], tmp_path / "blend")
    blend = load_model(folder).model
    predicted = lightgbm.Booster(model_file=str(mq2008_lambdamart)).predict(s1.features)
    for i in (0, 3, 8):
        x = s1[i].features
        mask = torch.ones(1, len(x), dtype=torch.bool)
        with torch.no_grad():
            got = blend(torch.from_numpy(x)[None], mask)[0].numpy()
            theirs = setrank.model(torch.from_numpy(x)[None], mask)[0].double().numpy()
        want = (zscore(predicted[s1[i].rows]) + zscore(theirs)) / 2
        np.testing.assert_allclose(got, want, atol=2e-5)
    # exported whole: the trees as the module's gathers, checked against PyTorch on real lists
    from ltr.export.onnx import export_checked, parity_batches_from_lists

    loaded = load_model(folder)
    lists = [s1[i].features for i in range(16)]
    report = export_checked(loaded, folder, parity_batches_from_lists(loaded, lists))
    assert report.passed and report.lists == 16


# -- XGBoost ----------------------------------------------------------------------------------


def _xgboost(x, y, objective: str, rounds: int = 20, **params):
    import xgboost

    groups = {"group": [len(x) // 20] * 20} if objective.startswith("rank:") else {}
    data = xgboost.DMatrix(x, y, **groups, feature_names=params.pop("feature_names", None))
    params = {"objective": objective, "max_depth": 4, "nthread": 1, "eta": 0.3, **params}
    return xgboost.train(params, data, num_boost_round=rounds)


@pytest.mark.parametrize(
    "objective", ["rank:ndcg", "rank:pairwise", "reg:squarederror", "binary:logistic",
                  "count:poisson"],
)  # fmt: skip
def test_scores_are_xgboosts_margin_through_pytorch_and_onnx(objective, tmp_path):
    import xgboost

    from ltr.models.gbdt import from_xgboost

    x, y = _data(seed=7)
    x[np.random.default_rng(2).random(x.shape) < 0.1] = np.nan  # missing: the default branch
    if objective == "binary:logistic":
        y = (y > 0).astype(np.float32)
    elif objective == "count:poisson":
        y = np.round(np.exp(y / 2)).astype(np.float32)
    elif objective.startswith("rank:"):
        y = np.clip(np.round(y), 0, 3).astype(np.float32)
    booster = _xgboost(x, y, objective)
    model_file = tmp_path / "model.json"
    booster.save_model(str(model_file))
    scorer, names = from_xgboost(json.loads(model_file.read_text()))
    assert names is None  # XGBoost names no features unless told
    test, _ = _data(seed=98)
    test[np.random.default_rng(3).random(test.shape) < 0.1] = np.nan
    rows = np.concatenate([x, test])  # training rows sit on the split values more often
    reference = booster.predict(xgboost.DMatrix(rows), output_margin=True)
    tol = 2e-6 * np.maximum(1.0, np.abs(reference))  # XGBoost sums in float32
    np.testing.assert_array_less(np.abs(_torch_scores(scorer, rows) - reference), tol)
    np.testing.assert_array_less(np.abs(_onnx_scores(scorer, rows, tmp_path) - reference), tol)


def test_xgboosts_strict_split_sends_a_value_equal_to_the_threshold_right():
    import xgboost

    from ltr.models.gbdt import from_xgboost

    x = np.repeat(np.arange(4, dtype=np.float32), 50)[:, None]
    y = (x[:, 0] >= 2).astype(np.float32)
    booster = _xgboost(x, y, "reg:squarederror", rounds=1, max_depth=1)
    (tree,) = json.loads(booster.save_raw(raw_format="json"))["learner"]["gradient_booster"][
        "model"
    ]["trees"]
    threshold = tree["split_conditions"][0]
    probe = np.array([[threshold], [np.nextafter(np.float32(threshold), np.float32(-1))]])
    probe = probe.astype(np.float32)
    scorer, _ = from_xgboost(json.loads(booster.save_raw(raw_format="json")))
    reference = booster.predict(xgboost.DMatrix(probe), output_margin=True)
    assert reference[0] != reference[1]  # the threshold itself goes right, just below it left
    np.testing.assert_allclose(_torch_scores(scorer, probe), reference, rtol=1e-6)


def test_an_xgboost_artifact_reads_features_by_name_and_refuses_what_it_cannot_read(tmp_path):
    import xgboost

    from ltr.artifact import XGBOOST_FILE, save_xgboost_model

    x, y = _data(seed=11)
    booster = _xgboost(x[:, :3], y, "reg:squarederror", feature_names=["len", "bm25", "pr"])
    path = save_xgboost_model(tmp_path / "art", booster, ["pr", "clicks", "len", "bm25"])
    assert (path / XGBOOST_FILE).is_file()
    rows = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    reference = booster.predict(
        xgboost.DMatrix(rows[:, [2, 3, 0]], feature_names=["len", "bm25", "pr"]),
        output_margin=True,
    )
    with torch.no_grad():
        got = load_model(path).model(torch.from_numpy(rows)[None], torch.ones(1, 40, dtype=bool))
    np.testing.assert_allclose(got[0].numpy(), reference, rtol=2e-6, atol=2e-6)

    refused = {
        "booster is 'dart'": _xgboost(x, y, "reg:squarederror", rounds=2, booster="dart"),
        "several classes or targets": _xgboost(
            x, (y > 0).astype(int) + (y > 1), "multi:softmax", rounds=2, num_class=3
        ),
        "objective 'survival:cox' is not one ltr reads": _xgboost(
            x, np.abs(y) + 1, "survival:cox", rounds=2
        ),
    }
    for reason, model in refused.items():
        with pytest.raises(ConfigError, match=re.escape(reason)):
            save_xgboost_model(tmp_path / "refused", model, [f"c{i}" for i in range(6)])
    ubj = tmp_path / "model.ubj"
    booster.save_model(str(ubj))
    with pytest.raises(
        ConfigError, match=r"not JSON: save it with booster.save_model\('model.json'\)"
    ):
        save_xgboost_model(tmp_path / "refused", ubj, ["len", "bm25", "pr"])
    assert not (tmp_path / "refused").exists()


def test_a_model_of_one_leaf_scores_its_constant(tmp_path):
    # no split is worth making (min_data_in_leaf above half the rows): one tree, one leaf
    x, _ = _data(seed=13, rows=100)
    y = np.repeat([0.0, 1.0], 50).astype(np.float32)
    booster = _train(x, y, rounds=3, objective="regression", min_data_in_leaf=60)
    scorer, _ = from_lightgbm(booster.dump_model())
    assert (scorer.config.num_trees, scorer.config.depth) == (1, 0)
    reference = booster.predict(x)
    assert np.all(reference == 0.5)
    np.testing.assert_array_equal(_torch_scores(scorer, x), reference)
    np.testing.assert_array_equal(_onnx_scores(scorer, x, tmp_path), reference)
