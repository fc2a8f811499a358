"""Bootstrap intervals and paired tests against scipy, brute force and known behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ltr.data import load_dataset
from ltr.metrics import evaluate_grouped_per_query
from pipelines import stats


def _brute_force_sign_flip(d: list[float]) -> float:
    """Exact two-sided sign-flip p-value by enumerating every sign vector in plain Python."""
    observed = abs(sum(d) / len(d))
    hits = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        if abs(sum(s * x for s, x in zip(signs, d, strict=True)) / len(d)) >= observed - 1e-12:
            hits += 1
    return hits / 2 ** len(d)


@pytest.fixture(scope="module")
def s5(mq2008_dir):
    return load_dataset(mq2008_dir / "S5.txt.xz")


def _ndcg10(data, scores, ties="pessimistic") -> np.ndarray:
    return evaluate_grouped_per_query(
        scores, data.labels, data.offsets, metrics=["ndcg@10"], empty="drop", ties=ties
    )["ndcg@10"]


def test_t_test_matches_scipy():
    rng = np.random.default_rng(1)
    for n in (2, 5, 40, 300):
        a = rng.normal(size=n)
        b = a + rng.normal(0.1, 1.0, size=n)
        t, p = stats.paired_t_test(a, b)
        ref = scipy_stats.ttest_rel(a, b)
        assert t == pytest.approx(ref.statistic, rel=1e-10)
        assert p == pytest.approx(ref.pvalue, rel=1e-8)


def test_t_test_ignores_nan_pairs_like_scipy_omit():
    a = np.array([0.5, np.nan, 0.7, 0.2, 0.9, 0.4])
    b = np.array([0.4, 0.3, np.nan, 0.1, 0.6, 0.45])
    t, p = stats.paired_t_test(a, b)
    ref = scipy_stats.ttest_rel(a, b, nan_policy="omit")
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-8)


def test_randomization_exact_matches_brute_force():
    rng = np.random.default_rng(2)
    for n in (1, 3, 8, 12):
        d = np.round(rng.normal(0.05, 0.2, size=n), 3)  # rounding makes ties between sums
        p, exact = stats.randomization_test(d, np.zeros(n), n_resamples=10_000)
        assert exact
        assert p == pytest.approx(_brute_force_sign_flip(d.tolist()), abs=1e-12)


def test_sampled_randomization_agrees_with_exact():
    rng = np.random.default_rng(3)
    d = rng.normal(0.08, 0.3, size=13)  # 8192 sign vectors
    exact, is_exact = stats.randomization_test(d, np.zeros(13), n_resamples=10_000)
    sampled, is_sampled_exact = stats.randomization_test(d, np.zeros(13), n_resamples=5000)
    assert is_exact and not is_sampled_exact
    # 5000 draws: standard error of a p near 0.3 is below 0.007
    assert abs(sampled - exact) < 0.03


def test_clearly_better_model_gets_a_small_p(s5):
    rng = np.random.default_rng(0)
    good = s5.labels + rng.normal(0, 0.5, s5.num_rows)  # knows the labels, with noise
    poor = rng.normal(size=s5.num_rows)
    a, b = _ndcg10(s5, good), _ndcg10(s5, poor)
    p, exact = stats.randomization_test(a, b, n_resamples=10_000, seed=0)
    t, p_t = stats.paired_t_test(a, b)
    assert not exact and p < 0.01 and p_t < 0.01 and t > 0


def test_model_against_itself_with_shuffled_ties_gets_a_large_p(s5):
    rng = np.random.default_rng(0)
    scores = np.round(s5.labels + rng.normal(0, 0.8, s5.num_rows))  # coarse: many ties
    # same scores; ties broken by a random shuffle (jitter far below the score grid)
    shuffled = scores + rng.uniform(0, 1e-3, s5.num_rows)
    a, b = _ndcg10(s5, scores, ties="position"), _ndcg10(s5, shuffled, ties="position")
    assert np.nanmax(np.abs(a - b)) > 0.05  # ties really change some queries
    p, _ = stats.randomization_test(a, b, n_resamples=10_000, seed=0)
    _, p_t = stats.paired_t_test(a, b)
    assert p > 0.2 and p_t > 0.2


def test_bootstrap_interval_contains_the_mean_and_matches_normal_width(s5):
    rng = np.random.default_rng(4)
    values = _ndcg10(s5, s5.labels + rng.normal(0, 1.0, s5.num_rows))
    ci = stats.bootstrap_ci(values, n_resamples=2000, seed=1)
    x = values[~np.isnan(values)]
    assert ci.n == x.size == 105  # 51 of 156 S5 queries have no relevant document
    assert ci.mean == pytest.approx(x.mean())
    assert ci.low < ci.mean < ci.high
    # close to the normal-theory interval mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.15)


def test_bootstrap_coverage_on_known_distribution():
    rng = np.random.default_rng(5)
    covered = 0
    for trial in range(200):
        sample = rng.exponential(1.0, size=60)  # true mean 1
        ci = stats.bootstrap_ci(sample, n_resamples=400, seed=trial)
        covered += ci.low <= 1.0 <= ci.high
    assert 0.85 <= covered / 200 <= 0.99  # nominal 95%, percentile bootstrap runs a bit low


def test_gains_and_losses_by_hand():
    a = np.array([0.5, 0.9, np.nan, 0.2, 0.4])
    b = np.array([0.5, 0.3, 0.1, 0.6, 0.3])
    qids = np.array(["q1", "q2", "q3", "q4", "q5"], dtype=object)
    got = stats.gains_and_losses(a, b, qids, top=2)
    assert [(g["qid"], round(g["delta"], 6)) for g in got["gained"]] == [("q2", 0.6), ("q5", 0.1)]
    assert [(g["qid"], round(g["delta"], 6)) for g in got["lost"]] == [("q4", -0.4)]
