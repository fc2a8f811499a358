"""The training loss meter: a weighted mean, as numpy computes one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.train.module import WeightedMean


def test_weighted_mean_matches_numpy_and_resets():
    rng = np.random.default_rng(0)
    values, weights = rng.normal(size=9), rng.integers(1, 40, size=9)
    meter = WeightedMean()
    for value, weight in zip(values, weights, strict=True):
        meter.update(torch.tensor(value, dtype=torch.float32), torch.tensor(weight))
    assert float(meter.compute()) == pytest.approx(np.average(values, weights=weights), rel=1e-5)
    assert meter.update_count == 9
    meter.reset()
    meter.update(torch.tensor(2.0), 3)
    meter.update(torch.tensor(5.0), 1)
    assert float(meter.compute()) == pytest.approx((2 * 3 + 5) / 4)


def test_without_weights_every_value_counts_once_and_none_is_an_update():
    # The validation metrics' use: per-list values of each batch, some batches with none.
    rng = np.random.default_rng(1)
    batches = [rng.random(5), np.array([]), rng.random(3)]
    meter = WeightedMean()
    for values in batches:
        meter.update(torch.tensor(values, dtype=torch.float32))
    assert meter.update_count == 3
    assert float(meter.compute()) == pytest.approx(np.concatenate(batches).mean(), rel=1e-6)
    meter.reset()
    meter.update(torch.tensor([]))
    assert meter.update_count == 1 and np.isnan(float(meter.compute()))
