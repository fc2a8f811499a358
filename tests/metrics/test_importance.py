"""Permutation importance against NDCG computed by scikit-learn on the permuted data."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from ltr.errors import ConfigError, RegistryError
from ltr.importance import permutation_importance, shuffled_rows

WEIGHTS = np.array([2.0, 0.0, -1.0, 0.5])


def ranking_data(seed: int = 0, lists: int = 12, width: int = 4):
    """Lists of 5 to 14 rows, binary labels (exp2 and linear gains agree) that follow
    :func:`linear` with noise, each list with at least one relevant row; feature 3 is constant
    within each list."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 15, size=lists)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    x = rng.normal(size=(n, width))
    x[:, 3] = np.repeat(rng.normal(size=lists), lengths)
    signal = x @ WEIGHTS + rng.normal(scale=0.5, size=n)
    labels = np.zeros(n)
    for a, b in pairwise(offsets):  # each list's top third
        labels[a:b] = signal[a:b] >= np.quantile(signal[a:b], 2 / 3)
    return x, labels, offsets


def linear(x: np.ndarray) -> np.ndarray:
    return x @ WEIGHTS


def sklearn_ndcg10(scores: np.ndarray, labels: np.ndarray, offsets: np.ndarray) -> float:
    values = [
        ndcg_score(labels[a:b][None, :], scores[a:b][None, :], k=10) for a, b in pairwise(offsets)
    ]
    return float(np.mean(values))


@pytest.mark.parametrize("shuffle", ["all", "lists"])
def test_drops_are_sklearns_ndcg_before_and_after_each_documented_shuffle(shuffle: str) -> None:
    x, labels, offsets = ranking_data()
    result = permutation_importance(linear, x, labels, offsets, repeats=3, shuffle=shuffle, seed=7)
    baseline = sklearn_ndcg10(linear(x), labels, offsets)
    assert result.baseline == pytest.approx(baseline, abs=1e-6)
    # the documented draws: default_rng(seed), one permutation per (repeat, feature) in order
    rng = np.random.default_rng(7)
    lists = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    expected = np.zeros((4, 3))
    for r in range(3):
        for j in range(4):
            if shuffle == "all":
                order = rng.permutation(len(x))
            else:
                order = np.lexsort((rng.random(len(x)), lists))
            permuted = x.copy()
            permuted[:, j] = x[order, j]
            expected[j, r] = baseline - sklearn_ndcg10(linear(permuted), labels, offsets)
    got = {f.indices[0]: f.drops for f in result.features}
    for j in range(4):
        np.testing.assert_allclose(got[j], expected[j], atol=1e-6)
    assert expected[0].mean() > 0.05  # the heaviest feature matters, so the check has teeth


def test_ignored_features_score_zero_and_list_constant_ones_zero_within_lists() -> None:
    x, labels, offsets = ranking_data(seed=1)
    across = permutation_importance(linear, x, labels, offsets, repeats=4, shuffle="all")
    within = permutation_importance(linear, x, labels, offsets, repeats=4, shuffle="lists")
    by_name = {
        name: {f.name: f for f in r.features} for name, r in (("all", across), ("lists", within))
    }
    assert np.all(by_name["all"]["f2"].drops == 0) and np.all(by_name["lists"]["f2"].drops == 0)
    # f4 is constant within each list: reordering a list's rows cannot move it, mixing lists can
    assert np.all(by_name["lists"]["f4"].drops == 0)
    assert np.any(by_name["all"]["f4"].drops != 0)
    assert across.features[0].name == "f1"  # the largest weight comes first
    means = [f.mean for f in across.features]
    assert means == sorted(means, reverse=True)


def test_shuffled_columns_keep_their_values_and_lists_keep_their_own() -> None:
    x, _, offsets = ranking_data(seed=2)
    column = x[:, 0]
    rng = np.random.default_rng(3)
    everywhere = column[shuffled_rows(offsets, "all", rng)]
    assert sorted(everywhere) == sorted(column) and not np.array_equal(everywhere, column)
    within = column[shuffled_rows(offsets, "lists", rng)]
    assert not np.array_equal(within, column)
    for a, b in pairwise(offsets):
        assert sorted(within[a:b]) == sorted(column[a:b])


def test_a_group_of_copies_matters_where_each_copy_alone_hardly_does() -> None:
    """The model reads the mean of f1 and its copy f5: shuffling one copy leaves half the
    signal, shuffling the group as one leaves none."""
    x, labels, offsets = ranking_data(seed=6)
    x = np.column_stack([x, x[:, 0]])  # f5 == f1

    def copies(f: np.ndarray) -> np.ndarray:
        return (f[:, 0] + f[:, 4]) + f[:, 1:4] @ WEIGHTS[1:]

    result = permutation_importance(
        copies, x, labels, offsets, columns=[0, 4], groups={"f1+f5": [0, 4]}, repeats=4
    )
    by_name = {f.name: f for f in result.features}
    assert by_name["f1+f5"].indices == (0, 4)
    assert by_name["f1+f5"].mean > 1.5 * max(by_name["f1"].mean, by_name["f5"].mean)
    # one row order moves a group's columns together: the copies stay equal on every row
    seen = []
    permutation_importance(
        lambda f: seen.append(f.copy()) or copies(f), x, labels, offsets,
        groups={"g": [0, 4]}, repeats=1,
    )  # fmt: skip
    shuffled = seen[1]
    assert np.array_equal(shuffled[:, 0], shuffled[:, 4])
    assert not np.array_equal(shuffled[:, 0], x[:, 0])
    assert np.array_equal(shuffled[:, 1:4], x[:, 1:4])


def test_seeded_runs_repeat_and_other_seeds_differ() -> None:
    x, labels, offsets = ranking_data(seed=4)
    runs = [permutation_importance(linear, x, labels, offsets, seed=s).features for s in (5, 5, 6)]
    first, again, other = ({f.name: f.drops for f in r} for r in runs)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["f1"], other["f1"])


def test_columns_progress_and_names() -> None:
    x, labels, offsets = ranking_data(seed=5)
    calls: list[int] = []
    result = permutation_importance(
        linear, x, labels, offsets, columns=[2, 0], repeats=3,
        feature_names=["a", "b", "c", "d"], progress=calls.append,
    )  # fmt: skip
    assert {f.name for f in result.features} == {"a", "c"} and len(calls) == 6
    assert result.to_dict()["features"][0]["drops"] == list(result.features[0].drops)


def test_errors_say_what_is_wrong() -> None:
    x, labels, offsets = ranking_data()
    run = lambda **kw: permutation_importance(linear, x, labels, offsets, **kw)  # noqa: E731
    with pytest.raises(RegistryError, match="unknown metric 'ndgc@10'"):
        run(metric="ndgc@10")
    with pytest.raises(ConfigError, match="shuffle must be one of"):
        run(shuffle="rows")
    with pytest.raises(ConfigError, match="repeats must be at least 1"):
        run(repeats=0)
    with pytest.raises(ConfigError, match=r"indices \[4\] are outside 0..3"):
        run(columns=[4])
    with pytest.raises(ConfigError, match=r"indices \[9\] are outside"):
        run(groups={"g": [0, 9]})
    with pytest.raises(ConfigError, match="feature group 'g' is empty"):
        run(groups={"g": []})
    with pytest.raises(ConfigError, match="3 feature names for 4 features"):
        run(feature_names=["a", "b", "c"])
    with pytest.raises(ConfigError, match="returned shape"):
        permutation_importance(lambda f: f[:, :2], x, labels, offsets)
