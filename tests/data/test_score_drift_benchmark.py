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
    train_scores = fold.ranker.model.predict(data.train.features)
    edges = fold.profile.score.edges
    # no drift: the window's rows scored afresh, their bins counted by hand
    for w, rows in enumerate(picked):
        fresh = fold.ranker.model.predict(fold.held[rows])
        assert m["score_psi"][w] == pytest.approx(_psi_by_hand(train_scores, fresh, edges))
    assert len(set(m["score_psi"])) == 3  # three different windows, three different values

    # the model's most important feature set to 0 in the first window
    j = int(np.argmax(fold.ranker.model.booster_.feature_importance("gain")))
    p = fold.pairs.index((j, "set to 0"))
    x = fold.held[picked[0]].copy()
    x[:, j] = 0
    broken = fold.ranker.model.predict(x)
    assert not np.allclose(broken, fold.ranker.model.predict(fold.held[picked[0]]))
    assert m["break_score_psi"][0, p] == pytest.approx(_psi_by_hand(train_scores, broken, edges))
    feature = fold.profile.features[j]
    assert m["break_feature_psi"][0, p] == pytest.approx(
        _psi_by_hand(data.train.features[:, j], x[:, j], feature.edges)
    )


def test_setrank_windows_are_their_lists_scored_alone(mq2008_dir):
    # SetRank scores a list as a whole: the benchmark scores the pool once per break, and a
    # window's scores must still be those of its lists scored alone, as the server sees them;
    # the profile must be the one `ltr train` saved, of the model's scores of the training rows.
    from ltr.data.dataset import ListDataset
    from ltr.inference import score_lists

    data = load_fold(mq2008_dir, 1)
    fold = prepare(data, "setrank", mq2008_dir, {"trainer.max_epochs": 1})
    model = fold.ranker.model
    edges = fold.profile.score.edges
    train_scores = score_lists(model, data.train)
    lengths = np.diff(fold.offsets)
    rng = np.random.default_rng(3)
    picked_lists = [rng.choice(len(lengths), size=10, replace=False) for _ in range(2)]
    picked = [
        np.concatenate([np.arange(fold.offsets[q], fold.offsets[q + 1]) for q in w])
        for w in picked_lists
    ]
    m = measure(fold, picked)
    j = sorted(fold.top & set(fold.watched))[0]
    p = fold.pairs.index((j, "set to 0"))
    for w, (rows, lists) in enumerate(zip(picked, picked_lists, strict=True)):
        window_offsets = np.r_[0, np.cumsum(lengths[lists])]
        alone = ListDataset(fold.held[rows], np.zeros(len(rows)), window_offsets, list(lists))
        fresh = score_lists(model, alone)
        assert m["score_psi"][w] == pytest.approx(_psi_by_hand(train_scores, fresh, edges))
        x = fold.held[rows].copy()
        x[:, j] = 0
        broken = score_lists(model, ListDataset(x, np.zeros(len(x)), window_offsets, list(lists)))
        assert not np.allclose(broken, fresh)
        assert m["break_score_psi"][w, p] == pytest.approx(
            _psi_by_hand(train_scores, broken, edges)
        )
    assert len(fold.top) == 5 and fold.ndcg > 0.5
