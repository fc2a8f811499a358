"""``benchmarks.score_drift`` scores the held-out rows once per break and cuts its windows from
those scores; its numbers only mean what they say if that gives the PSI the server computes from a
window's own rows, scored as they come, against the profile of the training scores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.drift import _window
from benchmarks.quality_cv import load_fold
from benchmarks.score_drift import measure, prepare


def _psi_by_hand(train: np.ndarray, window: np.ndarray, edges: tuple[float, ...]) -> float:
    """PSI of ``window`` against ``train`` over the bins (-inf, e0], (e0, e1], ..., (e_last, inf)
    and a bin for NaN, each counted with comparisons, shares floored at 1e-4."""
    lower = [-np.inf, *edges]
    upper = [*edges, np.inf]

    def shares(values: np.ndarray) -> np.ndarray:
        counts = [
            np.sum((values > lo) & (values <= hi)) for lo, hi in zip(lower, upper, strict=True)
        ]
        return np.array([*counts, np.isnan(values).sum()]) / len(values)

    e = np.maximum(shares(train), 1e-4)
    a = np.maximum(shares(window), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.fixture(scope="module")
def fold_one(mq2008_dir):
    data = load_fold(mq2008_dir, 1)
    return data, prepare(data)


def test_window_psi_matches_a_hand_computation(fold_one):
    data, fold = fold_one
    rng = np.random.default_rng(7)
    picked = [_window(fold.offsets, 10, rng) for _ in range(3)]
    m = measure(fold, picked)
    train_scores = fold.model.predict(data.train.features)
    edges = fold.profile.score.edges
    # no drift: the window's rows scored afresh, their bins counted by hand
    for w, rows in enumerate(picked):
        fresh = fold.model.predict(fold.held[rows])
        assert m["score_psi"][w] == pytest.approx(_psi_by_hand(train_scores, fresh, edges))
    assert len(set(m["score_psi"])) == 3  # three different windows, three different values

    # the model's most important feature set to 0 in the first window
    j = int(np.argmax(fold.model.booster_.feature_importance("gain")))
    p = fold.pairs.index((j, "set to 0"))
    x = fold.held[picked[0]].copy()
    x[:, j] = 0
    broken = fold.model.predict(x)
    assert not np.allclose(broken, fold.model.predict(fold.held[picked[0]]))
    assert m["break_score_psi"][0, p] == pytest.approx(_psi_by_hand(train_scores, broken, edges))
    feature = fold.profile.features[j]
    assert m["break_feature_psi"][0, p] == pytest.approx(
        _psi_by_hand(data.train.features[:, j], x[:, j], feature.edges)
    )
