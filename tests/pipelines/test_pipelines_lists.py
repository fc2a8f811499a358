"""The per-list scorer and ranks, against one-list-at-a-time forwards and plain Python."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from ltr.errors import DataFormatError
from ltr.predictor import load_predictor
from pipelines.lists import offsets_of, rank_in_lists, score_flat
from tests.pipelines.helpers import reference_ranks


@pytest.fixture(scope="module")
def lists():
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 60, size=70)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = rng.normal(size=(int(offsets[-1]), 46)).astype(np.float32)
    return features, offsets


def test_score_flat_equals_unpadded_single_list_forwards(model_dir, lists):
    features, offsets = lists
    predictor = load_predictor(str(model_dir))
    got = score_flat(predictor, features, offsets, batch_size=16, max_slots=300)
    model = predictor.loaded.model
    with torch.inference_mode():
        for q in range(len(offsets) - 1):
            a, b = offsets[q], offsets[q + 1]
            x = torch.from_numpy(features[a:b])[None]  # (1, n, F): no padding at all
            want = model(x, torch.ones(1, b - a, dtype=torch.bool))[0].numpy()
            np.testing.assert_allclose(got[a:b], want, rtol=0, atol=2e-6)


def test_batching_does_not_change_scores(model_dir, lists):
    features, offsets = lists
    predictor = load_predictor(str(model_dir))
    one = score_flat(predictor, features, offsets, batch_size=1)
    many = score_flat(predictor, features, offsets, batch_size=128, max_slots=1 << 20)
    np.testing.assert_allclose(one, many, rtol=0, atol=2e-6)


def test_ranks_by_hand():
    scores = np.array([0.1, 0.9, 0.5, 2.0, 2.0, -1.0, np.nan, 3.0])
    offsets = np.array([0, 3, 5, 8])
    # query 1: two equal scores keep input order; query 2: NaN last
    assert rank_in_lists(scores, offsets).tolist() == [3, 1, 2, 1, 2, 2, 3, 1]


def test_ranks_match_plain_python_with_many_ties():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=200)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    scores = rng.integers(0, 4, size=int(offsets[-1])).astype(np.float64)  # many ties
    qids = np.repeat(np.arange(len(lengths)), lengths)
    assert np.array_equal(rank_in_lists(scores, offsets), reference_ranks(scores, qids))


def test_offsets_of_runs_and_null_qid():
    assert offsets_of(pa.array(["a", "a", "b", "c", "c", "c"])).tolist() == [0, 2, 3, 6]
    assert offsets_of(pa.array([7, 7, 3])).tolist() == [0, 2, 3]
    with pytest.raises(DataFormatError, match="null at row 1"):
        offsets_of(pa.array(["a", None, "b"]))
