"""Feature profiles and drift (``ltr.drift``) against hand computations and known formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltr.drift import (
    PSI_FLOOR,
    FeatureProfile,
    ProfileSample,
    RowWindow,
    compare,
    level,
    profile_features,
    psi,
)
from ltr.errors import DataFormatError


def test_deciles_of_a_feature_with_a_point_mass_merge_into_one_bin():
    # sorted: seven 0s, then 1, 2, 3. The q-quantile is the smallest value whose share of values
    # at or below it reaches q: 0 for q = 0.1..0.7, 1 for 0.8, 2 for 0.9.
    x = np.array([[3.0], [0], [0], [1], [0], [0], [2], [0], [0], [0]], dtype=np.float32)
    (stats,) = profile_features(x, ["f"]).features
    assert stats.edges == (0.0, 1.0, 2.0)
    # bins (-inf, 0], (0, 1], (1, 2], (2, inf)
    assert stats.shares == pytest.approx((0.7, 0.1, 0.1, 0.1))
    assert (stats.minimum, stats.maximum, stats.missing) == (0.0, 3.0, 0.0)
    assert stats.mean == pytest.approx(0.6)
    assert stats.std == pytest.approx(math.sqrt((7 * 0.36 + 0.16 + 1.96 + 5.76) / 10))


def test_psi_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    want = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(want)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # an empty bin counts as PSI_FLOOR, not 0 (which would give infinity)
    want = (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5) + 0.5 * math.log(2.0)
    assert psi([0.5, 0.5], [0.0, 1.0]) == pytest.approx(want)
    assert [level(v) for v in (0.05, 0.1, 0.2, 0.25, 0.3)] == [
        "stable", "stable", "moderate", "moderate", "major"
    ]  # fmt: skip


def test_a_shifted_feature_by_hand():
    train = np.arange(100, dtype=np.float32)[:, None]  # 0..99: deciles 9, 19, ..., 89
    profile = profile_features(train, ["f"])
    assert profile.features[0].edges == tuple(float(e) for e in range(9, 90, 10))
    assert profile.features[0].shares == pytest.approx((0.1,) * 10)
    (drift,) = compare(profile, train + 50)  # 50..149
    assert drift.out_of_range == pytest.approx(0.5)  # 100..149 are above the training maximum
    assert drift.mean_shift == pytest.approx(50 / np.arange(100).std())
    # new shares: 0 in the first five bins, 0.1 in (49, 59] .. (79, 89], 0.6 in (89, inf)
    want = 5 * (PSI_FLOOR - 0.1) * math.log(PSI_FLOOR / 0.1) + 0.5 * math.log(6.0)
    assert drift.psi == pytest.approx(want)
    assert drift.level == "major" and drift.missing == 0.0
    (down,) = compare(profile, train - 30)  # -30..69: the 30 below 0 are out of range
    assert down.out_of_range == pytest.approx(0.3)


def test_psi_of_a_normal_shifted_by_half_a_deviation_is_near_its_jeffreys_divergence():
    # PSI is the Jeffreys divergence J(P, Q) estimated on bins; for unit normals whose means
    # differ by d, J = d^2, so 0.25 for d = 0.5 (binning into deciles can only lose some of it).
    rng = np.random.default_rng(0)
    profile = profile_features(rng.standard_normal((200_000, 2)), ["same", "moved"])
    new = rng.standard_normal((200_000, 2))
    new[:, 1] += 0.5
    same, moved = compare(profile, new)
    assert same.psi < 0.001
    assert 0.22 < moved.psi < 0.25
    assert moved.mean_shift == pytest.approx(0.5, abs=0.01)
    assert same.out_of_range < 0.001


def test_missing_values_have_their_own_bin():
    x = np.array([[np.nan], [1.0], [2.0], [3.0]], dtype=np.float32)
    (stats,) = profile_features(x, ["f"]).features
    assert stats.missing == 0.25
    assert sum(stats.shares) == pytest.approx(0.75)
    assert (stats.minimum, stats.maximum, stats.mean) == (1.0, 3.0, 2.0)
    profile = profile_features(x, ["f"])
    (drift,) = compare(profile, np.full((4, 1), np.nan, dtype=np.float32))
    assert drift.missing == 1.0 and math.isnan(drift.mean_shift) and drift.out_of_range == 0.0
    expected = np.array([*stats.shares, 0.25])
    assert drift.psi == pytest.approx(psi(expected, [0, 0, 0, 0, 1.0]))


def test_a_feature_constant_in_training():
    profile = profile_features(np.zeros((10, 1), dtype=np.float32), ["f"])
    assert profile.features[0].edges == (0.0,) and profile.features[0].shares == (1.0, 0.0)
    (drift,) = compare(profile, np.array([[0.0], [0.0], [1.0], [1.0]], dtype=np.float32))
    assert drift.out_of_range == 0.5 and drift.mean_shift == math.inf
    assert drift.psi == pytest.approx(psi([1.0, 0.0, 0.0], [0.5, 0.5, 0.0]))


def test_large_data_is_profiled_from_a_sample_and_saved_whole(tmp_path):
    x = np.random.default_rng(1).random((5000, 3), dtype=np.float32)
    profile = profile_features(x, ["a", "b", "c"], max_rows=1000, source=["train.parquet"])
    assert profile.rows == 5000
    for stats in profile.features:
        assert sum(stats.shares) == pytest.approx(1.0)
        assert 0.05 < stats.edges[0] < 0.15  # about the first decile of U(0, 1)
    profile.save(tmp_path)
    assert FeatureProfile.load(tmp_path) == profile
    assert FeatureProfile.load(tmp_path / "elsewhere") is None


@settings(max_examples=60, deadline=None)
@given(
    max_rows=st.integers(1, 40),
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    seed=st.integers(0, 3),
)
def test_a_sample_is_the_rows_of_the_smallest_keys_however_the_data_is_cut(max_rows, sizes, seed):
    """Rows added a block at a time: the sample is the rows (and their scores) whose keys, drawn
    here in row order from the seed, are the ``max_rows`` smallest, in row order."""
    total = sum(sizes)
    rows = np.arange(total * 2, dtype=np.float32).reshape(total, 2)
    scores = -np.arange(total, dtype=np.float32)
    sample = ProfileSample(max_rows=max_rows, seed=seed)
    for lo, hi in itertools.pairwise(np.cumsum([0, *sizes])):
        sample.add(rows[lo:hi], scores[lo:hi])
    assert sample.rows == total
    if total == 0:
        with pytest.raises(DataFormatError, match="no rows"):
            sample.sample()
        return
    keys = np.random.default_rng(seed).random(total)
    picked = np.sort(np.argsort(keys)[:max_rows])
    features, kept = sample.sample()
    np.testing.assert_array_equal(features, rows[picked])
    np.testing.assert_array_equal(kept, scores[picked])


def test_a_sample_keeps_rows_uniformly():
    """Each of 2,000 rows is kept in a sample of 100 with probability 1/20: over 400 seeds a row
    is kept 20 times on average, and no row far more or less often than the binomial allows."""
    kept = np.zeros(2000)
    for seed in range(400):
        sample = ProfileSample(max_rows=100, seed=seed)
        for lo in range(0, 2000, 300):  # blocks of 300: the shrinking runs mid-stream
            sample.add(np.arange(lo, min(lo + 300, 2000), dtype=np.float64)[:, None])
        kept[sample.sample()[0][:, 0].astype(int)] += 1
    assert kept.sum() == 400 * 100
    # binomial(400, 0.05): sd 4.36; 2,000 rows stay within 5.5 sd of 20 but by chance 1e-7
    assert np.abs(kept - 20).max() < 5.5 * math.sqrt(400 * 0.05 * 0.95)
    # the first and last thirds are kept as often as each other (a sample biased to early or
    # late blocks would not)
    assert abs(kept[:667].mean() - kept[-667:].mean()) < 1.0


def test_a_sample_refuses_scores_for_some_blocks_only():
    sample = ProfileSample(max_rows=5)
    sample.add(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(DataFormatError, match="some blocks of rows and not others"):
        sample.add(np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match="2 scores for 3 feature rows"):
        sample.add(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="at least 1"):
        ProfileSample(max_rows=0)


def test_shapes_that_do_not_fit_are_refused():
    profile = profile_features(np.zeros((3, 2), dtype=np.float32), ["a", "b"])
    with pytest.raises(DataFormatError, match="2 features"):
        compare(profile, np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(DataFormatError, match="no rows"):
        compare(profile, np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(DataFormatError, match="3 feature names"):
        profile_features(np.zeros((3, 2), dtype=np.float32), ["a", "b", "c"])


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 12),
    sizes=st.lists(st.integers(0, 20), min_size=1, max_size=8),
)
def test_the_window_holds_the_last_rows_added(capacity, sizes):
    window = RowWindow(capacity, 2)
    blocks = []
    start = 0
    for n in sizes:
        block = np.arange(start, start + n, dtype=np.float32).repeat(2).reshape(n, 2)
        start += n
        blocks.append(block)
        window.add(block)
    everything = np.concatenate(blocks)
    np.testing.assert_array_equal(window.rows(), everything[-capacity:])
    assert window.count == min(capacity, len(everything))


def test_period_starts_by_the_calendar():
    """Checked against ``datetime``'s own calendar: weeks start on Monday, across a new year."""
    from datetime import datetime, timedelta

    from ltr.drift import period_starts

    moments = [datetime(2025, 12, 28, 23, 59) + timedelta(hours=7 * k) for k in range(60)]
    times = np.array(moments, dtype="datetime64[ms]")
    for every, start in (
        ("hour", lambda t: t.replace(minute=0)),
        ("day", lambda t: t.replace(hour=0, minute=0)),
        ("week", lambda t: t.replace(hour=0, minute=0) - timedelta(days=t.weekday())),
    ):
        got = period_starts(times, every)
        assert [g.astype(datetime) for g in got] == [start(t) for t in moments], every
    with pytest.raises(ValueError, match="every must be one of hour, day, week"):
        period_starts(times, "month")


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 300), max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_counts_added_block_by_block_in_any_order_compare_as_the_whole(cuts, order):
    """What ``ltr drift`` does with a folder read a block at a time, against one comparison of
    every row: the same PSI, out-of-range share, missing share and mean shift."""
    from ltr.drift import DriftCounts

    rng = np.random.default_rng(7)
    train = rng.normal(size=(500, 3))
    profile = profile_features(train, ["a", "b", "c"])
    new = rng.normal(0.3, 1.2, size=(300, 3))
    new[::17, 0] = np.nan
    new[5, 1] = np.inf
    blocks = np.split(new, sorted(cuts))
    order.shuffle(blocks)
    counts = DriftCounts(profile)
    for block in blocks:
        counts.add(block)
    whole = compare(profile, new)
    for got, want in zip(counts.report(), whole, strict=True):
        assert got.psi == pytest.approx(want.psi, rel=1e-12)
        assert got.out_of_range == pytest.approx(want.out_of_range)
        assert got.missing == pytest.approx(want.missing)
        assert got.mean_shift == pytest.approx(want.mean_shift, rel=1e-9)
    # and the whole against shares counted by hand for feature a (NaN in its own bin)
    a = profile.features[0]
    bounds = [-np.inf, *a.edges, np.inf]
    x = new[:, 0]
    hand = [np.mean((x > lo) & (x <= hi)) for lo, hi in itertools.pairwise(bounds)]
    hand.append(np.mean(np.isnan(x)))
    e = np.maximum([*a.shares, a.missing], PSI_FLOOR)
    h = np.maximum(hand, PSI_FLOOR)
    assert whole[0].psi == pytest.approx(float(np.sum((h - e) * np.log(h / e))))
