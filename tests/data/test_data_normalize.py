"""The feature normaliser against a hand computation, and its no-NaN guarantees."""

from __future__ import annotations

import math

import numpy as np
import torch

from ltr.data import FeatureNormalizer


def test_matches_hand_computation():
    x = np.array([[0.0, 5.0], [3.0, 5.0], [-1.0, 5.0]])
    norm = FeatureNormalizer(2).fit(x)
    t = [0.0, math.log(4.0), -math.log(2.0)]  # sign(x) * log1p(|x|)
    mean = sum(t) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in t) / 3)
    out = norm(torch.tensor([[3.0, 5.0], [7.0, 1.0]]))
    assert abs(out[0, 0].item() - (math.log(4.0) - mean) / std) < 1e-6
    assert abs(out[1, 0].item() - (math.log(8.0) - mean) / std) < 1e-6
    # the second feature is constant in training: std is taken as 1, so it maps to t - mean
    assert out[0, 1].item() == 0.0
    assert abs(out[1, 1].item() - (math.log(2.0) - math.log(6.0))) < 1e-6


def test_missing_values_never_produce_nan():
    x = np.array([[np.nan, 1.0, np.nan], [2.0, 1.0, np.nan], [4.0, 1.0, np.nan]])
    norm = FeatureNormalizer(3).fit(x)
    assert torch.isfinite(norm.mean).all() and torch.isfinite(norm.std).all()
    out = norm(torch.tensor([[np.nan, 1.0, np.nan], [3.0, 2.0, 5.0]], dtype=torch.float32))
    assert torch.isfinite(out).all()
    assert out[0, 0].item() == 0.0  # a missing value is imputed with the training mean
    expected_mean = (math.log(3.0) + math.log(5.0)) / 2  # NaN rows ignored when fitting
    assert abs(norm.mean[0].item() - expected_mean) < 1e-6


def test_without_log_is_plain_standardisation():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(500, 4))
    norm = FeatureNormalizer(4, log1p=False).fit(x)
    out = norm(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(out, (x - x.mean(0)) / x.std(0), atol=1e-5)


def test_statistics_travel_in_the_state_dict():
    norm = FeatureNormalizer(2).fit(np.array([[1.0, 2.0], [3.0, 5.0]]))
    clone = FeatureNormalizer(2)
    clone.load_state_dict(norm.state_dict())
    x = torch.tensor([[2.0, 3.0]])
    assert torch.equal(clone(x), norm(x))
