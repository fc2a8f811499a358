"""NDCG, DCG and AP against scikit-learn, on random lists and on MQ2008.

scikit-learn's ``ndcg_score``/``dcg_score`` use linear gain (``gain="linear"`` here) and the same
``1 / log2(rank + 1)`` discount; by default they average over tied scores, so the scores below are
untied (continuous, checked). ``ndcg_score`` scores a query whose labels are all 0 as 0 (it sets the
gain of "all irrelevant" samples to 0), which is our ``EmptyListPolicy.ZERO``, not the default
``ONE``; and it refuses single-document queries. Queries with a relevant document and at least two
documents are compared under the default policy, all-zero queries under ``ZERO``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, dcg_score, ndcg_score

from ltr.metrics import (
    dcg,
    evaluate_grouped_per_query,
    group_offsets,
    mean_average_precision,
    ndcg,
)
from ltr.types import EmptyListPolicy

K_VALUES = [1, 3, 5, 10, None]


def _random_lists(seed: int, n_lists: int = 40, max_len: int = 25):
    """Ragged random lists padded into [B, L] tensors, each with >= 2 items and a relevant one."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, max_len + 1, size=n_lists)
    scores = rng.normal(size=(n_lists, max_len))
    labels = rng.integers(0, 5, size=(n_lists, max_len)).astype(np.float64)
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    labels[np.arange(n_lists), 0] = np.maximum(labels[:, 0], 1)  # at least one relevant
    return scores, labels, mask, lengths


@pytest.mark.parametrize("k", K_VALUES)
def test_ndcg_and_dcg_match_sklearn_on_random_lists(k) -> None:
    scores, labels, mask, lengths = _random_lists(seed=11)
    t = {"mask": torch.from_numpy(mask), "k": k, "gain": "linear", "reduction": "none"}
    ours_ndcg = ndcg(torch.from_numpy(scores), torch.from_numpy(labels), **t).numpy()
    ours_dcg = dcg(torch.from_numpy(scores), torch.from_numpy(labels), **t).numpy()
    for i, n in enumerate(lengths):
        y, s = labels[i, :n][None, :], scores[i, :n][None, :]
        assert ours_ndcg[i] == pytest.approx(ndcg_score(y, s, k=k), abs=1e-6)
        assert ours_dcg[i] == pytest.approx(dcg_score(y, s, k=k), abs=1e-6)


def test_average_precision_matches_sklearn_on_random_lists() -> None:
    scores, labels, mask, lengths = _random_lists(seed=12)
    ours = mean_average_precision(
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        mask=torch.from_numpy(mask),
        reduction="none",
    ).numpy()
    for i, n in enumerate(lengths):
        expected = average_precision_score(labels[i, :n] > 0, scores[i, :n])
        assert ours[i] == pytest.approx(expected, abs=1e-6)


def _mq2008_scores(part: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """A fixed random linear scorer over the 46 features, plus a little noise.

    Some MQ2008 queries hold documents with identical feature vectors; the noise unties them.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=part["x"].shape[1])
    return part["x"] @ w + 1e-3 * rng.normal(size=part["x"].shape[0])


@pytest.mark.parametrize("partition", ["S4", "S5"])
def test_ndcg_matches_sklearn_per_query_on_mq2008(mq2008, partition) -> None:
    part = mq2008[partition]
    scores = _mq2008_scores(part, seed=5)
    offsets = group_offsets(query_ids=part["qid"])
    metrics = ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg"]
    ours = evaluate_grouped_per_query(scores, part["y"], offsets, metrics=metrics, gain="linear")
    ours_zero = evaluate_grouped_per_query(
        scores, part["y"], offsets, metrics=metrics, gain="linear", empty=EmptyListPolicy.ZERO
    )
    compared = {"relevant": 0, "all_zero": 0}
    for q in range(offsets.size - 1):
        y = part["y"][offsets[q] : offsets[q + 1]]
        s = scores[offsets[q] : offsets[q + 1]]
        if y.size < 2:  # sklearn refuses single-document queries
            continue
        assert np.unique(s).size == s.size, "scores must be untied for this comparison"
        kind = "relevant" if (y > 0).any() else "all_zero"
        table = ours if kind == "relevant" else ours_zero
        compared[kind] += 1
        for name in metrics:
            k = int(name.split("@")[1]) if "@" in name else None
            expected = ndcg_score(y[None, :], s[None, :], k=k)
            assert table[name][q] == pytest.approx(expected, abs=1e-6), (q, name)
    # both kinds of query occur in every MQ2008 partition (220 of 784 queries are all-zero)
    assert compared["relevant"] > 50 and compared["all_zero"] > 10
